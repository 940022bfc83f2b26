"""The exact epsilon value: parsed as written, exact under arithmetic, a pydantic type."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from cleanroom.room.epsilon import Epsilon, total


class Model(BaseModel):
    epsilon: Epsilon = Field(gt=0, le=10)


def test_a_decimal_is_read_as_written() -> None:
    assert Epsilon(0.1) == Fraction(1, 10) and Epsilon("0.1") == Fraction(1, 10)
    assert str(Epsilon("0.3")) == "3/10" and repr(Epsilon(2)) == "Epsilon('2')"
    assert Epsilon(0.1) + Epsilon(0.2) == Epsilon("0.3")  # floats would not
    assert isinstance(Epsilon(1) / 3, Epsilon) and isinstance(
        sum([Epsilon(1)], Epsilon(0)), Epsilon
    )


@pytest.mark.parametrize("bad", [-1, "-0.5", math.nan, math.inf, "x", True, None, [1]])
def test_nonsense_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        Epsilon(bad)


def test_zero_pays_for_nothing() -> None:
    assert Epsilon(0) == 0
    with pytest.raises(ValueError):
        Epsilon.positive(0)


@given(st.lists(st.fractions(min_value=0, max_value=10, max_denominator=10**6), max_size=20))
def test_sums_and_shares_are_exact(parts: list[Fraction]) -> None:
    eps = [Epsilon(p) for p in parts]
    assert total(eps) == sum(parts, Fraction(0))
    for e in eps:
        assert e.share(Fraction(9, 10)) + e.share(Fraction(1, 10)) == e


@given(st.decimals(min_value="0.000001", max_value=10, places=6))
def test_the_wire_format_round_trips(value: object) -> None:
    model = Model(epsilon=str(value))  # type: ignore[arg-type]
    assert model.epsilon == Fraction(str(value))
    again = Model.model_validate_json(model.model_dump_json())
    assert again.epsilon == model.epsilon  # dumped as the decimal, read back exactly


def test_policy_bounds_apply() -> None:
    with pytest.raises(ValidationError):
        Model(epsilon=0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Model(epsilon="11")  # type: ignore[arg-type]


def test_text_shows_the_decimal_and_takes_float_formats() -> None:
    assert (
        f"{Epsilon('0.1')}" == "0.1" and f"{Epsilon(2)}" == "2" and f"{Epsilon('0.25'):g}" == "0.25"
    )
    assert str(Epsilon("0.1")) == "1/10"  # the API's exact text
