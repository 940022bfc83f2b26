"""From exact vectors to released rows, under both mechanisms the policy may choose."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cleanroom.room.policy.privacy import BudgetPolicy, PrivacyPolicy
from cleanroom.room.query.compile import Compiled, compile_plan
from cleanroom.room.query.plan import Aggregate, ColumnRef, GroupKey, QueryPlan, TableRef
from cleanroom.room.query.prepared import bounds
from cleanroom.room.query.release import preview, release

CITIES = ("Tehran", "Qom", "Rasht")
PLAN = QueryPlan(
    tables=(TableRef("okala", "orders", "o"),),
    aggregates=(
        Aggregate("count", "orders"),
        Aggregate("avg", "basket", ColumnRef("o", "amount"), (0.0, 100.0)),
    ),
    group_by=(GroupKey(ColumnRef("o", "city"), CITIES, "city"),),
)


CUT = (500_000, 250_000, 40_000)  # the compiled SQL's last columns: kept, cut, persons over


def compiled_plan(p: PrivacyPolicy) -> Compiled:
    return compile_plan(PLAN, {"okala.orders": "t"}, **bounds(p))


def privacy(mechanism: str) -> PrivacyPolicy:
    return PrivacyPolicy(
        mechanism=mechanism,  # type: ignore[arg-type]
        delta=1e-7 if mechanism == "gaussian" else None,
        budget=BudgetPolicy(epsilon=10, shares={"okala": 5}),
        max_epsilon_per_query=2,
        min_noisy_persons=500,
    )


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_release_under_each_mechanism(mechanism: str) -> None:
    p = privacy(mechanism)
    compiled = compiled_plan(p)
    ms = compiled.measurements
    values = {
        "m_count": 500_000,
        "m_sum__o__amount": 25_000_000,
        "m_n__o__amount": 500_000,
        "m_persons": 100_000,
    }
    exact = [
        ("Tehran", *[values[m.name] for m in ms], *CUT),
        ("Qom", *[2 if m.kind != "sum" else 100 for m in ms], *CUT),
    ]
    out = release(PLAN, compiled, exact, epsilon=Fraction(1), privacy=p)
    assert out.epsilon <= 1 and (out.delta > 0) == (mechanism == "gaussian")
    by_city = {row["city"]: row for row in out.rows}
    assert set(by_city) == {"Tehran"}  # Qom (2 persons) and Rasht (no rows) are under the minimum
    assert out.suppressed == 2
    tehran = by_city["Tehran"]
    assert abs(tehran["orders"]["value"] - 500_000) <= 5 * tehran["orders"]["error95"]
    assert (
        0 <= tehran["basket"]["low"] <= tehran["basket"]["value"] <= tehran["basket"]["high"] <= 100
    )
    priced = preview(PLAN, compiled.measures, epsilon=Fraction(1), privacy=p)
    assert priced["mechanism"] == mechanism and priced["aggregates"]["orders"]["error95"] > 0
    assert priced["cut"]["possible"] and priced["cut"]["epsilon_share"] == "1/10"
    assert out.cut["unit"] == "rows" and out.cut["bound"] == p.max_rows_per_person
    assert abs(out.cut["cut"]["value"] - CUT[1]) <= 5 * out.cut["cut"]["error95"]


def test_average_interval_always_holds_its_estimate() -> None:
    """Even when the noisy sum is negative and the estimate is clamped to the bounds."""
    p = privacy("laplace")
    compiled = compiled_plan(p)
    ms = compiled.measurements
    for _ in range(200):
        exact = [("Tehran", *[100_000 if m.kind != "sum" else 0 for m in ms], *CUT)]
        out = release(PLAN, compiled, exact, epsilon=Fraction(1, 100), privacy=p)
        for row in out.rows:
            basket = row["basket"]
            if basket["value"] is not None:
                assert basket["low"] <= basket["value"] <= basket["high"]
