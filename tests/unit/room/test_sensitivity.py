"""The bounds the engine claims hold: one person, however many rows, moves each exact
aggregate vector by at most the sensitivity handed to the mechanism."""

from __future__ import annotations

import itertools
import math
import random

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query import groups
from cleanroom.room.query.check import check_sql
from cleanroom.room.query.compile import Compiled, compile_plan
from cleanroom.room.query.plan import (
    Aggregate,
    ColumnRef,
    Comparison,
    GroupKey,
    QueryPlan,
    TableRef,
)
from cleanroom.room.query.prepared import bounds
from cleanroom.room.selection import GenerationTables
from tests.unit.room import journey_room
from tests.unit.room.test_analyses_sensitivity import assert_cut_moves_within, extreme_person

CITIES = ("Tehran", "Mashhad", "Isfahan", "Karaj", "Shiraz", "Tabriz")
BOUNDS = (0.0, 1000.0)


def warehouse(rows: list[tuple[int, str, float]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS wh")
    persons, cities, amounts = zip(*rows, strict=True) if rows else ((), (), ())
    data = pa.table(
        {
            "person": pa.array(persons, pa.int64()),
            "city": pa.array(cities, pa.string()),
            "amount": pa.array(amounts, pa.float64()),
        }
    )
    con.register("data", data)
    # As the match publishes it: with each person's rows in a random order (``_rank``).
    con.execute(
        'CREATE TABLE wh."g1__okala__orders" AS SELECT *, '
        "row_number() OVER (PARTITION BY person ORDER BY random()) AS _rank FROM data"
    )
    return con


def plan(filtered: bool = False, persons_only: bool = False) -> QueryPlan:
    """With a filter the engine ranks rows per query; without, it uses the stored rank.

    Counting only persons bounds groups but no rows.
    """
    city = ColumnRef("o", "city")
    amount = ColumnRef("o", "amount")
    aggregates = (
        Aggregate("count", "count"),
        Aggregate("count_persons", "persons"),
        Aggregate("sum", "sum_amount", amount, BOUNDS),
        Aggregate("avg", "avg_amount", amount, BOUNDS),
    )
    return QueryPlan(
        where=Comparison(amount, "is not null") if filtered else None,
        tables=(TableRef("okala", "orders", "o"),),
        aggregates=aggregates[1:2] if persons_only else aggregates,
        group_by=(GroupKey(city, CITIES, "city"),),
    )


def compiled_plan(k: int, g: int, filtered: bool = False, persons_only: bool = False) -> Compiled:
    tables = {"okala.orders": "g1__okala__orders"}
    return compile_plan(plan(filtered, persons_only), tables, k=k, g=g, threshold=True)


def exact(
    con: duckdb.DuckDBPyConnection,
    k: int,
    g: int,
    filtered: bool = False,
    persons_only: bool = False,
) -> dict[str, dict[str, int]]:
    compiled = compiled_plan(k, g, filtered, persons_only)
    out: dict[str, dict[str, int]] = {m.name: {} for m in compiled.measurements}
    for row in con.execute(compiled.sql).fetchall():
        for j, m in enumerate(compiled.measurements):
            out[m.name][row[0]] = int(row[1 + j])
    return out


def cut_totals(con: duckdb.DuckDBPyConnection, compiled: Compiled) -> tuple[int, int, int]:
    """The cut's exact figures, the last three columns of every row: kept, cut, persons over."""
    rows = con.execute(compiled.sql).fetchall()
    return tuple(int(v) for v in rows[0][-3:])  # type: ignore[return-value]


def l1(a: dict[str, int], b: dict[str, int]) -> int:
    return sum(abs(a.get(c, 0) - b.get(c, 0)) for c in CITIES)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 12),
    g=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    extreme=st.floats(-1e9, 1e9, allow_nan=False),
    filtered=st.booleans(),
    persons_only=st.booleans(),
)
def test_one_heavy_person_moves_each_vector_by_at_most_its_sensitivity(
    k: int, g: int, seed: int, extreme: float, filtered: bool, persons_only: bool
) -> None:
    g = min(g, k)
    rng = random.Random(seed)
    base = []
    for person in range(200):  # everyone else within the bounds, so nothing of theirs is dropped
        cities = rng.sample(CITIES, rng.randint(1, g))
        for _ in range(rng.randint(1, k)):
            base.append((person, rng.choice(cities), rng.uniform(*BOUNDS)))
    heavy = [(10_000, CITIES[i % len(CITIES)], extreme) for i in range(10_000)]
    without = exact(warehouse(base), k, g, filtered, persons_only)
    compiled = compiled_plan(k, g, filtered, persons_only)
    with_heavy = exact(warehouse(base + heavy), k, g, filtered, persons_only)
    for m in compiled.measurements:
        assert l1(without[m.name], with_heavy[m.name]) <= m.l1, (m.name, m.l1)
    cut = compiled.measures.cut
    if persons_only and g >= len(CITIES):  # every group a person has fits the bound
        assert cut is None
        return
    assert cut is not None and cut.unit == ("groups" if persons_only else "rows")
    # The heavy person is over every bound: they add their bounded units, a capped cut, one person.
    (kept0, cut0, persons0), (kept1, cut1, persons1) = (
        cut_totals(c, compiled) for c in (warehouse(base), warehouse(base + heavy))
    )
    units = len(CITIES) if persons_only else len(heavy)  # 10,000 rows over 6 groups
    assert persons1 - persons0 == 1 and 0 < kept1 - kept0 <= cut.bound
    assert cut1 - cut0 == min(units - (kept1 - kept0), cut.cap)


