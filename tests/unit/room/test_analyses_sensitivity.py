"""Every template's declared L1 and L2 hold: one added person moves each exact vector by no more.

A generated room of ordinary persons, then one more person with extreme data:
a whale with thousands of events at every brand, refunds far below the
metric's lower bound, purchases far above its upper one, missing and NaN
amounts, undeclared channel values, many campaign exposures in both arms.
Each template's real SQL (the same ``exact`` its release runs) computes every
released vector with and without that person; the change must be within the
vector's declared sensitivities, in L1 and in L2. The generation's salt that
picks which of a person's transitions are kept is the same in both runs, as
it is one random draw of the mechanism and not part of the data.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.room.analyses import prepare_template
from cleanroom.room.analyses.journey import CUT, Cell, Journey, Vector
from cleanroom.room.analyses.lift import CampaignLift
from cleanroom.room.analyses.overlap import Overlap
from cleanroom.room.backends.duckdb import DuckDBCursor
from cleanroom.room.pipeline import Cut
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.selection import GenerationTables
from cleanroom.room.sensitivity import Contribution
from tests.unit.room.journey_room import (
    ARMS,
    BRANDS,
    PERIOD,
    REFUNDS,
    START,
    TABLES,
    Event,
    Exposure,
    load,
    ordinary,
    policy,
)

CONFIGS: list[tuple[str, dict[str, str]]] = [
    ("overlap", {"parties": "alpha,beta,gamma"}),
    ("transitions", {"max_transitions": "2", "window_days": "30", **PERIOD}),
    ("transitions", {"max_transitions": "10", "window_days": "365", **PERIOD}),
    ("funnel", {"steps": "alpha,beta.events:channel=app,gamma", "window_days": "60", **PERIOD}),
    ("time_to_cross", {"from": "alpha", "to": "beta", "bins": "0,1,7,30", **PERIOD}),
    ("retention", {"start": "2026-01", "months": "6"}),
    ("retention", {"start": "2026-02", "months": "4", "active_at": "beta"}),
    (
        "segments",
        {"as_of": "2026-07-01", "loyal_events": "3", "recent_days": "20", "risk_days": "60"},
    ),
    ("lift", {"outcome": "beta.events", "metric": "amount", "spend_cap": "20000", **PERIOD}),
    ("lift", {"outcome": "alpha.events", "metric": "amount", "window_days": "90", **PERIOD}),
    ("lift", {"outcome": "gamma.events", "metric": "amount", **PERIOD}),
    ("lift", {"outcome": "gamma", "window_days": "365", **PERIOD}),
    ("app_to_store", {"from": "alpha.events:channel=app", "to": "beta", **PERIOD}),
    ("app_to_store", {"from": "gamma", "to": "alpha", "window_days": "365", **PERIOD}),
]
EXTREME = 1_000_000  # the added person's id: not among the ordinary ones
FIXED_SALT = 0x5EED


@pytest.fixture(scope="module")
def room_policy() -> CollaborationPolicy:
    return policy()


def released(
    prepared: Journey | Overlap, con: duckdb.DuckDBPyConnection
) -> tuple[list[Vector], dict[str, dict[Cell, int]]]:
    """The template's released vectors and their exact values, from its own SQL."""
    tables = GenerationTables(TABLES, FIXED_SALT)
    if isinstance(prepared, Overlap):
        cells = tuple(prepared.cells)
        vectors = [Vector("persons", cells, prepared.contribution)]
        return vectors, {"persons": dict(prepared.exact(DuckDBCursor(con.cursor()), tables))}
    return prepared.vectors(), prepared.exact(DuckDBCursor(con.cursor()), tables)


def moved(v: Vector, a: dict[Cell, int], b: dict[Cell, int]) -> tuple[int, float]:
    """L1 and L2 distance between two exact vectors over the declared cells."""
    diffs = [abs(a.get(c, 0) - b.get(c, 0)) for c in v.cells]
    return sum(diffs), math.sqrt(sum(d * d for d in diffs))


amounts = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([-1e12, -1e6, REFUNDS[0], 0.0, REFUNDS[1], 1e6, 1e12]),
    st.floats(-1e9, 1e9, allow_nan=False),
)


