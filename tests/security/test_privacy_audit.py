"""Measured vs claimed epsilon: the engine's mechanisms audited on neighbouring datasets.

D is a small table of ordinary persons; D' adds one person with the most
damaging contribution the bounds allow to matter (10,000 rows, all in one
group, at the extreme metric value). The cut disclosure (rows over the bound
and persons over it, paid from the query's epsilon) is audited the same way
against its share. The bounded exact aggregates are
computed by the engine's own compiled SQL, and each release goes through the
engine's own release path (OpenDP noise, thresholds, post-processing). The
audited lower bound must stay under the epsilon the engine claims for the
audited number, and a deliberately broken calibration (sensitivity
under-declared) must be caught, so the audit has the power to fail.
"""

from __future__ import annotations

import random
from dataclasses import replace
from fractions import Fraction

import duckdb
import pyarrow as pa
import pytest

from cleanroom.room import dp
from cleanroom.room.bounds import MEASURES, candidates, choose
from cleanroom.room.pipeline import ANSWER_SHARE, Vector
from cleanroom.room.policy.privacy import AdaptiveBounds, BudgetPolicy, PrivacyPolicy
from cleanroom.room.query.compile import Compiled, compile_plan
from cleanroom.room.query.plan import Aggregate, ColumnRef, GroupKey, QueryPlan, TableRef
from cleanroom.room.query.release import release
from cleanroom.room.sensitivity import Contribution
from tests.security.audit import clopper_pearson, epsilon_lower_bound

CITIES = ("Tehran", "Qom", "Rasht")
BOUNDS = (0.0, 1000.0)
SAMPLES = 2500
TABLES = {"okala.orders": "g1__okala__orders"}


def table(rows: list[tuple[int, str, float]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS wh")
    persons, cities, amounts = zip(*rows, strict=True)
    con.register(
        "data",
        pa.table(
            {
                "person": pa.array(persons, pa.int64()),
                "city": pa.array(cities, pa.string()),
                "amount": pa.array(amounts, pa.float64()),
            }
        ),
    )
    con.execute(
        'CREATE TABLE wh."g1__okala__orders" AS SELECT *, '
        "row_number() OVER (PARTITION BY person ORDER BY random()) AS _rank FROM data"
    )
    return con


@pytest.fixture(scope="module")
def neighbours() -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
    rng = random.Random(3)
    base = [
        (p, rng.choice(CITIES), rng.uniform(*BOUNDS))
        for p in range(300)
        for _ in range(rng.randint(1, 4))
    ]
    heavy = [(10_000, "Tehran", 1e9) for _ in range(10_000)]
    return table(base), table(base + heavy)


def plan(kind: str) -> QueryPlan:
    amount = ColumnRef("o", "amount")
    aggregate = {
        "count": Aggregate("count", "v"),
        "sum": Aggregate("sum", "v", amount, BOUNDS),
        "persons": Aggregate("count_persons", "v"),
    }[kind]
    return QueryPlan(
        tables=(TableRef("okala", "orders", "o"),),
        aggregates=(aggregate,),
        group_by=(GroupKey(ColumnRef("o", "city"), CITIES, "city"),),
    )


def privacy(mechanism: str) -> PrivacyPolicy:
    return PrivacyPolicy(
        mechanism=mechanism,  # type: ignore[arg-type]
        delta=1e-6 if mechanism == "gaussian" else None,
        budget=BudgetPolicy(epsilon=10, shares={"okala": 10}),
        max_epsilon_per_query=10,
        max_rows_per_person=10,
        max_groups_per_person=2,
        min_noisy_persons=0,
    )


def samples(
    con: duckdb.DuckDBPyConnection, compiled: Compiled, p: PrivacyPolicy, epsilon: Fraction
) -> list[float]:
    """The released Tehran value, over many releases of one exact (bounded) answer."""
    exact = con.execute(compiled.sql).fetchall()
    out = []
    for _ in range(SAMPLES):
        released = release(plan_of[compiled.sql], compiled, exact, epsilon=epsilon, privacy=p)
        row = next(r for r in released.rows if r["city"] == "Tehran")
        out.append(float(row["v"]["value"]))
    return out


plan_of: dict[str, QueryPlan] = {}


@pytest.mark.parametrize(
    ("kind", "mechanism"),
    [("count", "laplace"), ("sum", "laplace"), ("persons", "laplace"), ("count", "gaussian")],
)
def test_audited_epsilon_stays_under_the_claim(
    neighbours: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection],
    kind: str,
    mechanism: str,
) -> None:
    p = privacy(mechanism)
    epsilon = Fraction(1)
    q = plan(kind)
    compiled = compile_plan(q, TABLES, k=10, g=2, threshold=False)
    plan_of[compiled.sql] = q
    assert len(compiled.measurements) == 1  # this number spends 9/10 of it (1/10: the cut)
    d, d_prime = neighbours
    without, with_ = samples(d, compiled, p, epsilon), samples(d_prime, compiled, p, epsilon)
    assert with_ != without
    audited = epsilon_lower_bound(without, with_, delta=p.delta or 0.0)
    assert audited <= float(epsilon), (kind, mechanism, audited)
    record(f"{kind}/{mechanism}", audited, float(epsilon))


def test_the_audit_catches_an_under_declared_sensitivity(
    neighbours: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection],
) -> None:
    """The same count released as if one person could move it by 1 (it can by 10)."""
    p = privacy("laplace")
    q = plan("count")
    compiled = compile_plan(q, TABLES, k=10, g=2, threshold=False)
    (m,) = compiled.measurements
    weak = replace(m, l1=1, l2=1)
    measures = replace(compiled.measures, all=[weak], per_aggregate=((weak,),))
    broken = replace(compiled, measures=measures)
    plan_of[broken.sql] = q
    d, d_prime = neighbours
    without = samples(d, broken, p, Fraction(1))
    with_ = samples(d_prime, broken, p, Fraction(1))
    audited = epsilon_lower_bound(without, with_)
    assert audited > 1.0, audited
    record("count/laplace, sensitivity under-declared (must fail)", audited, 1.0)