@pytest.mark.parametrize("persons_only", [False, True])
def test_undeclared_keys_are_never_counted(persons_only: bool) -> None:
    """Rows are filtered to the declared keys; a person count's groups (g < 6 cities) join
    them instead, and must drop the same rows, from the answer and from the cut."""
    rows = [(1, "Tehran", 5.0), (2, "Atlantis", 7.0), (3, None, 1.0), (1, "tehran", 2.0)]
    con = warehouse(rows)  # type: ignore[arg-type]
    result = exact(con, 10, 5, persons_only=persons_only)
    assert result["m_persons"] == {"Tehran": 1}
    if persons_only:
        assert cut_totals(con, compiled_plan(10, 5, persons_only=True)) == (1, 0, 0)
    else:
        assert result["m_count"] == {"Tehran": 1}


def test_metric_values_are_clamped() -> None:
    con = warehouse([(1, "Tehran", 1e12), (2, "Tehran", -5.0)])
    assert exact(con, 10, 5)["m_sum__o__amount"]["Tehran"] == 1000


@pytest.mark.parametrize(("k", "g"), [(1, 1), (3, 2), (10, 5)])
def test_sensitivities_follow_the_bounds(k: int, g: int) -> None:
    compiled = compiled_plan(k, g)
    by_kind = {m.kind: m.l1 for m in compiled.measurements}
    assert by_kind == {"count": k, "count_persons": g, "sum": k * 1000, "count_values": k}
    alone = compiled_plan(k, g, persons_only=True).measurements
    assert [(m.kind, m.l1) for m in alone] == [("count_persons", g)]
    assert '"_rank"' not in compiled_plan(k, g, persons_only=True).sql


SHAPES = [
    "SELECT COUNT(*) FROM alpha.events",
    "SELECT COUNT(DISTINCT person) FROM alpha.events",
    "SELECT SUM(amount), AVG(amount) FROM beta.events",
    "SELECT channel, COUNT(*), COUNT(DISTINCT person), SUM(amount), AVG(amount)"
    " FROM alpha.events GROUP BY channel",
    "SELECT channel, COUNT(DISTINCT person) FROM beta.events GROUP BY channel",
    "SELECT channel, SUM(amount), AVG(amount) FROM beta.events WHERE channel = 'app'"
    " GROUP BY channel",
    "SELECT COUNT(*), AVG(amount) FROM gamma.events WHERE amount IS NULL OR channel IN ('web')",
    "SELECT c.arm, e.channel, COUNT(*), COUNT(DISTINCT c.person), SUM(e.amount), AVG(e.amount)"
    " FROM alpha.campaign AS c JOIN beta.events AS e ON c.person = e.person"
    " GROUP BY c.arm, e.channel",
    "SELECT a.channel, b.channel AS other, COUNT(DISTINCT a.person), AVG(b.amount)"
    " FROM alpha.events AS a JOIN gamma.events AS b ON a.person = b.person"
    " GROUP BY a.channel, b.channel",
    # Persons only, four groups over G: each person's G groups by one aggregation per person.
    "SELECT a.channel, b.channel AS other, COUNT(DISTINCT a.person)"
    " FROM alpha.events AS a JOIN gamma.events AS b ON a.person = b.person"
    " GROUP BY a.channel, b.channel",
]
K, G = 40, 2  # ordinary persons have at most 12 events a brand: all their joined rows fit in K


