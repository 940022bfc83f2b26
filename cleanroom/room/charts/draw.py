"""Drawing helpers shared by every chart: figures, PNG bytes, error bars, placeholders.

Charts use matplotlib's object API on the Agg canvas (no ``pyplot``): no global
figure state, no display needed, and figures of concurrent runs cannot mix.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cleanroom.accuracy import mostly_noise
from cleanroom.i18n import N_, released
from cleanroom.i18n.current import _
from cleanroom.i18n.shaping import fonts, localize
from cleanroom.room.reports.cells import Cell, interval, is_cell, number

PALETTE = ["#1f5f8b", "#e07b39", "#3a9d5d", "#c44e52", "#8172b2", "#937860", "#da8bc3"]
ERROR_BAR = {"ecolor": "#333333", "capsize": 3, "elinewidth": 1}
NOTE = N_("bars: noisy values; whiskers: 95% error bounds")


def figure(width: float = 8.0, height: float = 4.5) -> Figure:
    """A blank figure on an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    localize(fig)
    out = io.BytesIO()
    with fonts():
        fig.savefig(out, format="png", facecolor="white")
    return out.getvalue()


def point(cell: object) -> tuple[float, float, float] | None:
    """``(value, below, above)`` for an error bar, or None for a withheld cell."""
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
    """One bar per cell with its 95% whiskers; a withheld cell is an empty slot marked 'n/a'."""
    values, below, above = [], [], []
    for cell in cells:
        p = point(cell)
        values.append(p[0] if p else 0.0)
        below.append(p[1] if p else 0.0)
        above.append(p[2] if p else 0.0)
    positions = [i + offset for i in range(len(labels))]
    kwargs: dict[str, Any] = {"color": color, "label": name, "error_kw": ERROR_BAR}
    if horizontal:
        ax.barh(positions, values, height=width, xerr=[below, above], **kwargs)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
    else:
        ax.bar(positions, values, width=width, yerr=[below, above], **kwargs)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right" if len(labels) > 6 else "center")
    noisy = False
    for pos, cell in zip(positions, cells, strict=True):
        p = point(cell)
        if p is None:
            xy = (0.0, pos) if horizontal else (pos, 0.0)
            ax.annotate(_("n/a"), xy, ha="center", va="bottom", fontsize=7, color="#888888")
        elif isinstance(cell, dict) and mostly_noise(cell):  # the mark the page's legend explains
            noisy = True
            top = p[0] + p[2]
            xy = (top, pos) if horizontal else (pos, top)
            ax.annotate(released.MARK, xy, ha="center", va="bottom", fontsize=9, color="#a0460a")
    if noisy:
        ax.figure.text(
            0.99, 0.005, f"{released.MARK} {_(released.MOSTLY_NOISE)}",
            ha="right", va="bottom", fontsize=7, color="#a0460a",
        )  # fmt: skip


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
