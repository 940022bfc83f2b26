"""Template figures that say what they mean: the lift's verdict, overlap under join_required."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from cleanroom.room.analyses import prepare_template
from cleanroom.room.analyses.lift import CampaignLift, evidence
from cleanroom.room.analyses.overlap import Overlap
from cleanroom.room.backends.duckdb import DuckDBCursor
from cleanroom.room.dp import Release
from cleanroom.room.policy import CollaborationPolicy
from tests.unit.room.journey_room import PERIOD, TABLES, load, ordinary, policy


@pytest.fixture(scope="module")
def room_policy() -> CollaborationPolicy:
    return policy()


def noisy(values: list[int], error95: float) -> Release:
    return Release(values, error95 / 3, error95, Fraction(1, 10), 0.0)


def lift_answer(room_policy: CollaborationPolicy, conv: list[int]) -> dict[str, Any]:
    prepared = prepare_template(
        "lift", {"outcome": "beta", **PERIOD}, policy=room_policy, party="reporter"
    )
    assert isinstance(prepared, CampaignLift)
    assert room_policy.privacy is not None
    arms = {"persons": noisy([4_000, 4_000], 30.0), "converted": noisy(conv, 30.0)}
    _, rows, _, extra = prepared.answer(arms, room_policy.privacy)
    assert [r["rate"]["unit"] for r in rows] == ["share", "share"]
    return dict(extra["lift"])


def test_the_lift_says_when_its_interval_includes_zero(room_policy: CollaborationPolicy) -> None:
    same = lift_answer(room_policy, [1_000, 1_010])
    assert same["evidence"] == "none"
    assert same["difference"]["includes_zero"] is True
    assert same["difference"]["low"] <= 0 <= same["difference"]["high"]
    assert same["difference"]["unit"] == "points"
    higher = lift_answer(room_policy, [1_600, 1_000])
    assert higher["evidence"] == "treatment_higher"
    assert higher["difference"]["includes_zero"] is False and higher["difference"]["low"] > 0
    assert lift_answer(room_policy, [1_000, 1_600])["evidence"] == "treatment_lower"


@pytest.mark.parametrize(("low", "high", "said"), [(-1, 1, "none"), (0.1, 2, "treatment_higher")])
def test_evidence_reads_the_interval(low: float, high: float, said: str) -> None:
    assert evidence(low, high) == said


def test_overlap_under_join_required_says_what_it_left_out(
    room_policy: CollaborationPolicy,
) -> None:
    events, exposures = ordinary(seed=3, persons=120)
    con = load(events, exposures)
    assert room_policy.privacy is not None
    anchored = Overlap(("alpha", "beta", "gamma"), anchor="alpha")  # an analyst of alpha's
    cursor = DuckDBCursor(con.cursor())  # the backend's cursor, as the engine hands one over
    result = anchored.execute(cursor, TABLES, Fraction(1), room_policy.privacy).as_dict()
    assert result["rules"] == [
        {
            "rule": "join_required",
            "cells": 3,  # beta, gamma, beta+gamma: 7 combinations, 4 with alpha
            "party": "alpha",
            "message": result["rules"][0]["message"],
        }
    ]
    assert "alpha" in result["rules"][0]["message"]
    pairs = {p["pair"]: p for p in result["pairwise"]}
    assert pairs["beta+gamma"]["both"]["restricted"] == "join_required"
    assert "restricted" not in pairs["alpha+beta"]["both"]
    for pair in pairs.values():  # min(|A|, |B|) is not counted: no rate, and it says why
        assert pair["rate"] == {"value": None, "withheld": "join_required", "unit": "share"}
    free = Overlap(("alpha", "beta", "gamma"), anchor=None)
    open_result = free.execute(cursor, TABLES, Fraction(1), room_policy.privacy).as_dict()
    assert "rules" not in open_result
    assert all(p["rate"]["value"] is not None for p in open_result["pairwise"])


def test_a_funnel_step_after_a_withheld_one_says_why_it_has_no_conversion(
    room_policy: CollaborationPolicy,
) -> None:
    assert room_policy.privacy is not None
    privacy = room_policy.privacy.model_copy(update={"min_noisy_persons": 10})
    funnel = prepare_template(
        "funnel", {"steps": "alpha,beta,gamma", **PERIOD}, policy=room_policy, party="reporter"
    )
    # Reaching step 2 is under the minimum (noise can do that), step 3 is not.
    stopped = noisy([500, -105, 110], 12.0)
    _, rows, suppressed, _ = funnel.answer({"stopped": stopped}, privacy)  # type: ignore[attr-defined]
    assert suppressed == 1 and [r["step"] for r in rows] == [1, 3]
    assert rows[0]["conversion"] is None  # the first step has nothing before it
    assert rows[1]["conversion"] == {
        "value": None,
        "withheld": "min_noisy_persons",
        "unit": "share",
    }
