"""Match-key rotation: which key ids are accepted when, and a match never mixing them."""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3
from typing import Any

import pytest

from cleanroom import clock
from cleanroom.errors import BundleError, MixedMatchKeysError, SpecError
from cleanroom.room.match_keys import (
    Holding,
    accepted_keys,
    check_bundle_key,
    check_one_key,
    target_key,
)
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.diff import diff_policies
from cleanroom.room.policy.load import parse_policy_text
from tests.unit.room.journey_room import policy as journey_policy

OLD, NEW, OTHER = "a" * 32, "b" * 32, "c" * 32
CUTOVER = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
BEFORE, AFTER = CUTOVER - dt.timedelta(seconds=1), CUTOVER + dt.timedelta(days=3)


BASE = journey_policy().model_dump(mode="json", exclude_none=True)  # one set of party keys


def doc(rotation: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["match_key_id"] = OLD
    if rotation is not None:
        out["match_key_rotation"] = rotation
    return out


def rotating() -> CollaborationPolicy:
    return CollaborationPolicy.model_validate(
        doc({"to_key_id": NEW, "cutover": CUTOVER.isoformat()})
    )


def store(retired: set[str] = frozenset()) -> sqlite3.Connection:  # type: ignore[assignment]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE retired_match_keys (key_id TEXT PRIMARY KEY)")
    db.executemany("INSERT INTO retired_match_keys VALUES (?)", [(k,) for k in retired])
    return db


def test_the_new_key_is_accepted_from_the_cutover_on() -> None:
    policy = rotating()
    assert accepted_keys(policy, set(), BEFORE) == [OLD]
    assert accepted_keys(policy, set(), CUTOVER) == [OLD, NEW]
    assert accepted_keys(policy, {OLD}, AFTER) == [NEW]
    assert (target_key(policy, BEFORE), target_key(policy, AFTER)) == (OLD, NEW)


def test_a_bundle_key_refusal_says_why() -> None:
    policy = rotating()
    with clock.use(clock.SetClock(BEFORE)):
        with pytest.raises(BundleError, match="accepts from 2026-06-01T12:00:00"):
            check_bundle_key("b.bundle", NEW, policy, store())
        assert check_bundle_key("b.bundle", OLD, policy, store()) == OLD
    with clock.use(clock.SetClock(AFTER)):
        assert check_bundle_key("b.bundle", NEW, policy, store()) == NEW
        with pytest.raises(BundleError, match="retired"):
            check_bundle_key("b.bundle", OLD, policy, store({OLD}))
        with pytest.raises(BundleError, match="another match key"):
            check_bundle_key("b.bundle", OTHER, policy, store())
        with pytest.raises(BundleError, match="another match key"):
            check_bundle_key("b.bundle", None, policy, store())


def test_a_match_never_mixes_keys_and_names_who_is_behind() -> None:
    policy = rotating()
    holdings = [
        Holding("alpha", "events", NEW),
        Holding("beta", "events", OLD),
        Holding("gamma", "suppression list", OLD),
    ]
    with clock.use(clock.SetClock(AFTER)):
        with pytest.raises(MixedMatchKeysError) as caught:
            check_one_key(holdings, policy)
        assert caught.value.details == {"match_key_id": NEW, "parties": ["beta", "gamma"]}
        assert "gamma (suppression list" in str(caught.value)
        assert "alpha" not in str(caught.value)
        # Before anyone moved, and once everyone has: one key, the match runs.
        assert check_one_key([Holding("beta", "events", OLD)], policy) == OLD
        assert check_one_key([Holding(h.party, h.what, NEW) for h in holdings], policy) == NEW
        assert check_one_key([], policy) is None
    # A single key the policy no longer names is refused as well.
    plain = CollaborationPolicy.model_validate(doc())
    with pytest.raises(MixedMatchKeysError, match="beta"):
        check_one_key([Holding("beta", "events", OTHER)], plain)


def test_a_rotation_must_name_another_valid_key_and_is_reviewed_as_loosening() -> None:
    for bad in ({"to_key_id": OLD, "cutover": CUTOVER.isoformat()},
                {"to_key_id": "nope", "cutover": CUTOVER.isoformat()},
                {"to_key_id": NEW, "cutover": "2026-06-01T12:00:00"}):  # fmt: skip
        with pytest.raises(SpecError):
            parse_policy_text(_yaml(doc(bad)), "policy")
    changes = diff_policies(CollaborationPolicy.model_validate(doc()), rotating())
    assert [(c.path, c.privacy) for c in changes] == [("match_key_rotation", "loosens")]


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document)
