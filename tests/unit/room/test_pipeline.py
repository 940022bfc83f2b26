"""The one release pipeline: the documented split, noise keyed by the declared objects, the cut."""

from __future__ import annotations

from fractions import Fraction

import pytest

from cleanroom.room import dp, pipeline
from cleanroom.room.policy.privacy import BudgetPolicy, PrivacyPolicy
from cleanroom.room.sensitivity import once_per_cell


def privacy(mechanism: str = "laplace") -> PrivacyPolicy:
    return PrivacyPolicy(
        mechanism=mechanism,  # type: ignore[arg-type]
        delta=1e-6 if mechanism == "gaussian" else None,
        budget=BudgetPolicy(epsilon=10, shares={"a": 10}),
        max_epsilon_per_query=10,
    )


def test_the_split_adds_back_to_the_charge_exactly() -> None:
    a, b = pipeline.Vector("a", once_per_cell(1)), pipeline.Vector("a", once_per_cell(1))
    cut = pipeline.Cut.of("rows", 10)
    split = pipeline.split(Fraction(7, 10), [a, b], cut, privacy())
    assert split.epsilon[a] == split.epsilon[b] == Fraction(7, 10) * Fraction(9, 20)
    assert split.epsilon[cut.volume] == split.epsilon[cut.persons] == Fraction(7, 200)
    assert split.total == Fraction(7, 10)
    alone = pipeline.split(Fraction(7, 10), [a], None, privacy())
    assert alone.total == alone.epsilon[a] == Fraction(7, 10)


def test_measurements_are_told_apart_by_reference_not_name() -> None:
    a, b = pipeline.Vector("same", once_per_cell(1)), pipeline.Vector("same", once_per_cell(1))
    noisy = pipeline.release(
        {a: [10**9], b: [0]}, None, None, epsilon=Fraction(10), privacy=privacy()
    )
    assert noisy[a].values[0] > 10**8 and noisy[b].values[0] < 10**8


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_the_cut_is_disclosed_with_its_bounds(mechanism: str) -> None:
    cut = pipeline.Cut.of("rows", 10)
    assert (cut.cap, cut.volume.l1, cut.persons.l1) == (100, 110, 1)
    v = pipeline.Vector("count", once_per_cell(1))
    counts = pipeline.CutCounts(kept=1_000_000, cut=500_000, persons=40_000)
    noisy = pipeline.release(
        {v: [1]}, cut, counts, epsilon=Fraction(10), privacy=privacy(mechanism)
    )
    shown = noisy.cut
    assert shown["material"] and shown["unit"] == "rows" and shown["cut"]["at_least"]
    assert shown["share"]["low"] <= 1 / 3 <= shown["share"]["high"]
    assert abs(shown["persons"]["value"] - 40_000) <= 5 * shown["persons"]["error95"]
    none = pipeline.CutCounts(1_000_000, 0, 0)
    material = [
        pipeline.release({v: [1]}, cut, none, epsilon=Fraction(1), privacy=privacy()).cut[
            "material"
        ]
        for _ in range(40)
    ]
    assert sum(material) <= 6  # noisily "no material cut": wrong ~2.5% of the time


@pytest.mark.parametrize("kept", [2_000_000, 2_000_001, 1_999_999, 7, 3])
def test_the_cut_share_interval_is_rounded_outwards(kept: int) -> None:
    """Four decimals never narrow the interval: a tight one still holds its own ends."""
    removed, e = 1_000_000, 0.5
    release = dp.Release([kept, removed], 1.0, e, Fraction(1), 0.0)
    share = pipeline.disclose(pipeline.Cut.of("rows", 10), release, release)["share"]
    low = (removed - e) / (removed - e + kept + e)
    high = (removed + e) / (removed + e + kept - e)
    assert share["low"] <= low <= high <= share["high"]
    assert share["high"] - share["low"] <= high - low + 2e-4


def test_the_price_names_the_share() -> None:
    v = pipeline.Vector("count", once_per_cell(1))
    errors, cut = pipeline.preview(
        [v], pipeline.Cut.of("pairs", 3), epsilon=Fraction(1), privacy=privacy()
    )
    assert errors[v] > 0 and cut["epsilon_share"] == "1/10" and cut["epsilon"] == "1/10"
    assert pipeline.preview([v], None, epsilon=Fraction(1), privacy=privacy())[1] == {
        "possible": False,
        "epsilon_share": "0",
    }
