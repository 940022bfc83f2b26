"""Accuracy against the ground truth: the answer and its disclosed cut bracket the unbounded truth.

A generated room with whales (a few persons with hundreds to thousands of
events) where the exact *unbounded* answer of every SQL shape is known from
the generated events themselves (not from the engine), and every template's
from its own SQL with its per-person bound lifted. Each question is computed
once by the engine's bounded SQL and released many times from that exact
answer through the one pipeline (as the privacy audit does).

* Bracket: the released number minus its bound, plus the disclosed cut minus
  its bound, stays at or under the truth (what the bounds removed is really
  gone, so "the true total is higher" is true); where no person's excess
  passes the cut's cap the truth is also at or under the number plus the cut
  plus both bounds. Each end is a 95% statement, so each must hold in at
  least 90% of 100 releases.
* Coverage: over at least 1,000 releases of one fixed exact bounded answer,
  the 95% bound of each direct count or sum (the answer's, and the cut's own
  three figures) covers that exact answer 93–97% of the time.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import Counter
from dataclasses import replace
from fractions import Fraction
from typing import Any

import duckdb
import pytest

from cleanroom.room import pipeline
from cleanroom.room.analyses import prepare_template
from cleanroom.room.analyses.journey import CUT, Journey, cut_counts
from cleanroom.room.analyses.lift import CampaignLift
from cleanroom.room.analyses.overlap import Overlap
from cleanroom.room.analyses.transitions import Transitions
from cleanroom.room.backends.duckdb import DuckDBCursor
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.check import check_sql
from cleanroom.room.query.compile import Compiled, compile_plan
from cleanroom.room.query.plan import QueryPlan
from cleanroom.room.query.prepared import bounds
from cleanroom.room.query.release import Released, release
from tests.unit.room import journey_room
from tests.unit.room.journey_room import ARMS, BRANDS, CHANNELS, END, PERIOD, START, Event, Exposure

GAMMA = (0.0, 3000.0)  # gamma's amount bounds: what one cut row can be worth
K = 10  # rows per person (the policy's default)
EPSILON = Fraction(1)
BRACKET_RUNS = 100  # each end fails at most ~2.5% of the time: 10 misses in 100 is ~1e-4
COVERAGE_RUNS = 1_000
# At epsilon 1 a count of sensitivity 1 has noise of scale ~1, where no integer bound
# covers between 93% and 97% (two covers 92.7%, three 97.3%): coverage is checked where
# every figure's noise is at least a few units wide.
COVERAGE_EPSILON = Fraction(1, 4)


def generate(seed: int, whale_events: tuple[int, int]) -> tuple[list[Event], list[Exposure]]:
    """600 ordinary persons (1–12 events) and 80 whales with ``whale_events`` events each.

    Amounts are whole units inside each brand's bounds and never missing, so
    the unbounded truth is the plain sum; whales spend differently from
    everyone else (an average the row bound biases).
    """
    rng = random.Random(seed)
    span = int((END - START).total_seconds())
    events: list[Event] = []
    exposures: list[Exposure] = []
    for person in range(680):
        whale = person >= 600
        n = rng.randint(*whale_events) if whale else rng.randint(1, 12)
        for _ in range(n):
            brand = rng.choice(BRANDS)
            hi = 3000 if brand == "gamma" else 5000
            amount = float(rng.randint(hi // 2, hi) if whale else rng.randint(0, hi // 2))
            at = START + dt.timedelta(
                seconds=rng.randrange(span), microseconds=rng.randrange(10**6)
            )
            events.append(Event(person, brand, at, rng.choice(CHANNELS), amount))
        if rng.random() < 0.7 or whale:
            at = START + dt.timedelta(seconds=rng.randrange(span // 2))
            exposures.append(Exposure(person, at, rng.choice(ARMS)))
    return events, exposures


WORLDS = {
    # Whales whose excess over K stays within the cut's cap (10 K): the bracket closes.
    "within_cap": (60, 100),
    # Whales with thousands of events: the cut is a lower bound, the truth is higher still.
    "beyond_cap": (1_000, 2_000),
}


@pytest.fixture(scope="module")
def worlds() -> dict[str, tuple[list[Event], duckdb.DuckDBPyConnection]]:
    out = {}
    for i, (name, sizes) in enumerate(WORLDS.items()):
        events, exposures = generate(i, sizes)
        out[name] = (events, journey_room.load(events, exposures))
    return out


@pytest.fixture(scope="module")
def room_policy() -> CollaborationPolicy:
    return journey_room.policy(k=K, g=2)


def lenient(p: CollaborationPolicy) -> PrivacyPolicy:
    assert p.privacy is not None
    return p.privacy.model_copy(update={"min_noisy_persons": 0})


# Each SQL shape with its unbounded truth from the events alone: {group: value}.
def _count(events: list[Event]) -> dict[tuple[Any, ...], float]:
    return {(): float(sum(e.brand == "alpha" for e in events))}


def _persons_by_channel(events: list[Event]) -> dict[tuple[Any, ...], float]:
    found: dict[str, set[int]] = {c: set() for c in CHANNELS}
    for e in events:
        if e.brand == "alpha" and e.channel is not None:
            found[e.channel].add(e.person)
    return {(c,): float(len(p)) for c, p in found.items()}


def _persons(events: list[Event]) -> dict[tuple[Any, ...], float]:
    return {(): float(len({e.person for e in events if e.brand == "alpha"}))}


def _sum(events: list[Event]) -> dict[tuple[Any, ...], float]:
    return {(): sum(e.amount or 0.0 for e in events if e.brand == "gamma")}


def _avg(events: list[Event]) -> dict[tuple[Any, ...], float]:
    values = [e.amount for e in events if e.brand == "gamma" and e.amount is not None]
    return {(): sum(values) / len(values)}


def _count_by_channel(events: list[Event]) -> dict[tuple[Any, ...], float]:
    counted = Counter(e.channel for e in events if e.brand == "alpha")
    return {(c,): float(counted[c]) for c in CHANNELS}


SHAPES = {
    "COUNT": ("SELECT COUNT(*) AS v FROM alpha.events", _count),
    "COUNT DISTINCT person": ("SELECT COUNT(DISTINCT person) AS v FROM alpha.events", _persons),
    "SUM": ("SELECT SUM(amount) AS v FROM gamma.events", _sum),
    "AVG": ("SELECT AVG(amount) AS v FROM gamma.events", _avg),
    "GROUP BY count": (
        "SELECT channel, COUNT(*) AS v FROM alpha.events GROUP BY channel",
        _count_by_channel,
    ),
    "GROUP BY persons": (
        "SELECT channel, COUNT(DISTINCT person) AS v FROM alpha.events GROUP BY channel",
        _persons_by_channel,
    ),
    "filtered": (
        "SELECT COUNT(*) AS v FROM alpha.events WHERE channel IN ('app', 'web')",
        _count,
    ),
}


def compiled_sql(
    sql: str, p: CollaborationPolicy, con: duckdb.DuckDBPyConnection
) -> tuple[QueryPlan, Compiled, list[tuple[Any, ...]]]:
    plan = check_sql(sql, policy=p, party="alpha")
    privacy = lenient(p)
    compiled = compile_plan(plan, journey_room.TABLES, **bounds(privacy))
    return plan, compiled, con.execute(compiled.sql).fetchall()


def keyed(released: Released) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Each row's released ``v`` by its group key (every other column)."""
    return {tuple(v for k, v in row.items() if k != "v"): row["v"] for row in released.rows}