def cut_samples(
    con: duckdb.DuckDBPyConnection, compiled: Compiled, figure: str, epsilon: Fraction
) -> list[float]:
    """The released cut figure (rows cut, or persons over the bound), over many releases."""
    exact = con.execute(compiled.sql).fetchall()
    p = privacy("laplace")
    out = []
    for _ in range(SAMPLES):
        released = release(plan_of[compiled.sql], compiled, exact, epsilon=epsilon, privacy=p)
        assert released.epsilon <= epsilon
        out.append(float(released.cut[figure]["value"]))
    return out


# The cut is audited at a query epsilon of 10, so that its share (1/20 each figure) is a
# claim of 0.5 the audit has the power to refute.
CUT_EPSILON = Fraction(10)
CUT_CLAIM = CUT_EPSILON * (1 - ANSWER_SHARE) / 2


@pytest.mark.parametrize("figure", ["cut", "persons"])
def test_the_cut_disclosure_audited_epsilon_stays_under_its_share(
    neighbours: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection], figure: str
) -> None:
    """D' adds a person 9,990 rows over the bound: rows cut move by the cap, persons by one."""
    q = plan("count")
    compiled = compile_plan(q, TABLES, k=10, g=2, threshold=False)
    assert compiled.measures.cut is not None
    plan_of[compiled.sql] = q
    d, d_prime = neighbours
    without = cut_samples(d, compiled, figure, CUT_EPSILON)
    with_ = cut_samples(d_prime, compiled, figure, CUT_EPSILON)
    audited = epsilon_lower_bound(without, with_)
    assert audited <= float(CUT_CLAIM), (figure, audited)
    record(f"cut disclosure: {figure}/laplace", audited, float(CUT_CLAIM))


