"""How far a released number may be read: the mostly-noise flag, rounding to its bound, percentages.

A released number is a noisy estimate with a 95% error bound. Printed with
more digits than its bound supports (``783,232 ± 1,599,597``) it reads as
precise; printed without a mark when the bound is as large as the number it
reads as signal. So every surface (API, pages, CLI, reports, client) reads a
cell through this one module:

- **mostly noise**: ``|value| <= error95`` — the 95% interval reaches zero (or
  beyond); such a cell is flagged, never shown as a plain number;
- **rounding**: to two significant digits of the error (``step``), the value
  to the nearest step and the bound *up* to a step, so the shown bound is never
  smaller than the real one and rounding moves the value by at most a
  twentieth of it; an interval is rounded outwards;
- **shares** (``unit: share``: rates, conversions, retention shares) read as
  percentages, a difference of shares (``unit: points``) in percentage points;
- an interval that only says "somewhere in the allowed range" (``range_only``,
  ``clamped``, or no usable count) is shown as that range, never as a value.

Display only: the raw value stays in the result; :func:`annotate` adds the
flag, the step and an English ``display`` form beside it. Pure data, shared
by the room and the client (no room imports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

SHARE = "share"  # a proportion in [0, 1]: read as a percentage
POINTS = "points"  # a difference of two shares: read in percentage points
MEAN = "mean"  # an average in the metric's own unit

# The rules that withhold a cell or narrow what it counts (stable ids, as in refusals).
MIN_NOISY_PERSONS = "min_noisy_persons"
JOIN_REQUIRED = "join_required"

Kind = Literal["estimate", "interval", "range", "none"]


def finite(value: object) -> float | None:
    """A finite number, or None (booleans are labels, not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def is_cell(value: object) -> bool:
    """A released number: a mapping with a ``value`` (which may be None when unusable)."""
    return isinstance(value, Mapping) and "value" in value


def mostly_noise(cell: Mapping[str, Any]) -> bool:
    """Whether the cell's 95% bound reaches its value: ``|value| <= error95``.

    A cell with no value or no bound is not flagged here (it is shown as a
    range, or as withheld, instead).
    """
    value, error = finite(cell.get("value")), finite(cell.get("error95"))
    if value is None or error is None:
        return False
    return abs(value) <= error


def exponent(error: float | None, *, integer: bool) -> int:
    """The power of ten of the rounding step: two significant digits of the error.

    Counts and sums never go below 1; a number without a usable bound keeps
    four decimals (integers: units).
    """
    if error is None or error <= 0:
        return 0 if integer else -4
    e = Decimal(repr(error)).adjusted() - 1  # exact, where log10 rounds 999.9999… up to 3
    return max(e, 0) if integer else e


def _q(e: int) -> Decimal:
    return Decimal(1).scaleb(e)


def _round(value: float, e: int, mode: str) -> Decimal:
    q = _q(e)
    return (Decimal(repr(value)) / q).to_integral_value(rounding=mode) * q


def _text(number: Decimal, e: int, *, scale: int = 0) -> str:
    """``1,234.5``: grouped, with exactly the decimals the step has (percent: ``scale=2``)."""
    shifted = number.scaleb(scale)
    if shifted == 0:
        shifted = Decimal(0)  # never "-0"
    places = max(0, -(e + scale))
    return f"{shifted:,.{places}f}"


@dataclass(frozen=True)
class Reading:
    """A cell as people read it: its texts (English digits and separators) and its marks.

    ``kind``: ``estimate`` (value ± error), ``interval`` (value [low, high]),
    ``range`` (only [low, high] means anything), ``none`` (nothing to show).
    Texts carry no unit sign; ``percent`` / ``points`` say how to read them.
    """

    kind: Kind
    value: str | None
    error: str | None
    low: str | None
    high: str | None
    approx: bool
    step: float
    mostly_noise: bool
    percent: bool
    points: bool
    clamped: bool

    def english(self) -> str:
        """The display form the API sends beside the raw value."""
        unit = "%" if self.percent else " pp" if self.points else ""
        if self.kind == "estimate":
            return f"{'≈ ' if self.approx else ''}{self.value}{unit} ± {self.error}{unit}"
        if self.kind == "interval":
            approx = "≈ " if self.approx else ""
            return f"{approx}{self.value}{unit} [{self.low}{unit}, {self.high}{unit}]"
        if self.kind == "range":
            return f"between {self.low}{unit} and {self.high}{unit}"
        return "—"


def read(cell: Mapping[str, Any]) -> Reading:
    """How one released cell is read (see the module docstring)."""
    value, error = finite(cell.get("value")), finite(cell.get("error95"))
    low, high = finite(cell.get("low")), finite(cell.get("high"))
    bounds = (low, high) if low is not None and high is not None else None
    unit = cell.get("unit")
    percent, points = unit == SHARE, unit == POINTS
    scale = 2 if percent or points else 0
    integer = isinstance(cell.get("value"), int) and bounds is None and not scale
    if error is None and bounds is not None:
        lo_, hi_ = bounds
        error = (hi_ - lo_) / 2 if value is None else max(value - lo_, hi_ - value)
    e = exponent(error, integer=integer)
    marks: dict[str, Any] = {
        "step": float(_q(e)),
        "mostly_noise": mostly_noise(cell),
        "percent": percent,
        "points": points,
        "clamped": bool(cell.get("clamped")),
    }

    def text(number: float, mode: str) -> str:
        return _text(_round(number, e, mode), e, scale=scale)

    nothing = Reading("none", None, None, None, None, approx=False, **marks)
    if value is None or marks["clamped"] or cell.get("range_only"):
        if bounds is None:
            return nothing
        lo, hi = text(bounds[0], ROUND_FLOOR), text(bounds[1], ROUND_CEILING)
        return Reading("range", None, None, lo, hi, approx=True, **marks)
    shown = text(value, ROUND_HALF_EVEN)
    if bounds is not None:  # an interval says how approximate the value is: no ≈
        lo, hi = text(bounds[0], ROUND_FLOOR), text(bounds[1], ROUND_CEILING)
        return Reading("interval", shown, None, lo, hi, approx=False, **marks)
    if error is None:
        return nothing
    approx = _round(value, e, ROUND_HALF_EVEN) != Decimal(repr(value))
    return Reading("estimate", shown, text(error, ROUND_CEILING), None, None, approx, **marks)


def annotate_cell(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell with ``mostly_noise``, ``step`` and ``display`` beside its raw value."""
    reading = read(cell)
    return {
        **cell,
        "mostly_noise": reading.mostly_noise,
        "step": reading.step,
        "display": reading.english(),
    }


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        if is_cell(value):
            return annotate_cell(value)
        return {k: _walk(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v) for v in value]
    return value


def rule_entry(rule: str, cells: int, **facts: Any) -> dict[str, Any]:
    """One rule that withheld or narrowed cells of an answer, with an English sentence."""
    if rule == MIN_NOISY_PERSONS:
        under = facts.get("threshold")
        size = f"fewer than {under} persons" if under is not None else "too few persons"
        message = f"{cells} group(s) withheld: their noisy size was {size} ({rule})"
    elif rule == JOIN_REQUIRED:
        party = facts.get("party", "your party")
        message = (
            f"only persons of {party} are counted ({rule}): combinations without {party} "
            f"are not released ({cells}), and pairwise figures count {party}'s persons only"
        )
    else:
        message = f"{cells} cell(s) withheld or restricted ({rule})"
    return {"rule": rule, "cells": cells, **facts, "message": message}


def annotate(result: Mapping[str, Any], *, min_noisy_persons: int | None = None) -> dict[str, Any]:
    """A result whose every released cell carries its flag, step and display form.

    Idempotent. ``rules`` lists what withheld or narrowed cells: the
    template's own entries, and the noisy-minimum rule when groups were
    withheld (``min_noisy_persons``: the policy's threshold, when known).
    """
    out: dict[str, Any] = {}
    for key, value in result.items():
        out[key] = value if key in ENVELOPE else _walk(value)
    rules = [dict(r) for r in result.get("rules") or [] if isinstance(r, Mapping)]
    suppressed = int(result.get("suppressed_groups") or 0)
    if suppressed and not any(r.get("rule") == MIN_NOISY_PERSONS for r in rules):
        facts = {"threshold": min_noisy_persons} if min_noisy_persons else {}
        rules.insert(0, rule_entry(MIN_NOISY_PERSONS, suppressed, **facts))
    if rules or "rules" in result:
        out["rules"] = rules
    return out


# Keys of the answer's envelope: facts about it, never released cells (the one list,
# shared by the engine, the pages, the reports and the client).
ENVELOPE = frozenset(
    {
        "query_id", "status", "columns", "suppressed_groups", "epsilon", "epsilon_float",
        "delta", "mechanism", "cached", "cached_from", "policy_version", "generation",
        "seconds", "template", "dry_run", "rules",
        "bounds",  # the per-person bounds applied (adaptive or the policy's)
        "suppression_applied",  # shown as a notice, not as a template's figure
        "cut",  # what the per-person bounds removed (the release pipeline's disclosure)
    }
)  # fmt: skip
# Keys that are not a template's derived figure (pairwise overlaps, lift…): the
# envelope and the released table.
RESULT_ENVELOPE = ENVELOPE | {"rows"}