def bracket_holds(
    value: float,
    error: float,
    cut: dict[str, Any],
    truth: float,
    *,
    closed: bool,
    per_unit: tuple[float, float] = (1.0, 1.0),
    one_group: bool = True,
) -> tuple[bool, bool]:
    """Whether the truth is within what the answer and its cut allow.

    Low end: value − e, plus (cut − e_cut) units each worth at least
    ``per_unit[0]`` when all of the cut belongs to this one number. High end
    (when no person passed the cap): value + e + (cut + e_cut) units each worth
    at most ``per_unit[1]`` (a group may hold all of the cut).
    """
    removed = cut["cut"]["value"] if cut.get("possible") else 0
    cut_error = cut["cut"]["error95"] if cut.get("possible") else 0
    low = value - error + (max(0.0, removed - cut_error) * per_unit[0] if one_group else 0.0)
    high = value + error + (removed + cut_error) * per_unit[1]
    return low <= truth + 1e-6, (not closed) or truth <= high + 1e-6


@pytest.mark.parametrize("world", sorted(WORLDS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_sql_answers_and_their_cut_bracket_the_unbounded_truth(
    worlds: dict[str, tuple[list[Event], duckdb.DuckDBPyConnection]],
    room_policy: CollaborationPolicy,
    world: str,
    shape: str,
) -> None:
    events, con = worlds[world]
    sql, truth_of = SHAPES[shape]
    truth = truth_of(events)
    plan, compiled, exact = compiled_sql(sql, room_policy, con)
    privacy = lenient(room_policy)
    lows = highs = checks = material = 0
    for _ in range(BRACKET_RUNS):
        out = release(plan, compiled, exact, epsilon=EPSILON, privacy=privacy)
        material += out.cut["material"]
        for key, number in keyed(out).items():
            checks += 1
            if "low" in number:  # AVG: a mean over kept + cut rows, the cut's at [lo, hi]
                low_ok, high_ok = average_bracket(number, out.cut, truth[key], world)
            else:
                low_ok, high_ok = bracket_holds(
                    number["value"],
                    number["error95"],
                    out.cut,
                    truth[key],
                    closed=world == "within_cap",
                    per_unit=GAMMA if shape == "SUM" else (1.0, 1.0),
                    one_group=not plan.group_by,
                )
            lows += low_ok
            highs += high_ok
    assert lows >= 0.9 * checks, (shape, world, lows, checks)
    assert highs >= 0.9 * checks, (shape, world, highs, checks)
    if compiled.measures.cut is not None and world == "beyond_cap":
        # 80 whales, 8,000 rows cut against a 95% bound of ~6,600 at this size: most
        # results say they are truncated (~74% expected).
        assert material >= 0.5 * BRACKET_RUNS, (shape, material)


def average_bracket(
    number: dict[str, Any], cut: dict[str, Any], truth: float, world: str
) -> tuple[bool, bool]:
    """The unbounded mean is (1 − s)·kept mean + s·cut mean, the cut's values within the bounds.

    With the share ``s`` in its disclosed range and the kept mean in its
    interval, the truth is within the extremes (only a lower bound of ``s``
    is known when whales pass the cap: then the share may reach 1).
    """
    lo, hi = GAMMA
    s_low, s_high = cut["share"]["low"], cut["share"]["high"] if world == "within_cap" else 1.0
    ends = [(1 - s) * m + s * c for s in (s_low, s_high) for m, c in ((number["low"], lo),)]
    tops = [(1 - s) * m + s * c for s in (s_low, s_high) for m, c in ((number["high"], hi),)]
    return min(ends) <= truth + 1e-6, truth <= max(tops) + 1e-6


def unbounded(prepared: Journey) -> Journey:
    """The template with its per-person bound lifted: its exact answer is the truth."""
    if isinstance(prepared, Transitions):
        return replace(prepared, max_transitions=1_000)  # six ordered pairs at most
    if isinstance(prepared, CampaignLift):
        return replace(prepared, spend_cap=10**12)
    return prepared


TEMPLATES: list[tuple[str, dict[str, str]]] = [
    ("overlap", {"parties": "alpha,beta,gamma"}),
    ("transitions", {"max_transitions": "3", "window_days": "30", **PERIOD}),
    ("funnel", {"steps": "alpha,beta.events:channel=app,gamma", "window_days": "60", **PERIOD}),
    ("time_to_cross", {"from": "alpha", "to": "beta", "bins": "0,1,7,30", **PERIOD}),
    ("retention", {"start": "2026-01", "months": "6"}),
    (
        "segments",
        {"as_of": "2026-07-01", "loyal_events": "3", "recent_days": "20", "risk_days": "60"},
    ),
    ("lift", {"outcome": "beta.events", "metric": "amount", "spend_cap": "20000", **PERIOD}),
]


@pytest.mark.parametrize(("name", "params"), TEMPLATES, ids=[t[0] for t in TEMPLATES])
def test_every_template_discloses_its_cut_and_brackets_the_unbounded_truth(
    worlds: dict[str, tuple[list[Event], duckdb.DuckDBPyConnection]],
    room_policy: CollaborationPolicy,
    name: str,
    params: dict[str, str],
) -> None:
    """A template whose bound cannot cut says so (its bounded answer is the unbounded one,
    which the coverage test below checks); ``transitions`` and ``lift`` disclose their cut,
    and the answer with its cut brackets the truth."""
    _, con = worlds["beyond_cap"]
    prepared = prepare_template(name, params, policy=room_policy, party="reporter")
    assert isinstance(prepared, Journey | Overlap)
    exact = prepared.exact(DuckDBCursor(con.cursor()), journey_room.TABLES)
    privacy = lenient(room_policy)
    if not isinstance(prepared, Transitions | CampaignLift):
        assert not isinstance(prepared, Journey) or prepared.cut() is None
        out = prepared.release(exact, EPSILON, privacy)  # type: ignore[arg-type]
        assert out.cut == {"possible": False, "material": False}
        return
    truth = unbounded(prepared).exact(DuckDBCursor(con.cursor()), journey_room.TABLES)
    lows = highs = 0
    for _ in range(BRACKET_RUNS):
        out = prepared.release(exact, EPSILON, privacy)
        removed, cut_error = out.cut["cut"]["value"], out.cut["cut"]["error95"]
        if isinstance(prepared, Transitions):  # six ordered pairs at most: within the cap
            cells = [row["persons"] for row in out.rows]
            value = float(sum(c["value"] for c in cells))
            error = sum_bound([c["error95"] for c in cells])
            true_total = float(sum(truth["persons"].values()))
            low_ok, high_ok = bracket_holds(value, error, out.cut, true_total, closed=True)
        else:  # the spend over the cap, whales far beyond the cut's cap: a lower bound
            gap = abs(sum(truth["spend"].values()) - sum(exact["spend"].values()))
            low_ok, high_ok = removed - cut_error <= gap, True
        lows += low_ok
        highs += high_ok
    assert lows >= 0.9 * BRACKET_RUNS and highs >= 0.9 * BRACKET_RUNS, (name, lows, highs)


def sum_bound(errors: list[float]) -> float:
    """A conservative 95% bound of a sum of independent noisy cells: the root sum of squares."""
    return float(sum(e * e for e in errors) ** 0.5)


def sql_vectors(
    plan: QueryPlan, compiled: Compiled, exact: list[tuple[Any, ...]]
) -> tuple[dict[Any, list[int]], pipeline.CutCounts | None]:
    """The exact bounded vectors of a SQL answer, as the release reads them, and its cut."""
    grid = list(itertools.product(*(key.domain for key in plan.group_by)))
    n = len(compiled.keys)
    vectors: dict[Any, list[int]] = {m: [0] * len(grid) for m in compiled.measurements}
    counts = None
    for record in exact:
        if compiled.measures.cut is not None:
            counts = pipeline.CutCounts(*(int(v) for v in record[-3:]))
        if tuple(record[:n]) in grid:
            for j, m in enumerate(compiled.measurements):
                vectors[m][grid.index(tuple(record[:n]))] = int(record[n + j])
    return vectors, counts


@pytest.mark.parametrize("question", [*sorted(SHAPES), *(name for name, _ in TEMPLATES)], ids=str)
def test_95_percent_bounds_cover_the_exact_bounded_answer_93_to_97_percent(
    worlds: dict[str, tuple[list[Event], duckdb.DuckDBPyConnection]],
    room_policy: CollaborationPolicy,
    question: str,
) -> None:
    """1,000 releases of one fixed exact bounded answer (the product's own definition) through
    the pipeline: every released vector's values and the cut's three figures, each against
    its 95% bound."""
    _, con = worlds["beyond_cap"]
    privacy = lenient(room_policy)
    cut: pipeline.Cut | None
    if question in SHAPES:
        plan, compiled, exact = compiled_sql(SHAPES[question][0], room_policy, con)
        answer, counts = sql_vectors(plan, compiled, exact)
        cut = compiled.measures.cut
    else:
        params = dict(TEMPLATES)[question]
        prepared = prepare_template(question, params, policy=room_policy, party="reporter")
        found = prepared.exact(DuckDBCursor(con.cursor()), journey_room.TABLES)  # type: ignore[attr-defined]
        if isinstance(prepared, Overlap):
            answer = {prepared.vector: [found.get(c, 0) for c in prepared.cells]}
            cut, counts = None, None
        else:
            assert isinstance(prepared, Journey)
            answer = {
                v: [int(found.get(v.name, {}).get(c, 0)) for c in v.cells]
                for v in prepared.vectors()
            }
            cut = prepared.cut()
            counts = cut_counts(found.get(CUT, {})) if cut is not None else None
    truth = dict(answer)
    if cut is not None:
        assert counts is not None
        truth[cut.volume] = [counts.kept, counts.cut]
        truth[cut.persons] = [counts.persons]
    inside = total = 0
    for _ in range(COVERAGE_RUNS):
        noisy = pipeline.release(answer, cut, counts, epsilon=COVERAGE_EPSILON, privacy=privacy)
        assert noisy.epsilon <= COVERAGE_EPSILON
        for m, exact_values in truth.items():
            r = noisy[m]
            for got, want in zip(r.values, exact_values, strict=True):
                inside += abs(got - want) <= r.error95
                total += 1
    assert total >= COVERAGE_RUNS
    assert 0.93 <= inside / total <= 0.97, (question, inside / total, total)