def test_the_audit_catches_an_under_declared_cut_sensitivity(
    neighbours: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection],
) -> None:
    """The rows cut released as if one person could move them by 1 (they can by the cap)."""
    q = plan("count")
    compiled = compile_plan(q, TABLES, k=10, g=2, threshold=False)
    cut = compiled.measures.cut
    assert cut is not None
    object.__setattr__(cut, "volume", Vector("cut", Contribution(cells=2, per_cell=1)))
    plan_of[compiled.sql] = q
    d, d_prime = neighbours
    without = cut_samples(d, compiled, "cut", CUT_EPSILON)
    with_ = cut_samples(d_prime, compiled, "cut", CUT_EPSILON)
    audited = epsilon_lower_bound(without, with_)
    assert audited > float(CUT_CLAIM), audited
    record("cut disclosure: rows cut, sensitivity under-declared (must fail)", audited, 0.5)


def test_clopper_pearson_matches_known_values() -> None:
    low, high = clopper_pearson(0, 100)
    assert low == 0 and high == pytest.approx(0.0362, abs=1e-3)
    low, high = clopper_pearson(50, 100)
    assert low == pytest.approx(0.3983, abs=1e-3) and high == pytest.approx(0.6017, abs=1e-3)


AUDIT: list[tuple[str, float, float]] = []


def record(name: str, audited: float, claimed: float) -> None:
    """Kept for SECURITY.md's table (printed with -s)."""
    AUDIT.append((name, audited, claimed))
    print(f"privacy audit: {name}: measured epsilon >= {audited:.3f}, claimed {claimed}")


def test_noise_is_opendps() -> None:
    r = dp.laplace_release([0], l1_sensitivity=1, epsilon=Fraction(1))
    assert isinstance(r.values[0], int)


# -- the DP quantile that chooses per-person bounds at match time (cleanroom.room.bounds) ------

QUANTILE_GRID = candidates(8)  # 1, 2, 3, 5, 8
# D: persons' row counts with the 0.95 quantile on the edge between two candidates; D' adds
# one person above every candidate, the change that moves this quantile's score the most.
QUANTILE_D = [2] * 38 + [5] * 2
QUANTILE_EXTRA = 8


def chosen_rows(values: list[int], adaptive: AdaptiveBounds) -> list[float]:
    """The rows bound a match chooses from these counts, over many matches."""
    per_person = [(v, 1) for v in values]
    return [
        float(choose(per_person, adaptive, Fraction(str(adaptive.epsilon))).rows)
        for _ in range(SAMPLES)
    ]


def test_the_bounds_quantile_stays_under_its_claim() -> None:
    """The match's whole choice costs epsilon; the row bound alone is claimed at its share."""
    adaptive = AdaptiveBounds(
        epsilon=3.0,  # one epsilon per measure: the row bound's share is 1.0
        charged_to="okala",
        quantile=0.95,
        max_rows_per_person=8,
        max_groups_per_person=8,
    )
    without = chosen_rows(QUANTILE_D, adaptive)
    with_ = chosen_rows([*QUANTILE_D, QUANTILE_EXTRA], adaptive)
    assert with_ != without and len(set(without)) > 1
    audited = epsilon_lower_bound(without, with_)
    claimed = adaptive.epsilon / len(MEASURES)
    assert audited <= claimed, audited
    record("bounds quantile (rows)/exponential", audited, claimed)


def test_the_audit_catches_an_over_spent_quantile() -> None:
    """The same quantile run at four times the epsilon it is claimed at must be caught."""
    m = dp.quantile_measurement(QUANTILE_GRID, 0.95, 4.0)
    without = [float(m(QUANTILE_D)) for _ in range(SAMPLES)]
    with_ = [float(m([*QUANTILE_D, QUANTILE_EXTRA])) for _ in range(SAMPLES)]
    audited = epsilon_lower_bound(without, with_)
    assert audited > 1.0, audited
    record("bounds quantile at 4x its claim (must fail)", audited, 1.0)
