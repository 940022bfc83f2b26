"""``app_to_store``: persons whose first-ever event at B came within a window after an event at A.

The group's question, "of the customers new to the store, how many came from
the app?", with A and B each a brand, ``brand.dataset`` or
``brand.dataset:column=value``. A person is new at B in the period when their
first event at B in everything the room holds of B (not only the period)
falls in [start, end); they came from A when they have an event at A strictly
before that first B event and at most ``window_days`` before it (any A event,
not only their first: a lapsed app user who returns and then visits the store
counts). ``time_to_cross`` and ``funnel`` measure from the first event at A
and read only the period, so neither asks this. Each person new at B is in
exactly one of two cells (came from A, or not), so one person moves the
released vector by 1; the persons new at B, and the share of them who came
from A, are post-processing of the two cells. Parameters: ``from``, ``to``,
``window_days`` (1–365, default 30), ``start``/``end``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.room import dp
from cleanroom.room.analyses.activity import Source, events_sql, require_own, step_source
from cleanroom.room.analyses.journey import (
    Cell,
    Journey,
    Vector,
    cells_of,
    count,
    sum_error95,
)
from cleanroom.room.analyses.params import Params, period
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.release import ratio
from cleanroom.room.sensitivity import once_per_cell
from cleanroom.sql import statement

OTHER, FROM_ORIGIN = 0, 1  # the two cells: new at B without, and after, an event at A


@dataclass(frozen=True)
class AppToStore(Journey):
    """Persons new at B in the period, split by whether an event at A came shortly before."""

    labels: tuple[str, str]
    origin: tuple[Source, ...]
    target: tuple[Source, ...]
    window_days: int
    start: dt.date
    end: dt.date
    name = "app_to_store"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        return (
            f"template app_to_store from={self.labels[0]} to={self.labels[1]}"
            f" window={self.window_days} period={self.start}..{self.end}"
        )

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`: each new person is in one cell."""
        return [Vector("persons", ((OTHER,), (FROM_ORIGIN,)), once_per_cell(1))]

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`."""
        # B's events up to the period's end: a first event after it is not in the period anyway.
        b, b_values = events_sql(list(self.target), tables, None, self.end, prefix="b")
        # A's events that can precede a first B event in the period by at most the window.
        a, a_values = events_sql(
            list(self.origin),
            tables,
            self.start - dt.timedelta(days=self.window_days),
            self.end,
            prefix="a",
        )
        sql = f"""
            WITH b AS (
                SELECT person, min(t) AS t FROM ({b}) GROUP BY person
                HAVING min(t) >= CAST($start AS TIMESTAMP) AND min(t) < CAST($end AS TIMESTAMP)
            ),
            came AS (
                SELECT DISTINCT b.person FROM b JOIN ({a}) a ON a.person = b.person
                WHERE a.t < b.t AND a.t >= b.t - to_days(CAST($window AS INTEGER))
            )
            SELECT CASE WHEN came.person IS NULL THEN {OTHER} ELSE {FROM_ORIGIN} END AS cell,
                   count(*)
            FROM b LEFT JOIN came ON came.person = b.person GROUP BY cell
        """  # noqa: S608
        query = statement(
            sql,
            **b_values,
            **a_values,
            start=self.start,
            end=self.end,
            window=self.window_days,
        )
        return {"persons": cells_of(cursor, query, 1)}

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`: new at B is the sum of both cells; the share is a ratio."""
        r = noisy["persons"]
        new, new_error = sum(r.values), sum_error95(r.error95, 2)
        came, came_error = r.values[FROM_ORIGIN], r.error95
        rows: list[dict[str, Any]] = []
        suppressed = 0
        shown_new = new >= privacy.min_noisy_persons
        if shown_new:
            rows.append({"customers": "new", "persons": count(new, new_error), "share": None})
        else:
            suppressed += 1
        if came >= privacy.min_noisy_persons:
            share = ratio(came, came_error, new, new_error, 0, 1) if shown_new else None
            rows.append(
                {"customers": "after_origin", "persons": count(came, came_error), "share": share}
            )
        else:
            suppressed += 1
        extra = {"from": self.labels[0], "to": self.labels[1], "window_days": self.window_days}
        return ["customers", "persons", "share"], rows, suppressed, extra


def prepare_app_to_store(
    params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> AppToStore:
    """Check the parameters (see the module docstring)."""
    p = Params("app_to_store", params)
    origin, target = p.text("from"), p.text("to")
    if origin is None or target is None:
        raise p.reject(
            "from", "and 'to' are required (e.g. from=okala.orders:channel=app to=ofogh)"
        )
    a = tuple(step_source(p, "from", origin, policy, party))
    b = tuple(step_source(p, "to", target, policy, party))
    if a == b:
        raise p.reject("to", "must differ from 'from'")
    require_own(p, "from/to", sorted({a[0].party, b[0].party}), policy, party)
    window = p.integer("window_days", 30, 1, 365)
    start, end = period(p)
    p.done()
    return AppToStore((origin, target), a, b, window, start, end)