@st.composite
def extreme_person(draw: st.DrawFn) -> tuple[list[Event], list[Exposure]]:
    """One person with data as extreme as the strategy can make it."""
    n = draw(st.sampled_from([0, 1, 2, 5, 50, 3000]) | st.integers(0, 200))
    brands = draw(st.lists(st.sampled_from(BRANDS), min_size=1, unique=True))
    values = draw(st.lists(amounts, min_size=1, max_size=6))
    channels = draw(st.lists(st.sampled_from(["app", "web", "tv", None]), min_size=1, max_size=3))
    first = draw(st.integers(-40, 200))  # days from the period's start (may be before it)
    span = draw(st.integers(0, 400))  # days over which the events run
    same_instant = draw(st.booleans())
    events = []
    for i in range(n):
        offset = 0.0 if same_instant else span * 86400 * i / max(1, n)
        at = START + dt.timedelta(days=first, seconds=offset)
        brand, channel = brands[i % len(brands)], channels[i % len(channels)]
        events.append(Event(EXTREME, brand, at, channel, values[i % len(values)]))
    shown = draw(
        st.lists(st.tuples(st.integers(-10, 200), st.sampled_from([*ARMS, "holdout"])), max_size=6)
    )
    exposures = [Exposure(EXTREME, START + dt.timedelta(days=d), arm) for d, arm in shown]
    return events, exposures


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), extreme=extreme_person())
def test_one_extreme_person_moves_every_vector_by_at_most_its_sensitivity(
    room_policy: CollaborationPolicy, seed: int, extreme: tuple[list[Event], list[Exposure]]
) -> None:
    events, exposures = ordinary(seed)
    without = load(events, exposures)
    with_ = load(events + extreme[0], exposures + extreme[1])
    for name, params in CONFIGS:
        prepared = prepare_template(name, params, policy=room_policy, party="reporter")
        assert isinstance(prepared, Journey | Overlap)
        vectors, before = released(prepared, without)
        _, after = released(prepared, with_)
        for v in vectors:
            l1, l2 = moved(v, before.get(v.name, {}), after.get(v.name, {}))
            assert l1 <= v.l1, (name, params, v.name, l1, v.l1)
            assert l2 <= v.l2 * (1 + 1e-12), (name, params, v.name, l2, v.l2)
        cut = prepared.cut() if isinstance(prepared, Journey) else None
        if cut is not None:
            assert_cut_moves_within(cut, before[CUT], after[CUT])


def assert_cut_moves_within(cut: Cut, before: dict[Cell, int], after: dict[Cell, int]) -> None:
    """The cut's two vectors ([kept, cut] and [persons]) move by at most their sensitivities."""
    kept, removed, persons = (abs(after[(c,)] - before[(c,)]) for c in ("kept", "cut", "persons"))
    assert kept <= cut.bound and removed <= cut.cap and persons <= 1, (kept, removed, persons)
    assert kept + removed <= cut.volume.l1, (kept, removed, cut.volume.l1)
    assert math.hypot(kept, removed) <= cut.volume.l2 * (1 + 1e-12)
    assert persons <= cut.persons.l1


def lift(room_policy: CollaborationPolicy, **params: str) -> CampaignLift:
    prepared = prepare_template(
        "lift", {"outcome": "beta.events", **PERIOD, **params}, policy=room_policy, party="reporter"
    )
    assert isinstance(prepared, CampaignLift)
    return prepared


def lift_change(
    prepared: CampaignLift, events: list[Event], exposures: list[Exposure]
) -> dict[str, dict[Cell, int]]:
    """Per vector, the added person's change to each arm (with minus without)."""
    base_events, base_exposures = ordinary(7)
    _, before = released(prepared, load(base_events, base_exposures))
    _, after = released(prepared, load(base_events + events, base_exposures + exposures))
    return {
        name: {(a,): after[name].get((a,), 0) - before[name].get((a,), 0) for a in ARMS}
        for name in before
    }


def test_a_person_with_only_refunds_lowers_the_spend_by_the_cap_and_no_more(
    room_policy: CollaborationPolicy,
) -> None:
    cap = 20_000
    prepared = lift(room_policy, metric="amount", spend_cap=str(cap))
    refunds = [
        Event(EXTREME, "beta", START + dt.timedelta(days=2, minutes=i), "app", -1e9)
        for i in range(3000)
    ]
    change = lift_change(prepared, refunds, [Exposure(EXTREME, START, "treatment")])
    assert change["spend"] == {("treatment",): -cap, ("control",): 0}
    assert change["persons"] == {("treatment",): 1, ("control",): 0}
    assert change["converted"] == {("treatment",): 1, ("control",): 0}


def test_a_person_without_purchases_or_amounts_adds_no_spend(
    room_policy: CollaborationPolicy,
) -> None:
    prepared = lift(room_policy, metric="amount")
    exposed = [Exposure(EXTREME, START, "control")]
    assert lift_change(prepared, [], exposed)["spend"] == {("treatment",): 0, ("control",): 0}
    missing = [Event(EXTREME, "beta", START + dt.timedelta(days=1), "web", None)] * 40
    change = lift_change(prepared, missing, exposed)
    assert change["spend"] == {("treatment",): 0, ("control",): 0}
    assert change["converted"] == {("treatment",): 0, ("control",): 1}


def test_the_spend_vector_is_declared_with_l2_equal_to_the_cap(
    room_policy: CollaborationPolicy,
) -> None:
    cap = 5_000_000
    vectors = {v.name: v for v in lift(room_policy, metric="amount", spend_cap=str(cap)).vectors()}
    assert (vectors["spend"].l1, vectors["spend"].l2) == (cap, cap)
    assert (vectors["persons"].l1, vectors["persons"].l2) == (1, 1)
    positive = lift(room_policy, outcome="gamma.events", metric="amount", spend_cap="300")
    assert positive.spend_bounds == (0, 300)
    assert lift(room_policy, metric="amount", spend_cap="300").spend_bounds == (-300, 300)


def test_count_vectors_spread_over_cells_have_l2_root_of_l1(
    room_policy: CollaborationPolicy,
) -> None:
    params: dict[str, Any] = {"max_transitions": "4", **PERIOD}
    prepared = prepare_template("transitions", params, policy=room_policy, party="reporter")
    assert isinstance(prepared, Journey)
    (v,) = prepared.vectors()
    assert v.contribution == Contribution(4, 1)
    assert (v.l1, v.l2) == (4, 2.0)
