"""Heatmaps: brand-to-brand transitions, and retention by cohort and month.

Colour shows the noisy value; each cell's text repeats it with its 95% bound,
so the picture never shows a number that the table would not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cleanroom.i18n import current, released
from cleanroom.i18n.current import _
from cleanroom.room.charts.draw import figure, point
from cleanroom.room.reports.cells import label, number


def _heatmap(
    ax: Axes,
    grid: dict[tuple[str, str], object],
    rows: list[str],
    columns: list[str],
    text: Any,
    cmap: str,
    scale: tuple[float, float] | None = None,
) -> None:
    values = np.full((len(rows), len(columns)), np.nan)
    for (r, c), cell in grid.items():
        p = point(cell)
        if p is not None:
            values[rows.index(r), columns.index(c)] = p[0]
    low, high = scale or (None, None)
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", vmin=low, vmax=high)
    ax.set_facecolor("#eeeeee")
    finite = values[np.isfinite(values)]
    if scale is not None:
        middle = (scale[0] + scale[1]) / 2
    else:
        middle = float(finite.max() + finite.min()) / 2 if finite.size else 0.0
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            cell = grid.get((r, c))
            p = point(cell)
            shown = text(cell) if p is not None else _("n/a")
            dark = p is not None and p[0] > middle
            ax.text(
                j,
                i,
                shown,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "#222222",
            )
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)


def transitions(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Brand × brand matrix of persons whose next brand was the column's."""
    rows = result["rows"]
    brands = sorted({label(r.get("from")) for r in rows} | {label(r.get("to")) for r in rows})
    grid = {(label(r.get("from")), label(r.get("to"))): r.get("persons") for r in rows}
    fig = figure(1.3 * len(brands) + 3, 1.0 * len(brands) + 2)
    ax = fig.add_subplot()
    _heatmap(ax, grid, brands, brands, lambda c: _cell(c, " ± ", "\n± "), "Blues")
    ax.set_xlabel(_("next brand"))
    ax.set_ylabel(_("from brand"))
    ax.set_title(_("Transitions: persons (± 95% error bound)"))
    return [("heatmap", _("Brand-to-brand transitions, each cell with its 95% error bound"), fig)]


def retention(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Share of each monthly cohort active in each later month, one panel per brand."""
    rows = result["rows"]
    brands = list(dict.fromkeys(label(r.get("brand")) for r in rows))
    cohorts = sorted({label(r.get("cohort")) for r in rows})
    # Month 0 is the cohort itself (no share): only months with a share get a column.
    months = sorted(
        {label(r.get("month")) for r in rows if point(r.get("share")) is not None},
        key=lambda m: (number(_as_number(m)) is None, _as_number(m) or 0, m),
    )
    fig = figure(max(8, 0.9 * len(months) + 3), (0.5 * len(cohorts) + 1.6) * len(brands))
    axes = fig.subplots(len(brands), 1, squeeze=False)[:, 0]
    for ax, brand in zip(axes, brands, strict=True):
        grid = {
            (label(r.get("cohort")), label(r.get("month"))): r.get("share")
            for r in rows
            if label(r.get("brand")) == brand
        }
        _heatmap(
            ax,
            grid,
            cohorts,
            months,
            lambda c: _cell(c, " [", "\n["),
            "Greens",
            scale=(0.0, 1.0),
        )
        ax.set_xlabel(_("months after the cohort's first month"))
        ax.set_ylabel(_("cohort"))
        where = label(result["active_at"]) if result.get("active_at") else _("any brand")
        ax.set_title(
            _("First seen at %(brand)s: share active at %(where)s [95%% interval]")
            % {"brand": brand, "where": where}
        )
    return [("heatmap", _("Retention by monthly cohort, shares with 95% intervals"), fig)]


def _cell(cell: Any, split: str, into: str) -> str:
    """A cell as the tables write it (rounded to its bound, shares in %, † if mostly noise)."""
    return released.text(cell, current.language()).replace(split, into, 1)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
