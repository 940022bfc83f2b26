"""The one chart stack of the room: the reports' charts (PNG) and the console's result chart (SVG).

``charts_for`` knows the released shape of every template (DESIGN.md §5); a
template it does not know, or a shape it cannot draw, gets the generic bar
chart instead of failing the report: a report should not be lost because a
template grew a column. ``result_chart`` is the console's: the generic bar
chart of an answer. Both draw every whisker by one rule
(:mod:`cleanroom.room.charts.whiskers`), so a number has the same interval on
the page, in the report and in its CSV.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from cleanroom.i18n.current import _
from cleanroom.room.charts import bars, flows, grids
from cleanroom.room.charts.draw import nothing_released, png, svg
from cleanroom.room.reports.tables import tables_for

log = logging.getLogger("cleanroom.reports")

Drawer = Callable[[dict[str, Any]], list[tuple[str, str, Figure]]]


@dataclass(frozen=True)
class Chart:
    """One chart: a slug for its file name, a caption, the image (PNG, or SVG for the console)."""

    slug: str
    caption: str
    image: bytes


def _overlap(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    pairwise = next((t for t in tables_for("overlap", result) if t.name == "pairwise"), None)
    return flows.upset(result) + (flows.pairwise(result, pairwise.rows) if pairwise else [])


def _transitions(result: dict[str, Any]) -> list[tuple[str, str, Figure]]:
    return grids.transitions(result) + flows.sankey(result)


DRAWERS: dict[str, Drawer] = {
    "overlap": _overlap,
    "transitions": _transitions,
    "funnel": bars.funnel,
    "time_to_cross": bars.time_to_cross,
    "retention": grids.retention,
    "segments": bars.segments,
    "lift": bars.lift,
}

# The columns each drawer reads; a result without them gets the generic chart.
NEEDS: dict[str, set[str]] = {
    "overlap": {"combination", "persons"},
    "transitions": {"from", "to", "persons"},
    "funnel": {"step", "label", "persons"},
    "time_to_cross": {"bin", "persons"},
    "retention": {"cohort", "brand", "month", "share"},
    "segments": {"brand", "segment", "persons"},
    "lift": {"arm", "rate"},
}

# matplotlib's object API is safe per figure, but its font and text caches are
# shared: one section is drawn at a time (a report has a handful of charts).
_drawing = threading.Lock()


def charts_for(template: str, result: dict[str, Any]) -> list[Chart]:
    """Every chart of one section (at least one: a placeholder when nothing was released)."""
    with _drawing:
        drawn: list[tuple[str, str, Figure]] = []
        if result.get("rows"):
            fits = NEEDS.get(template, set()) <= set(result.get("columns", []))
            drawer = DRAWERS.get(template, bars.generic) if fits else bars.generic
            try:
                drawn = drawer(result)
            except (KeyError, TypeError, ValueError, IndexError):
                log.warning("chart fell back to generic", extra={"template": template})
                drawn = bars.generic(result)
        if not drawn:
            drawn = [
                (
                    "empty",
                    _("%(template)s: nothing to draw") % {"template": template},
                    nothing_released(template),
                )
            ]
        return [Chart(slug, caption, png(fig)) for slug, caption, fig in drawn]


def result_chart(result: dict[str, Any]) -> Chart | None:
    """The console's chart of one answer, as SVG: its first released column as bars.

    None when the answer has no released number to draw (the table says why).
    """
    with _drawing:
        drawn = bars.generic(result) if result.get("rows") else []
        if not drawn:
            return None
        slug, caption, fig = drawn[0]
        return Chart(slug, caption, svg(fig))
