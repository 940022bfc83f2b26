"""The event order prepared at match time gives ``transitions`` the window's pairs.

Whatever the data (whales, events at one instant at several brands and
datasets, events before the period), the brands chosen, the window and the
period, the exact bounded counts read from the prepared sequence equal those
of the per-query ``lag`` window, under one generation's salt (issue 18, step 4);
``retention``'s cohorts and actives and ``segments``' counts read from it
equal those read from the tables' times. Each person's pairs as the bits of
one integer give what a DISTINCT over the pairs gives.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest.mock import patch

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.room.analyses import prepare_template, sequence, transitions
from cleanroom.room.analyses.journey import Journey
from cleanroom.room.backends.duckdb import DuckDBCursor
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.selection import GenerationTables
from tests.unit.room import journey_room
from tests.unit.room.test_analyses_sensitivity import extreme_person

SALT = 0xC0FFEE


@pytest.fixture(scope="module")
def room_policy() -> CollaborationPolicy:
    return journey_room.policy()


def both(
    con: duckdb.DuckDBPyConnection,
    policy: CollaborationPolicy,
    params: dict[str, str],
    template: str = "transitions",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exact counts from the plain tables (per-query window) and from the prepared sequence."""
    prepared = prepare_template(template, params, policy=policy, party="reporter")
    assert isinstance(prepared, Journey)
    plain = GenerationTables(journey_room.TABLES, SALT)
    names = sequence.prepare(con.cursor(), policy, plain, "g1")
    assert set(names) == {sequence.EVENTS_KEY, sequence.SOURCES_KEY}
    with_sequence = GenerationTables({**journey_room.TABLES, **names}, SALT)
    cursor = DuckDBCursor(con.cursor())  # the backend's cursor, as the engine hands one over
    try:
        return prepared.exact(cursor, plain), prepared.exact(cursor, with_sequence)
    finally:
        for name in names.values():
            con.execute(f'DROP TABLE wh."{name}"')


PARAMS = [
    {"max_transitions": "10", "window_days": "365", **journey_room.PERIOD},
    {"max_transitions": "1", "window_days": "7", **journey_room.PERIOD},
    {"brands": "alpha,gamma", "max_transitions": "2", "window_days": "30", **journey_room.PERIOD},
    {"max_transitions": "3", "window_days": "30", "start": "2026-02-10", "end": "2026-04-01"},
]
SEGMENTS = [
    {"as_of": "2026-07-01"},
    {"brands": "beta", "as_of": "2026-03-15", "recent_days": "7", "risk_days": "20"},
    {"as_of": "2026-05-01", "loyal_events": "2", "lookback_days": "60", "risk_days": "45"},
]
RETENTION = [
    {"start": "2026-01", "months": "6"},
    {"start": "2026-02", "months": "2", "active_at": "beta"},
    {"brands": "alpha,gamma", "start": "2025-12", "months": "12", "active_at": "gamma"},
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), extreme=extreme_person(), tied=st.integers(0, 40))
def test_the_prepared_sequence_gives_the_windows_pairs(
    room_policy: CollaborationPolicy,
    seed: int,
    extreme: tuple[list[journey_room.Event], list[journey_room.Exposure]],
    tied: int,
) -> None:
    events, exposures = journey_room.ordinary(seed, persons=60)
    untied = journey_room.load(events, exposures)  # every event at its own instant
    # Ties: persons with events at one instant at several brands (the order's tie-break).
    at = journey_room.START + dt.timedelta(days=20)
    for person in range(tied):
        for brand in journey_room.BRANDS[person % 3 :]:
            events.append(journey_room.Event(person, brand, at, "app", 1.0))
            events.append(journey_room.Event(person, brand, at + dt.timedelta(hours=1), "web", 1.0))
    con = journey_room.load(events + extreme[0], exposures + extreme[1])
    for params in PARAMS:
        window, prepared = both(con, room_policy, params)
        assert prepared == window, params
        with patch.object(transitions, "MASK_BRANDS", 0):  # a DISTINCT over the pairs
            distinct, _ = both(con, room_policy, params)
        assert distinct == window, params
    for params in SEGMENTS:
        plain, coded = both(con, room_policy, params, "segments")
        assert coded == plain, params
    # Retention: a first instant at two brands is the first brand's by name from the codes,
    # arg_min's pick from the times; elsewhere the same cohorts and actives.
    for params in RETENTION:
        plain, coded = both(untied, room_policy, params, "retention")
        assert coded == plain, params
        plain, coded = both(con, room_policy, params, "retention")
        for vector in ("cohort", "active"):
            assert _months(coded[vector]) == _months(plain[vector]), params


def _months(cells: dict[Any, int]) -> dict[Any, int]:
    """Counts summed over the brand (cells (month, brand, ...) -> (month, ...))."""
    out: dict[Any, int] = {}
    for (month, _, *rest), n in cells.items():
        key = (month, *rest)
        out[key] = out.get(key, 0) + n
    return out


def test_the_prepared_path_is_taken_and_counts_something(
    room_policy: CollaborationPolicy,
) -> None:
    events, exposures = journey_room.ordinary(1, persons=200)
    con = journey_room.load(events, exposures)
    names = sequence.prepare(con.cursor(), room_policy, journey_room.TABLES, "g2")
    seq = sequence.prepared(DuckDBCursor(con.cursor()), names)
    assert seq is not None
    sources = [
        s
        for b in journey_room.BRANDS
        for s in sequence.activity(room_policy, journey_room.TABLES)
        if s.party == b
    ]
    assert seq.covers(sources)  # the campaign (not activity) is not among them
    assert ("alpha.campaign", "exposed_at") not in seq.sources
    window, prepared = both(con, room_policy, PARAMS[0])
    assert prepared == window and sum(prepared["persons"].values()) > 0
    plain, coded = both(con, room_policy, RETENTION[0], "retention")
    assert coded == plain and sum(coded["active"].values()) > 0
    plain, coded = both(con, room_policy, SEGMENTS[0], "segments")
    assert coded == plain and len(coded["persons"]) > 3


def test_a_source_not_prepared_falls_back_to_the_window(room_policy: CollaborationPolicy) -> None:
    """A prepared sequence missing a chosen source (a policy changed) is not used."""
    events, exposures = journey_room.ordinary(2, persons=50)
    con = journey_room.load(events, exposures)
    partial = {k: v for k, v in journey_room.TABLES.items() if k != "gamma.events"}
    names = sequence.prepare(con.cursor(), room_policy, partial, "g3")
    seq = sequence.prepared(DuckDBCursor(con.cursor()), names)
    assert seq is not None
    assert not seq.covers(sequence.activity(room_policy, journey_room.TABLES))
    prepared = prepare_template("transitions", PARAMS[0], policy=room_policy, party="reporter")
    assert isinstance(prepared, Journey)
    plain = GenerationTables(journey_room.TABLES, SALT)
    assert prepared.exact(
        DuckDBCursor(con.cursor()), GenerationTables({**journey_room.TABLES, **names}, SALT)
    ) == (prepared.exact(DuckDBCursor(con.cursor()), plain))


def test_nothing_is_prepared_when_the_policy_does_not_approve_transitions(
    room_policy: CollaborationPolicy,
) -> None:
    con = journey_room.load(*journey_room.ordinary(4, persons=20))
    off = room_policy.model_copy(
        update={"templates": {k: v for k, v in room_policy.templates.items() if k != "transitions"}}
    )
    assert sequence.prepare(con.cursor(), off, journey_room.TABLES, "g5") == {}
    names = con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert names and not any(name.startswith("g5") for (name,) in names)
