"""Bar charts: funnel steps, time-to-cross bins, segments per brand, campaign lift, generic.

Every bar carries its 95% whiskers; a withheld group keeps its slot (marked
'n/a') so that a missing bar is never mistaken for a zero.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from cleanroom.i18n import N_, current, formats
from cleanroom.i18n.current import _
from cleanroom.room.charts.draw import NOTE, PALETTE, bars, cells_of, figure, note, point
from cleanroom.room.charts.whiskers import whisker
from cleanroom.room.reports.cells import is_cell, label, number

MAX_BARS = 40  # bars of the generic chart; more would not be readable, and cost time to draw
LEFT_OUT = N_("the first %(shown)s of %(all)s rows are drawn; the table lists them all")


def funnel(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Persons reaching each step (cumulative), in step order."""
    rows = sorted(result["rows"], key=lambda r: number(r.get("step")) or 0)
    fig = figure(8, 4.2)
    ax = fig.add_subplot()
    names = [f"{label(r.get('step'))}. {label(r.get('label'))}" for r in rows]
    bars(ax, names, cells_of(rows, "persons"))
    ax.set_ylabel(_("persons reaching the step"))
    ax.set_title(_("Funnel") + f" ({_(NOTE)})")
    return [("funnel", _("Persons reaching each step of the funnel"), fig)]


def time_to_cross(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Histogram of days from the first event at A to the first at B (declared bins)."""
    rows = result["rows"]
    fig = figure(8, 4.2)
    ax = fig.add_subplot()
    bars(ax, [label(r.get("bin")) for r in rows], cells_of(rows, "persons"), width=0.95)
    ax.set_xlabel(_("days to cross"))
    ax.set_ylabel(_("persons"))
    ax.set_title(_("Time to cross-purchase") + f" ({_(NOTE)})")
    return [("histogram", _("Days from the first event at one brand to the first at another"), fig)]


def segments(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Grouped bars: brands on the axis, one coloured bar per segment."""
    rows = result["rows"]
    brands = list(dict.fromkeys(label(r.get("brand")) for r in rows))
    names = list(dict.fromkeys(label(r.get("segment")) for r in rows))
    fig = figure(max(8, 1.6 * len(brands)), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(len(names), 1)
    for j, segment in enumerate(names):
        by_brand = {
            label(r.get("brand")): r.get("persons")
            for r in rows
            if label(r.get("segment")) == segment
        }
        cells = [by_brand.get(b) for b in brands]
        offset = (j - (len(names) - 1) / 2) * width
        bars(
            ax,
            brands,
            cells,
            color=PALETTE[j % len(PALETTE)],
            offset=offset,
            width=width,
            name=segment,
        )
    ax.set_ylabel(_("persons"))
    # Beside the axes, not over the bars (constrained layout makes room for it).
    fig.legend(title=_("segment"), fontsize=8, loc="outside right upper")
    ax.set_title(_("Segments per brand") + f" ({_(NOTE)})")
    return [("segments", _("Persons per recency/frequency segment and brand"), fig)]


def lift(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Conversion rate per arm with its interval, and the difference with its interval."""
    rows = result["rows"]
    found = result.get("lift")
    effect: dict[str, Any] = found if isinstance(found, dict) else {}
    # The difference is the headline; the relative lift (another scale) stays in the table.
    shown = ["difference"] if point(effect.get("difference")) is not None else list(effect)
    figures = {name: effect[name] for name in shown if point(effect.get(name)) is not None}
    fig = figure(9, 4.2)
    left, right = fig.subplots(1, 2, width_ratios=[2, max(len(figures), 1)])
    bars(left, [label(r.get("arm")) for r in rows], cells_of(rows, "rate"))
    left.set_ylabel(_("conversion rate"))
    left.set_title(_("Rate per arm (95% intervals)"))
    for i, cell in enumerate(figures.values()):
        w = whisker(cell)  # the one interval rule, as the bars' whiskers
        if w.centre is None or w.low is None or w.high is None:
            continue
        spread = [[w.centre - w.low], [w.high - w.centre]]
        right.errorbar([i], [w.centre], yerr=spread, fmt="o", color=PALETTE[1], capsize=4)
    right.axhline(0, color="#888888", linewidth=1, linestyle="--")
    right.set_xticks(range(len(figures)), [label(name) for name in figures])
    right.set_xlim(-0.6, max(len(figures), 1) - 0.4)
    right.set_title(_("Lift (treatment − control)"))
    return [("lift", _("Campaign arms and the lift between them, with 95% intervals"), fig)]


def generic(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    """Any released table: the first number column against the joined label columns.

    At most :data:`MAX_BARS` rows, in the table's order (the chart is read beside
    the table, row for row); a footnote says how many were left out.
    """
    every = result["rows"]
    columns = list(result.get("columns", []))
    measures = [c for c in columns if any(is_cell(r.get(c)) for r in every)]
    keys = [c for c in columns if c not in measures]
    if not measures:
        return []
    measure = measures[0]
    rows = every[:MAX_BARS]
    names = [" / ".join(label(r.get(k)) for k in keys) or str(i + 1) for i, r in enumerate(rows)]
    fig = figure(8, max(3.0, 0.3 * len(rows) + 1.2))
    ax = fig.add_subplot()
    bars(ax, names, cells_of(rows, measure), horizontal=True)
    if len(every) > len(rows):
        language = current.language()
        note(
            fig,
            _(LEFT_OUT)
            % {
                "shown": formats.number(len(rows), language),
                "all": formats.number(len(every), language),
            },
        )
    shown = label(measure)
    ax.set_xlabel(shown)
    ax.set_title(_(NOTE))  # apart from the measure: a Latin alias would turn a Persian line
    return [("bars", _("%(measure)s per group") % {"measure": shown}, fig)]
