"""Drawing helpers of every chart: figures, PNG and SVG bytes, bars with whiskers, placeholders.

Charts use matplotlib's object API on the Agg canvas (no ``pyplot``): no global
figure state, no display needed, and figures of concurrent runs cannot mix.
The console's chart and the reports' are drawn here alike: the reports keep a
PNG per chart, the console takes SVG (crisp at any zoom, text drawn as
outlines so the page needs neither script nor the font).
"""

from __future__ import annotations

import io
import json
import weakref
from collections.abc import Sequence
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from cleanroom.i18n import N_, current, formats
from cleanroom.i18n.current import _
from cleanroom.i18n.shaping import fonts, localize
from cleanroom.room.charts.whiskers import (
    FOOTNOTES,
    NOISE_MARK,
    RANGE_MARK,
    WITHHELD_MARK,
    Mark,
    whisker,
)
from cleanroom.room.reports.cells import Cell, interval, is_cell, number

PALETTE = ["#1f5f8b", "#e07b39", "#3a9d5d", "#c44e52", "#8172b2", "#937860", "#da8bc3"]
ERROR_BAR = {"ecolor": "#333333", "capsize": 3, "elinewidth": 1}
MARK_COLOUR = "#a0460a"
NOTE = N_("bars: noisy values; whiskers: 95% error bounds")
WHISKERS = "whiskers"  # the gid of every chart's error bars (tests read their ends)

# What bars() drew, read by finish() when the figure is saved (weak: a figure never saved
# is not kept alive by them).
_marks: weakref.WeakKeyDictionary[Figure, set[Mark]] = weakref.WeakKeyDictionary()
_notes: weakref.WeakKeyDictionary[Figure, list[str]] = weakref.WeakKeyDictionary()
_drawn: weakref.WeakKeyDictionary[Figure, list[dict[str, Any]]] = weakref.WeakKeyDictionary()
_horizontal: weakref.WeakSet[Axes] = weakref.WeakSet()


def figure(width: float = 8.0, height: float = 4.5) -> Figure:
    """A blank figure on an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (the reports' files)."""
    described = finish(fig)
    out = io.BytesIO()
    with fonts():
        fig.savefig(out, format="png", facecolor="white", metadata=described)
    return out.getvalue()


def svg(fig: Figure) -> bytes:
    """The figure as SVG bytes, the same for the same figure (no date, fixed ids)."""
    described = finish(fig)
    out = io.BytesIO()
    with fonts(), rc_context({"svg.hashsalt": "cleanroom", "svg.fonttype": "path"}):
        fig.savefig(out, format="svg", facecolor="white", metadata={"Date": None, **described})
    return out.getvalue()


def point(cell: object) -> tuple[float, float, float] | None:
    """``(value, below, above)`` of a cell with a value, or None: a colour or a width.

    Heatmaps and Sankey flows read it; whiskers are drawn by :func:`bars` only.
    """
    if not is_cell(cell):
        return None
    assert isinstance(cell, dict)
    value = number(cell.get("value"))
    bounds = interval(cell)
    if value is None or bounds is None:
        return None
    return value, max(0.0, value - bounds[0]), max(0.0, bounds[1] - value)