@pytest.fixture(scope="module")
def sql_policy() -> CollaborationPolicy:
    return journey_room.policy(k=K, g=G)


def released_sql(
    prepared: QueryPlan, privacy: PrivacyPolicy, con: duckdb.DuckDBPyConnection
) -> tuple[Compiled, dict[str, dict[tuple[object, ...], int]]]:
    """The engine's compiled SQL for the plan, run: per measurement, exact value per group.

    The cut's three figures come under ``"_cut"`` as cells ``("kept",)``, ``("cut",)``,
    ``("persons",)``.
    """
    tables = GenerationTables(journey_room.TABLES, 0x5EED)  # one generation: one salt
    compiled = compile_plan(prepared, tables, **bounds(privacy))
    out: dict[str, dict[tuple[object, ...], int]] = {m.name: {} for m in compiled.measurements}
    out["_cut"] = {("kept",): 0, ("cut",): 0, ("persons",): 0}
    n = len(compiled.keys)
    for row in con.execute(compiled.sql).fetchall():
        if compiled.measures.cut is not None:
            out["_cut"] = {
                (c,): int(v) for c, v in zip(("kept", "cut", "persons"), row[-3:], strict=True)
            }
        if any(key is None for key in row[:n]):  # only the cut's totals
            continue
        for j, m in enumerate(compiled.measurements):
            out[m.name][tuple(row[:n])] = int(row[n + j])
    return compiled, out


@pytest.mark.parametrize("groups_as", ["bits", "pairs"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), extreme=extreme_person())
def test_every_sql_shape_moves_by_at_most_its_l1_and_l2(
    sql_policy: CollaborationPolicy,
    groups_as: str,
    seed: int,
    extreme: tuple[list[journey_room.Event], list[journey_room.Exposure]],
) -> None:
    """Whales, refunds, values beyond the bounds, NULL and NaN amounts, undeclared groups;
    a person count's groups as the bits of one integer, and as pairs (more groups)."""
    privacy = sql_policy.privacy
    assert privacy is not None
    events, exposures = journey_room.ordinary(seed, persons=60)
    without = journey_room.load(events, exposures)
    with_ = journey_room.load(events + extreme[0], exposures + extreme[1])
    with pytest.MonkeyPatch.context() as patch:
        if groups_as == "pairs":
            patch.setattr(groups, "MASK_CELLS", 0)
        for sql in SHAPES:
            _assert_within_bounds(sql, sql_policy, privacy, without, with_)


def _assert_within_bounds(
    sql: str,
    sql_policy: CollaborationPolicy,
    privacy: PrivacyPolicy,
    without: duckdb.DuckDBPyConnection,
    with_: duckdb.DuckDBPyConnection,
) -> None:
    """Every measurement of ``sql`` moves by at most its L1 and L2, and the cut within it."""
    plan = check_sql(sql, policy=sql_policy, party="alpha")
    compiled, before = released_sql(plan, privacy, without)
    _, after = released_sql(plan, privacy, with_)
    grid = list(itertools.product(*(key.domain for key in plan.group_by)))
    for m in compiled.measurements:
        diffs = [abs(after[m.name].get(k, 0) - before[m.name].get(k, 0)) for k in grid]
        assert sum(diffs) <= m.l1, (sql, m.name, sum(diffs), m.l1)
        assert math.sqrt(sum(d * d for d in diffs)) <= m.l2 * (1 + 1e-12), (sql, m.name)
    if compiled.measures.cut is not None:
        assert_cut_moves_within(compiled.measures.cut, before["_cut"], after["_cut"])


def test_a_missing_metric_is_neither_summed_nor_counted(sql_policy: CollaborationPolicy) -> None:
    """DuckDB's greatest(NULL, lower) is lower: a clamp must not turn a missing value into it."""
    privacy = sql_policy.privacy
    assert privacy is not None
    at = journey_room.START
    rows = [
        journey_room.Event(1, "beta", at, "app", None),
        journey_room.Event(2, "beta", at, "app", -1e9),
        journey_room.Event(3, "beta", at, "app", 100.4),
    ]
    plan = check_sql(
        "SELECT SUM(amount), AVG(amount) FROM beta.events", policy=sql_policy, party="alpha"
    )
    compiled, exact = released_sql(plan, privacy, journey_room.load(rows, []))
    by_kind = {m.kind: exact[m.name] for m in compiled.measurements}
    lo = journey_room.REFUNDS[0]
    assert by_kind["sum"] == {(): int(lo) + 100}  # not 2 * lo + 100
    assert by_kind["count_values"] == {(): 2}
