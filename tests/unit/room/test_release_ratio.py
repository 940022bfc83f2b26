"""AVG and rates: a noisy total over a noisy count, never clamped into a false precision."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cleanroom import accuracy
from cleanroom.room.query.release import ratio


def parse(text: str | None) -> float:
    assert text is not None
    return float(text.replace(",", ""))


@given(
    total=st.integers(min_value=-(10**9), max_value=10**9),
    total_error=st.floats(min_value=0.5, max_value=1e8),
    count=st.integers(min_value=-100, max_value=10**6),
    count_error=st.floats(min_value=0.5, max_value=1e4),
    hi=st.integers(min_value=1, max_value=10**7),
)
def test_an_average_is_never_clamped_into_a_precise_looking_number(
    total: int, total_error: float, count: int, count_error: float, hi: int
) -> None:
    cell = ratio(total, total_error, count, count_error, 0, hi, unit=accuracy.MEAN)
    r = accuracy.read(cell)
    raw = total / count if count > 0 else None
    if raw is None or not 0 <= raw <= hi:
        # no usable count, or the estimate was cut at an edge: only the range is shown
        assert r.kind == "range" and r.value is None
        assert cell["value"] is None or cell.get("clamped")
    if count - count_error <= 0:
        assert cell.get("range_only")
    if r.kind == "interval":
        assert cell["low"] <= cell["value"] <= cell["high"]
        assert parse(r.low) <= cell["low"] and parse(r.high) >= cell["high"]  # outwards
    if r.kind == "range":
        assert parse(r.low) <= cell["low"] and parse(r.high) >= cell["high"]


def test_a_negative_noisy_sum_reads_as_a_range_not_as_zero() -> None:
    cell = ratio(-40_000, 116_676, 3, 9.5, 0, 20_000_000, unit=accuracy.MEAN)
    assert cell["clamped"] and cell["range_only"]
    text = accuracy.annotate_cell(cell)["display"]
    assert text.startswith("between 0 and ") and "±" not in text


def test_ratio_calls_a_proportion_a_share_and_an_average_a_mean() -> None:
    assert ratio(30, 2, 100, 2, 0, 1)["unit"] == "share"
    assert ratio(30, 2, 100, 2, 0, 1, unit="mean")["unit"] == "mean"
    assert ratio(30, 2, 100, 2, 0, 500)["unit"] == "mean"
    assert ratio(30, 2, 0, 2, 0, 1) == {
        "value": None, "low": 0, "high": 1, "error95": None, "unit": "share", "range_only": True,
    }  # fmt: skip


def test_an_interval_over_most_of_the_range_is_only_a_range() -> None:
    wide = ratio(500, 400, 1_000, 5, 0, 1)  # 0.5 in [0.1, 0.9]: most of [0, 1]
    assert wide["range_only"] and accuracy.read(wide).kind == "range"
    narrow = ratio(500, 10, 1_000, 5, 0, 1)
    assert "range_only" not in narrow and "clamped" not in narrow
    assert accuracy.annotate_cell(narrow)["display"] == "50.0% [48.7%, 51.3%]"  # outwards
