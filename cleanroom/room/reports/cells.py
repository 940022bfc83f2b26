"""Released numbers as people read them: every value next to its 95% error bound.

A released cell is ``{"value", "error95"}`` (a noisy count or sum) or
``{"value", "low", "high", "error95"}`` (a ratio with its interval). This module
is the only place that turns cells into text or CSV columns, so the rule
"no number without its bound" is enforced once: a cell that arrives without
a bound is shown as withheld, never as a bare number.
"""

from __future__ import annotations

import math
from typing import Any

from cleanroom.i18n import N_, current, formats, released
from cleanroom.results import flags

Cell = dict[str, Any]

WITHHELD = N_("— (withheld)")
NO_BOUND = N_("— (no error bound)")


def is_cell(value: object) -> bool:
    """A released number (as opposed to a label such as a brand, a month or a step)."""
    return isinstance(value, dict) and "value" in value


def number(value: object) -> float | None:
    """A finite number, or None (booleans are labels, not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def interval(cell: Cell) -> tuple[float, float] | None:
    """The cell's 95% interval: ``[low, high]`` when given, else value ± error95."""
    low, high = number(cell.get("low")), number(cell.get("high"))
    if low is not None and high is not None:
        return low, high
    value, error = number(cell.get("value")), number(cell.get("error95"))
    if value is not None and error is not None:
        return value - error, value + error
    return None


def fmt(value: float | int) -> str:
    """Counts with thousands separators; ratios to four significant digits (report's digits)."""
    return formats.number(value, current.language())


def show(cell: Cell) -> str:
    """``1,234 ± 30``, ``42.1% [40.1%, 44.3%]``, ``between 0 and 120,000 †``: never a number alone.

    Rounded to what the bound allows, shares as percentages, a mostly-noise
    number marked (:mod:`cleanroom.i18n.released`); a cell that arrives
    with neither a bound nor an interval is shown as without one.
    """
    value = number(cell.get("value"))
    low, high = number(cell.get("low")), number(cell.get("high"))
    has_bound = number(cell.get("error95")) is not None or (low is not None and high is not None)
    if value is not None and not has_bound:
        return current._(NO_BOUND)
    if value is None and (low is None or high is None) and not cell.get("withheld"):
        return current._(WITHHELD)
    return released.text(cell, current.language())


def label(value: object) -> str:
    """A key column's value as text (brand, combination, month, step)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return current._("yes") if value else current._("no")
    return current.brands_in(str(value))


def flatten(column: str, value: object) -> dict[str, object]:
    """CSV columns for one cell: value, error95 / low / high and its flags, or the label."""
    if not is_cell(value):
        return {column: value}
    assert isinstance(value, dict)
    bounds = interval(value)
    return {
        column: value.get("value"),
        f"{column}_error95": value.get("error95"),
        f"{column}_low": bounds[0] if bounds else None,
        f"{column}_high": bounds[1] if bounds else None,
        f"{column}_flags": ";".join(flags(value)),
    }


# For the pairwise overlap rate the room releases only a point value today; the
# report derives a conservative interval from the noisy cells it was computed
# from (post-processing, no privacy cost). Three noisy sums enter the rate, so
# each bound is widened to its 1 - 0.05/3 level (Bonferroni): for Laplace noise
# that multiplies a 95% bound by ln(60)/ln(20), which also covers Gaussian noise.
_BONFERRONI_3 = math.log(60) / math.log(20)


def rate_interval(rate: float, both: Cell, cell_error95: float, cells: int) -> Cell:
    """A 95% interval for ``both / min(|A|, |B|)`` from its noisy parts.

    ``cell_error95`` is one overlap cell's 95% bound and ``cells`` the number of
    cells (a brand's total sums at most all of them, so its bound is at most
    ``cell_error95 · √cells``). Conservative by construction: wider, never narrower.
    """
    n_both = number(both.get("value")) or 0.0
    e_both = (number(both.get("error95")) or 0.0) * _BONFERRONI_3
    e_total = cell_error95 * math.sqrt(max(cells, 1)) * _BONFERRONI_3
    if rate <= 0 or n_both <= 0:
        low, high = 0.0, 1.0
    else:
        denominator = n_both / rate
        low = max(0.0, n_both - e_both) / (denominator + e_total)
        high = 1.0 if denominator - e_total <= 1 else (n_both + e_both) / (denominator - e_total)
    low, high = max(0.0, min(low, rate)), min(1.0, max(high, rate))
    return {
        "value": rate,
        "low": round(low, 4),
        "high": round(high, 4),
        "error95": round(max(rate - low, high - rate), 4),
    }
