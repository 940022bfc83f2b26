"""Set and flow pictures: the UpSet overlap chart and the brand-to-brand journey Sankey.

An UpSet chart (bars per brand combination over a membership matrix) reads
better than a Venn diagram past three sets, and five brands make 31 cells.
The Sankey is drawn with plain patches: two columns of brands, one band per
released transition, band width proportional to the noisy persons.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path

from cleanroom.i18n.current import _
from cleanroom.room.charts.draw import NOTE, PALETTE, bars, cells_of, figure, point
from cleanroom.room.reports.cells import label


def upset(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Persons per combination of brands (largest first), with the membership matrix."""
    rows = sorted(result["rows"], key=lambda r: -(point(r.get("persons")) or (0.0,))[0])
    combos = [label(r.get("combination")).split("+") for r in rows]
    brands = sorted({b for combo in combos for b in combo})
    fig = figure(max(8, 0.45 * len(rows) + 2), 6)
    top, matrix = fig.subplots(2, 1, sharex=True, height_ratios=[3, max(1.2, 0.35 * len(brands))])
    bars(top, ["+".join(c) for c in combos], cells_of(rows, "persons"))
    top.set_ylabel(_("persons"))
    top.set_title(_("Persons per brand combination") + f" ({_(NOTE)})")
    top.tick_params(axis="x", labelbottom=False)
    for x, combo in enumerate(combos):
        ys = [brands.index(b) for b in combo]
        matrix.scatter([x] * len(brands), range(len(brands)), color="#dddddd", s=30)
        matrix.scatter([x] * len(ys), ys, color="#222222", s=30, zorder=3)
        if len(ys) > 1:
            matrix.plot([x, x], [min(ys), max(ys)], color="#222222", linewidth=1.5)
    matrix.set_yticks(range(len(brands)), brands)
    matrix.set_xticks(range(len(combos)), [""] * len(combos))
    matrix.tick_params(axis="x", length=0)
    matrix.set_ylim(-0.5, len(brands) - 0.5)
    for side in ("top", "right", "bottom"):
        matrix.spines[side].set_visible(False)
    return [("upset", _("Overlap of brands (UpSet chart), with 95% error bars"), fig)]


def pairwise(result: dict[str, Any], pairs: list[dict[str, Any]]) -> list[tuple[str, str, Figure]]:
    """Pairwise overlap rates |A∩B| / min(|A|, |B|) with their intervals."""
    shown = [p for p in pairs if point(p.get("rate")) is not None]
    if not shown:
        return []
    fig = figure(7, 0.35 * len(shown) + 1.5)
    ax = fig.add_subplot()
    bars(
        ax,
        [label(p.get("pair")) for p in shown],
        [p["rate"] for p in shown],
        horizontal=True,
        color=PALETTE[1],
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel(_("overlap rate: shared persons / the smaller brand"))
    ax.set_title(_("Pairwise overlap rates (95% intervals)"))
    return [("pairwise", _("Pairwise overlap rates with 95% intervals"), fig)]


def sankey(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Journeys from each brand (left) to the next brand (right); widths are noisy persons."""
    flows = []
    for r in result["rows"]:
        p = point(r.get("persons"))
        if p is not None and p[0] > 0:
            flows.append((label(r.get("from")), label(r.get("to")), p[0]))
    if not flows:
        return []
    brands = sorted({f for f, _, _ in flows} | {t for _, t, _ in flows})
    colour = {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(brands)}
    total = sum(v for _, _, v in flows)
    gap = 0.04 * total
    out_of = {b: sum(v for f, _, v in flows if f == b) for b in brands}
    into = {b: sum(v for _, t, v in flows if t == b) for b in brands}
    fig = figure(8, 5.5)
    ax = fig.add_subplot()
    ax.set_axis_off()
    left_at, right_at = _stack(brands, out_of, gap), _stack(brands, into, gap)
    left_fill, right_fill = dict(left_at), dict(right_at)
    node_w = 0.06
    for b in brands:
        for x, at, size in ((0.0, left_at, out_of), (1.0 - node_w, right_at, into)):
            if size[b] > 0:
                ax.add_patch(Rectangle((x, at[b]), node_w, size[b], color=colour[b]))
        if out_of[b] > 0:
            ax.text(-0.02, left_at[b] + out_of[b] / 2, b, ha="right", va="center")
        if into[b] > 0:
            ax.text(1.02, right_at[b] + into[b] / 2, b, ha="left", va="center")
    for source, target, value in sorted(
        flows, key=lambda f: (brands.index(f[0]), brands.index(f[1]))
    ):
        y0, y1 = left_fill[source], right_fill[target]
        left_fill[source] += value
        right_fill[target] += value
        ax.add_patch(_band(node_w, 1.0 - node_w, y0, y1, value, colour[source]))
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(-gap, max(_top(left_at, out_of), _top(right_at, into)) + gap)
    ax.invert_yaxis()
    ax.set_title(_("Journeys: brand → next brand (band width = noisy persons)"))
    return [
        (
            "sankey",
            _("Journey Sankey: from each brand to the next (widths are noisy persons)"),
            fig,
        )
    ]


def _stack(brands: list[str], size: dict[str, float], gap: float) -> dict[str, float]:
    at, y = {}, 0.0
    for b in brands:
        at[b] = y
        y += size[b] + (gap if size[b] > 0 else 0.0)
    return at


def _top(at: dict[str, float], size: dict[str, float]) -> float:
    return max(at[b] + size[b] for b in at)


def _band(x0: float, x1: float, y0: float, y1: float, width: float, colour: str) -> PathPatch:
    """A ribbon from [y0, y0+width] at x0 to [y1, y1+width] at x1 (cubic Bézier edges)."""
    mid = (x0 + x1) / 2
    vertices = [
        (x0, y0),
        (mid, y0),
        (mid, y1),
        (x1, y1),
        (x1, y1 + width),
        (mid, y1 + width),
        (mid, y0 + width),
        (x0, y0 + width),
        (x0, y0),
    ]
    codes = [
        Path.MOVETO,
        Path.CURVE4,
        Path.CURVE4,
        Path.CURVE4,
        Path.LINETO,
        Path.CURVE4,
        Path.CURVE4,
        Path.CURVE4,
        Path.CLOSEPOLY,
    ]
    return PathPatch(Path(vertices, codes), facecolor=colour, alpha=0.45, edgecolor="none")
