"""Epsilon as an exact, immutable value: from the policy's decimals to the ledger and the API.

A privacy loss is charged, split and added up; in floats ``0.1 + 0.2`` is not
``0.3`` and a budget would drift by a hair per query. :class:`Epsilon` is a
:class:`~fractions.Fraction` (so the ledger's exact arithmetic and storage as
numerator/denominator keep working) that is never negative, NaN or infinite,
stays an ``Epsilon`` under ``+ - * /`` and ``sum``, reads a decimal the way its
author wrote it (``0.1`` is ``1/10``, not the float's binary expansion), and
is a pydantic type: policy fields validate into it and serialize back to the
decimal number they were written as, so stored policies and the wire format
(``epsilon`` as exact text, ``epsilon_float`` beside it) stay as they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema


class Epsilon(Fraction):
    """A non-negative exact privacy loss (zero is what a cached answer costs)."""

    __slots__ = ()

    def __new__(cls, value: object = 0, denominator: int | None = None) -> Epsilon:
        """Like ``Fraction(value[, denominator])``, but refusing negatives, NaN and infinities."""
        number = _exact(value) if denominator is None else _exact(value) / denominator
        if number < 0:
            raise ValueError(f"epsilon must not be negative, not {number}")
        return super().__new__(cls, number.numerator, number.denominator)

    @classmethod
    def parse(cls, value: object) -> Epsilon:
        """An epsilon from policy text, a request, a JSON number or the ledger's fraction."""
        return value if isinstance(value, Epsilon) else cls(value)

    @classmethod
    def positive(cls, value: object) -> Epsilon:
        """An epsilon that pays for a release: zero would let one through for free."""
        eps = cls.parse(value)
        if eps == 0:
            raise ValueError("epsilon must be positive, not 0")
        return eps

    def __str__(self) -> str:
        """The exact fraction (``1/10``), as the API and the ledger write it."""
        return super().__str__()

    def __repr__(self) -> str:
        """``Epsilon('1/10')``."""
        return f"Epsilon('{self}')"

    def __format__(self, spec: str) -> str:
        """In text: the decimal a policy author wrote (``0.1``), or a float format (``:g``)."""
        if not spec:
            return str(_dump(self))
        return format(float(self), spec)

    def share(self, part: Fraction) -> Epsilon:
        """``part`` of this epsilon, exactly (a documented split of one query's loss)."""
        if not 0 <= part <= 1:
            raise ValueError(f"a share must be within [0, 1], not {part}")
        return Epsilon(self * part)

    def __add__(self, other: Any) -> Any:
        return _wrap(Fraction.__add__(self, other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        return _wrap(Fraction.__sub__(self, other))

    def __mul__(self, other: Any) -> Any:
        return _wrap(Fraction.__mul__(self, other))

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> Any:
        return _wrap(Fraction.__truediv__(self, other))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Accepts a number, a decimal or fraction text, or a Fraction; dumps the number."""
        inputs = core_schema.union_schema(
            [core_schema.int_schema(), core_schema.float_schema(), core_schema.str_schema()]
        )
        python = core_schema.union_schema([core_schema.is_instance_schema(Fraction), inputs])
        return core_schema.no_info_after_validator_function(
            cls.parse,
            core_schema.json_or_python_schema(json_schema=inputs, python_schema=python),
            serialization=core_schema.plain_serializer_function_ser_schema(_dump),
        )


def _exact(value: object) -> Fraction:
    if isinstance(value, bool):
        raise ValueError("epsilon must be a number, not a boolean")
    if isinstance(value, Fraction | int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"epsilon must be finite, not {value}")
        return Fraction(repr(value))  # the decimal the author wrote, not the binary expansion
    if isinstance(value, str):
        try:
            return Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"epsilon must be a finite number, not {value[:40]!r}") from None
    raise ValueError(f"epsilon must be a fraction or a number, not {type(value).__name__}")


def _wrap(result: Any) -> Any:
    """Keep exact non-negative results an Epsilon; anything else (floats, negatives) as is."""
    if isinstance(result, Fraction) and result >= 0:
        return Epsilon(result)
    return result


def _dump(value: Epsilon) -> float | int:
    """A policy's number as it was written: an integer stays one, a decimal its shortest float."""
    return int(value) if value.denominator == 1 else float(value)


def total(values: Sequence[Fraction]) -> Epsilon:
    """The exact sum of several losses (basic composition)."""
    return Epsilon(sum(values, Fraction(0)))
