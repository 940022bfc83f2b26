"""A result as a horizontal bar chart with 95% error bars: inline SVG drawn on the server.

No chart library and no script: the page stays readable with JavaScript off
and under a strict Content-Security-Policy. Every bar carries its interval,
because a DP number without its error bar invites reading noise as signal.
Horizontal bars keep long labels (brand pairs, funnel steps) readable.
Labels are escaped here, as the SVG is handed to the template as markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from markupsafe import Markup, escape

from cleanroom.i18n import current, formats, released
from cleanroom.i18n.current import _

MAX_BARS = 40
LABEL_WIDTH = 210
PLOT_WIDTH = 520
VALUE_WIDTH = 150
BAR_HEIGHT = 22
TOP = 30
BOTTOM = 26


@dataclass(frozen=True)
class Bar:
    """One bar: its label, the released value and its 95% interval."""

    label: str
    value: float
    low: float
    high: float
    cell: dict[str, Any] | None = None  # the released cell: its text is rounded to its bound


def is_number(cell: Any) -> TypeGuard[dict[str, Any]]:
    """A released number: ``{"value": …, "error95": …}`` (maybe with ``low``/``high``)."""
    return (
        isinstance(cell, dict)
        and isinstance(cell.get("value"), int | float)
        and isinstance(cell.get("error95"), int | float)
    )


def interval(cell: dict[str, Any]) -> tuple[float, float]:
    """The 95% interval of a released number.

    Counts are never negative (the release clamps them), so their interval is
    cut at zero too; ratios and averages carry their own ``low``/``high``.
    """
    value, error = float(cell["value"]), float(cell["error95"])
    if isinstance(cell.get("low"), int | float) and isinstance(cell.get("high"), int | float):
        return float(cell["low"]), float(cell["high"])
    low = value - error
    return (max(0.0, low) if value >= 0 else low), value + error


def bars_from_result(result: dict[str, Any]) -> tuple[str, list[Bar]] | None:
    """The first released-number column of a result, as bars labelled by the other columns."""
    columns: list[str] = list(result.get("columns") or [])
    rows: list[dict[str, Any]] = list(result.get("rows") or [])
    measure = next((c for c in columns if any(is_number(r.get(c)) for r in rows)), None)
    if measure is None:
        return None
    keys = [c for c in columns if not any(is_number(r.get(c)) for r in rows)]
    bars = []
    for row in rows:
        cell = row.get(measure)
        if not is_number(cell):
            continue
        low, high = interval(cell)
        label = " · ".join(str(row.get(k)) for k in keys if row.get(k) is not None) or measure
        bars.append(Bar(label, float(cell["value"]), low, high, cell))
    return (measure, bars) if bars else None


def _fmt(value: float) -> str:
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        text = f"{int(value):,}"
    else:
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return formats.localized(text, current.language())


def _value_text(bar: Bar) -> str:
    """The number beside a bar as the table shows it: rounded to its bound, † if mostly noise."""
    if bar.cell is not None:
        return released.text(bar.cell, current.language())
    return f"{_fmt(bar.value)} [{_fmt(bar.low)}{_(', ')}{_fmt(bar.high)}]"


def _title(caption: str, left: int, right: int) -> str:
    """The chart's title, starting at the plot's left edge, or its right edge in Persian."""
    if current.language() == "fa":
        return (
            f'<text class="chart-title" x="{right}" y="18" direction="rtl" '
            f'text-anchor="start">{escape(caption)}</text>'
        )
    return f'<text class="chart-title" x="{left}" y="18">{escape(caption)}</text>'


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop ends at 10


def bar_chart(title: str, bars: list[Bar]) -> Markup:
    """An SVG chart of up to :data:`MAX_BARS` bars, each with its 95% error bar."""
    shown = bars[:MAX_BARS]
    lo = min(0.0, *(b.low for b in shown))
    hi = _nice_max(max(0.0, *(b.high for b in shown)))
    if lo < 0:
        lo = -_nice_max(-lo)
    span = (hi - lo) or 1.0
    width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH
    height = TOP + BAR_HEIGHT * len(shown) + BOTTOM

    def x(v: float) -> float:
        return round(LABEL_WIDTH + (v - lo) / span * PLOT_WIDTH, 1)

    caption = _("%(measure)s with 95%% error bars") % {"measure": current.brands_in(title)}
    if len(bars) > MAX_BARS:
        caption += " " + _("(first %(shown)s of %(all)s)") % {
            "shown": _fmt(MAX_BARS),
            "all": _fmt(len(bars)),
        }
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" direction="ltr" '
        f'aria-label="{escape(caption)}">',
        f"<title>{escape(caption)}</title>",
        _title(caption, LABEL_WIDTH, LABEL_WIDTH + PLOT_WIDTH),
    ]
    for tick in (lo, lo + span / 2, hi):
        parts.append(
            f'<line class="grid" x1="{x(tick)}" x2="{x(tick)}" y1="{TOP - 4}" '
            f'y2="{height - BOTTOM + 4}"/>'
            f'<text class="tick" x="{x(tick)}" y="{height - 8}" text-anchor="middle">'
            f"{_fmt(tick)}</text>"
        )
    for i, bar in enumerate(shown):
        top = TOP + i * BAR_HEIGHT
        mid = top + BAR_HEIGHT / 2
        start, end = sorted((x(0.0 if lo <= 0 else lo), x(bar.value)))
        name = current.brands_in(bar.label)
        label = name if len(name) <= 32 else name[:31] + "…"
        interval = _("95%% interval: %(low)s to %(high)s") % {
            "low": _fmt(bar.low),
            "high": _fmt(bar.high),
        }
        parts.append(
            f'<g class="bar"><title>{escape(name)}: {_fmt(bar.value)} ({escape(interval)})</title>'
            f'<text class="label" x="{LABEL_WIDTH - 8}" y="{mid + 4}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{start}" y="{top + 4}" width="{max(end - start, 1)}" '
            f'height="{BAR_HEIGHT - 8}"/>'
            f'<line class="err" x1="{x(bar.low)}" x2="{x(bar.high)}" y1="{mid}" y2="{mid}"/>'
            f'<line class="err" x1="{x(bar.low)}" x2="{x(bar.low)}" y1="{mid - 5}" '
            f'y2="{mid + 5}"/>'
            f'<line class="err" x1="{x(bar.high)}" x2="{x(bar.high)}" y1="{mid - 5}" '
            f'y2="{mid + 5}"/>'
            f'<text class="value" x="{LABEL_WIDTH + PLOT_WIDTH + 8}" y="{mid + 4}">'
            f"{escape(_value_text(bar))}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every caller-supplied string above is escaped
