"""``time_to_cross``: how many days from a person's first event at brand A to their first at B.

Counted for persons whose first event at B (in the period) is at or after
their first at A; those who came to B first did not cross from A and are not
in any bin. The bins are declared by the parameters (``bins``: ascending
day edges starting at 0; the last bin is open-ended), so each person falls in
at most one bin: one person moves the histogram by 1. Parameters: ``from``,
``to`` (brands, or ``brand.dataset[:column=value]``), ``bins`` (default
0,1,7,14,30,60,90), ``start``/``end``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import T_
from cleanroom.room import dp
from cleanroom.room.analyses.activity import Source, events_sql, require_own, step_source
from cleanroom.room.analyses.journey import Cell, Journey, Vector, cells_of, person_rows
from cleanroom.room.analyses.params import Params, period
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.sensitivity import once_per_cell
from cleanroom.sql import statement

DEFAULT_BINS = "0,1,7,14,30,60,90"


def bin_labels(edges: tuple[int, ...]) -> list[str]:
    """``0-1 days``, …, ``90+ days`` (data; pages and charts translate them: i18n.current)."""
    labels = [f"{a}-{b} days" for a, b in itertools.pairwise(edges)]
    return [*labels, f"{edges[-1]}+ days"]


@dataclass(frozen=True)
class TimeToCross(Journey):
    """A histogram of days from first A to first B."""

    labels: tuple[str, str]
    origin: tuple[Source, ...]
    target: tuple[Source, ...]
    edges: tuple[int, ...]
    start: Any
    end: Any
    name = "time_to_cross"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        return (
            f"template time_to_cross from={self.labels[0]} to={self.labels[1]}"
            f" bins={','.join(map(str, self.edges))} period={self.start}..{self.end}"
        )

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`."""
        return [Vector("persons", tuple((i,) for i in range(len(self.edges))), once_per_cell(1))]

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`."""
        a, a_values = events_sql(list(self.origin), tables, self.start, self.end, prefix="a")
        b, b_values = events_sql(list(self.target), tables, self.start, self.end, prefix="b")
        sql = f"""
            WITH a AS (SELECT person, min(t) AS t FROM ({a}) GROUP BY person),
                 b AS (SELECT person, min(t) AS t FROM ({b}) GROUP BY person),
                 d AS (SELECT epoch(b.t - a.t) / 86400.0 AS days
                       FROM a JOIN b ON a.person = b.person WHERE b.t >= a.t)
            SELECT bin, count(*) FROM (
                SELECT len(list_filter(CAST($edges AS INTEGER[]), lambda e: e <= days)) - 1 AS bin
                FROM d
            ) GROUP BY bin
        """  # noqa: S608
        query = statement(sql, **a_values, **b_values, edges=list(self.edges))
        return {"persons": cells_of(cursor, query, 1)}

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`."""
        labels = [{"bin": label} for label in bin_labels(self.edges)]
        rows, suppressed = person_rows(labels, noisy["persons"], privacy)
        extra = {"from": self.labels[0], "to": self.labels[1], "edges": list(self.edges)}
        return ["bin", "persons"], rows, suppressed, extra


def prepare_time_to_cross(
    params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> TimeToCross:
    """Check the parameters (see the module docstring)."""
    p = Params("time_to_cross", params)
    origin, target = p.text("from"), p.text("to")
    if origin is None or target is None:
        raise p.reject("from", T_("and 'to' are required (brands, e.g. from=okala to=ofogh)"))
    a = tuple(step_source(p, "from", origin, policy, party))
    b = tuple(step_source(p, "to", target, policy, party))
    require_own(p, "from/to", sorted({a[0].party, b[0].party}), policy, party)
    raw = p.names("bins") or DEFAULT_BINS.split(",")
    try:
        edges = tuple(int(e) for e in raw)
    except ValueError:
        raise p.reject("bins", T_("must be whole numbers of days")) from None
    if (
        not 2 <= len(edges) <= 30
        or edges[0] != 0
        or any(x >= y for x, y in itertools.pairwise(edges))
        or edges[-1] > 3660
    ):
        raise p.reject("bins", T_("must be 2-30 ascending day edges starting at 0 (at most 3660)"))
    start, end = period(p)
    p.done()
    return TimeToCross((origin, target), a, b, edges, start, end)