def bars(
    ax: Axes,
    labels: Sequence[str],
    cells: Sequence[object],
    *,
    color: str = PALETTE[0],
    horizontal: bool = False,
    offset: float = 0.0,
    width: float = 0.8,
    name: str | None = None,
) -> None:
    """One bar per cell with its 95% whisker, by the one rule of :mod:`.whiskers`.

    A withheld cell keeps an empty slot marked 'n/a'; the marks used are
    explained in footnotes when the figure is saved (:func:`finish`).
    """
    shown = [whisker(cell) for cell in cells]
    positions = [i + offset for i in range(len(labels))]
    heights = [w.value if w.value is not None else 0.0 for w in shown]
    if horizontal:
        ax.barh(positions, heights, height=width, color=color, label=name)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        _horizontal.add(ax)
    else:
        ax.bar(positions, heights, width=width, color=color, label=name)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right" if len(labels) > 6 else "center")
    # Value ticks grouped as the table writes numbers (20,000 — not 20000 nor 2e4).
    language = current.language()
    value_axis = ax.xaxis if horizontal else ax.yaxis
    value_axis.set_major_formatter(FuncFormatter(lambda v, _pos: formats.number(v, language)))
    drawn = [(pos, w) for pos, w in zip(positions, shown, strict=True) if w.centre is not None]
    if drawn:
        at = [pos for pos, _ in drawn]
        centres = [w.centre or 0.0 for _, w in drawn]
        spread = [
            [c - (w.low or 0.0) for c, (_, w) in zip(centres, drawn, strict=True)],
            [(w.high or 0.0) - c for c, (_, w) in zip(centres, drawn, strict=True)],
        ]
        style: dict[str, Any] = {"fmt": "none", "gid": WHISKERS, **ERROR_BAR}
        if horizontal:
            ax.errorbar(centres, at, xerr=spread, **style)
        else:
            ax.errorbar(at, centres, yerr=spread, **style)
    if any(w.low is not None and w.low < 0 < (w.high or 0.0) for w in shown):
        line = ax.axvline if horizontal else ax.axhline
        line(0.0, color="#888888", linewidth=0.8)  # where a count's whisker leaves real values
    # Beside a horizontal bar's end, on the side away from the bar: finish() mirrors the
    # axes of a Persian chart, so "after the end" is to the left there.
    after = ("right", -3) if current.language() == "fa" else ("left", 3)
    for pos, w in zip(positions, shown, strict=True):
        if w.mark == "withheld":
            ax.annotate(
                _(WITHHELD_MARK), (0.0, pos) if horizontal else (pos, 0.0),
                xytext=(after[1], 0) if horizontal else (0, 2), textcoords="offset points",
                ha=after[0] if horizontal else "center", va="center" if horizontal else "bottom",
                fontsize=7, color="#888888",
            )  # fmt: skip
        elif w.mark in ("noise", "range"):
            end = w.high or 0.0
            ax.annotate(
                NOISE_MARK if w.mark == "noise" else RANGE_MARK,
                (end, pos) if horizontal else (pos, end),
                xytext=(after[1], 0) if horizontal else (0, 2), textcoords="offset points",
                ha=after[0] if horizontal else "center", va="center" if horizontal else "bottom",
                fontsize=9, color=MARK_COLOUR,
            )  # fmt: skip
        if w.mark:
            _marks.setdefault(_figure_of(ax), set()).add(w.mark)
    _drawn.setdefault(_figure_of(ax), []).extend(
        {"label": text, "value": w.value, "low": w.low, "high": w.high, "mark": w.mark}
        for text, w in zip(labels, shown, strict=True)
    )


def _figure_of(ax: Axes) -> Figure:
    """The (top-level) figure an axes is drawn on."""
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    return fig


def note(fig: Figure, text: str) -> None:
    """A footnote under the chart (e.g. how many rows were left out)."""
    _notes.setdefault(fig, []).append(text)


def finish(fig: Figure) -> dict[str, str]:
    """Before saving: the footnotes of the marks used, right-to-left layout and Persian text.

    Footnotes go in the figure's ``supxlabel``, which constrained layout makes
    room for (a free ``fig.text`` would overlap the axis labels). Returns the
    file's metadata: a ``Description`` listing every bar drawn with its
    whisker's ends (JSON), so what a PNG or SVG shows can be read back by a
    program — a screen reader's tool, or the test that the console and the
    reports draw the same intervals.
    """
    used = _marks.pop(fig, set())
    lines = _notes.pop(fig, []) + [
        _(FOOTNOTES[mark]) % {} for mark in ("noise", "range", "withheld") if mark in used
    ]
    rtl = current.language() == "fa"
    if lines:
        x, ha = (0.99, "right") if rtl else (0.01, "left")
        fig.supxlabel(
            "\n".join(lines), x=x, ha=ha, multialignment=ha, fontsize=8, color=MARK_COLOUR
        )
    if rtl:  # horizontal bars grow from the right, their labels on the right
        for ax in fig.axes:
            if ax in _horizontal:
                if not ax.xaxis_inverted():
                    ax.invert_xaxis()
                ax.yaxis.tick_right()
    localize(fig)
    drawn = _drawn.pop(fig, [])
    return {"Description": json.dumps({"bars": drawn}, ensure_ascii=False)} if drawn else {}


def nothing_released(title: str, reason: str = N_("no group passed the minimum size")) -> Figure:
    """A placeholder chart: the section ran, but released no group to draw."""
    fig = figure(6, 2.2)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        _("nothing to draw: %(reason)s") % {"reason": _(reason)},
        ha="center",
        va="center",
        color="#c44e52",
    )
    return fig


def cells_of(rows: Sequence[dict[str, Any]], column: str) -> list[Cell | None]:
    """One column's cells (None where a row lacks it)."""
    return [row.get(column) if is_cell(row.get(column)) else None for row in rows]
