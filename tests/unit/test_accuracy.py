"""Reading a released number: the mostly-noise flag, rounding to the bound, percentages, ranges."""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from cleanroom import accuracy


def parse(text: str | None) -> float:
    assert text is not None
    return float(text.replace(",", ""))


def lr(cell: dict[str, object]) -> accuracy.Reading:
    return accuracy.read(cell)


counts = st.integers(min_value=-(10**12), max_value=10**12)
errors = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False)
shares = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_the_issues_examples_read_as_their_bound_allows() -> None:
    assert accuracy.read({"value": 21_381, "error95": 9.0}).english() == "21,381 ± 9"
    wide = accuracy.read({"value": 783_232, "error95": 1_599_597.0})
    assert wide.english() == "≈ 800,000 ± 1,600,000"
    assert wide.mostly_noise and wide.approx
    rate = {"value": 0.4213, "low": 0.4012, "high": 0.4421, "error95": 0.0208, "unit": "share"}
    assert accuracy.read(rate).english() == "42.1% [40.1%, 44.3%]"


@given(value=counts, error=errors)
def test_rounding_a_count_never_hides_more_than_its_bound_allows(value: int, error: float) -> None:
    r = accuracy.read({"value": value, "error95": error})
    assert r.kind == "estimate"
    shown, bound = parse(r.value), parse(r.error)
    # The value moves by at most half a step, a step is at most a tenth of the bound
    # (or one unit for a count), and the bound shown is never smaller than the real one.
    assert abs(shown - value) <= r.step / 2 + 1e-9 * max(1, abs(value))
    assert r.step <= max(1.0, error / 10)
    assert error <= bound + 1e-9 * bound < error + r.step + 1e-9 * bound
    assert shown % r.step == 0 or r.step < 1
    assert r.approx == (Decimal(repr(shown)) != Decimal(value))


@given(value=counts, error=errors)
def test_a_flagged_number_really_is_within_its_bound_of_zero(value: int, error: float) -> None:
    cell = {"value": value, "error95": error}
    annotated = accuracy.annotate_cell(cell)
    assert annotated["mostly_noise"] is (abs(value) <= error)
    assert annotated["value"] == value and annotated["error95"] == error  # raw kept
    assert annotated == accuracy.annotate_cell(annotated)  # idempotent


@given(value=shares, spread=st.floats(min_value=1e-5, max_value=0.5))
def test_shares_read_as_percentages_consistent_with_the_raw_interval(
    value: float, spread: float
) -> None:
    low, high = max(0.0, value - spread), min(1.0, value + spread)
    cell = {"value": value, "low": low, "high": high, "error95": spread, "unit": "share"}
    r = accuracy.read(cell)
    assert r.percent and r.kind == "interval"
    shown, lo, hi = parse(r.value), parse(r.low), parse(r.high)
    assert abs(shown - value * 100) <= r.step * 100 / 2 + 1e-9
    assert lo <= low * 100 + 1e-9 and hi >= high * 100 - 1e-9  # never narrower
    assert 0 <= lo <= shown <= hi <= 100
    assert accuracy.annotate_cell(cell)["display"].count("%") == 3


def test_a_difference_of_shares_reads_in_points() -> None:
    cell = {"value": 0.031, "low": -0.005, "high": 0.067, "error95": 0.036, "unit": "points"}
    r = accuracy.read(cell)
    assert r.english() == "3.1 pp [-0.5 pp, 6.7 pp]"
    assert r.mostly_noise  # its interval includes 0


def test_annotate_flags_every_cell_and_says_which_rule_withheld_groups() -> None:
    result = {
        "query_id": "q",
        "columns": ["city", "orders"],
        "rows": [
            {"city": "Kerman", "orders": {"value": 783_232, "error95": 1_599_597.0}},
            {"city": "Tehran", "orders": {"value": 21_381, "error95": 9.0}},
        ],
        "suppressed_groups": 3,
        "pairwise": [{"pair": "a+b", "both": {"value": 4, "error95": 9.0}}],
        "epsilon_float": 0.5,
    }
    out = accuracy.annotate(result, min_noisy_persons=10)
    assert [r["orders"]["mostly_noise"] for r in out["rows"]] == [True, False]
    assert out["pairwise"][0]["both"]["mostly_noise"] is True
    assert out["rules"] == [
        {
            "rule": "min_noisy_persons",
            "cells": 3,
            "threshold": 10,
            "message": "3 group(s) withheld: their noisy size was fewer than 10 persons "
            "(min_noisy_persons)",
        }
    ]
    assert accuracy.annotate(out) == out
    assert "rules" not in accuracy.annotate({**result, "suppressed_groups": 0})
    assert result["rows"][0]["orders"] == {"value": 783_232, "error95": 1_599_597.0}  # untouched


@given(error=errors)
def test_the_step_has_two_significant_digits_of_the_error(error: float) -> None:
    e = accuracy.exponent(error, integer=False)
    assert 10 <= error / 10.0**e < 100 * (1 + 1e-12) or math.isclose(error / 10.0**e, 100)
