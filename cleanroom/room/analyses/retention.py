"""``retention``: monthly cohorts by first brand, and the share active in each later month.

Within a window of ``months`` calendar months from ``start``, a person's
cohort is the month of their first event at any of the chosen ``brands`` and
the brand of that event (the window is all the template reads, so someone
active before it enters at its first month). They are active in a later
month if they have an event that month at any chosen brand, or at
``active_at`` when given. Two vectors are released: cohort sizes (each person
in one cohort: L1 = 1) and actives per cohort and later month (one person in
at most ``months - 1`` of them: L1 = months - 1); the share is their ratio,
with an interval from both. Parameters: ``brands``, ``active_at``, ``start``
(YYYY-MM; default twelve months ago), ``months`` (2–12, default 6).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom import clock
from cleanroom.errors import T_
from cleanroom.room import dp
from cleanroom.room.analyses import sequence
from cleanroom.room.analyses.activity import Source, activity_sources, brands, events_sql
from cleanroom.room.analyses.journey import Cell, Journey, Vector, cells_of, count
from cleanroom.room.analyses.params import Params
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.release import ratio
from cleanroom.room.sensitivity import once_per_cell
from cleanroom.sql import literal_sql, statement


def add_months(month: dt.date, n: int) -> dt.date:
    """The first day of the month ``n`` months after ``month``."""
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Retention(Journey):
    """Cohorts × later months."""

    policy: CollaborationPolicy
    party: str
    brands: tuple[str, ...]
    active_at: str | None
    start: dt.date
    months: int
    name = "retention"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        return (
            f"template retention brands={','.join(self.brands)} active_at={self.active_at or '*'}"
            f" start={self.start:%Y-%m} months={self.months}"
        )

    @property
    def cohorts(self) -> tuple[Cell, ...]:
        """(cohort month, first brand) for every month of the window and brand."""
        return tuple(
            (add_months(self.start, i), b) for i in range(self.months) for b in self.brands
        )

    @property
    def later(self) -> tuple[Cell, ...]:
        """(cohort month, first brand, months since) for every later month in the window."""
        return tuple(
            (c, b, o)
            for i in range(self.months)
            for b in self.brands
            for o in range(1, self.months - i)
            for c in [add_months(self.start, i)]
        )

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`."""
        return [
            Vector("cohort", self.cohorts, once_per_cell(1)),
            Vector("active", self.later, once_per_cell(self.months - 1)),
        ]

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`.

        One aggregation per person over the events: their first event (month and brand)
        and a bit per month of the window in which they were active; cohorts and actives
        both come from it, without materializing person-months. From the sequence the
        match prepared (:mod:`sequence`) the events are integer codes, 2-3x faster at 200M
        events (BENCHMARKS.md), and of events at one first instant at two brands the
        first by name starts the cohort; from the analysis tables' times (a policy
        without ``transitions``, a Spark generation) ``arg_min`` picks one of them.
        """
        sources = [s for b in self.brands for s in activity_sources(self.policy, self.party, b)]
        sources = [s for s in sources if s.table in tables]
        end = add_months(self.start, self.months)
        ids = {b: i for i, b in enumerate(self.brands)}  # integers aggregate faster than names
        seq = sequence.prepared(cursor, tables)
        if sources and seq is not None and seq.covers(sources):
            per, values = self._per_code(seq, sources, ids, end)
        else:
            per, values = self._per_time(sources, tables, ids, end)
        offsets = ", ".join(f"({literal_sql(o)})" for o in range(1, self.months))
        sql = f"""
            WITH firsts AS ({per})
            SELECT c, brand, 0 AS o, count(*) FROM firsts GROUP BY ALL
            UNION ALL
            SELECT c, brand, o, count(*) FROM firsts CROSS JOIN (VALUES {offsets}) AS r(o)
            WHERE c + o < $months AND (mask >> (c + o)) & 1 = 1 GROUP BY ALL
        """  # noqa: S608
        query = statement(sql, **values, months=int(self.months))
        found = {
            (add_months(self.start, int(c)), self.brands[b], int(o)): n
            for (c, b, o), n in cells_of(cursor, query, 3).items()
        }
        sizes = {(c, b): n for (c, b, o), n in found.items() if o == 0}
        later = {cell: n for cell, n in found.items() if cell[2] > 0}
        return {"cohort": sizes, "active": later}

    def _per_time(
        self, sources: list[Source], tables: dict[str, str], ids: dict[str, int], end: dt.date
    ) -> tuple[str, dict[str, object]]:
        """``SELECT brand, c, mask`` per person, from the analysis tables' times."""
        events, values = events_sql(sources, tables, self.start, end, brand_ids=ids)
        active = "true"
        if self.active_at is not None:
            active, values["active_at"] = "brand = $active_at", ids[self.active_at]
        # Month index: year * 12 + month - base. The offsets are the room's own range.
        values["base"] = self.start.year * 12 + self.start.month
        sql = f"""
            SELECT brand, year(first_t) * 12 + month(first_t) - $base AS c, mask FROM (
                SELECT arg_min(brand, t) AS brand, min(t) AS first_t,
                       bit_or(CASE WHEN {active}
                                   THEN CAST(1 AS BIGINT) << (year(t) * 12 + month(t) - $base)
                                   ELSE CAST(0 AS BIGINT) END) AS mask
                FROM ({events}) GROUP BY person
            )
        """  # noqa: S608
        return sql, values

    def _per_code(
        self, seq: sequence.Sequence, sources: list[Source], ids: dict[str, int], end: dt.date
    ) -> tuple[str, dict[str, object]]:
        """``SELECT brand, c, mask`` per person, from the prepared codes: integers only."""
        events, values = sequence.codes_sql(seq, sources, self.start, end)
        active = "true"
        if self.active_at is not None:
            active = f"{sequence.brand_sql(seq, ids, 'code')} = $active_at"
            values["active_at"] = ids[self.active_at]
        # A code's month: the number of later month starts it is not before.
        for i in range(1, self.months):
            values[f"month_{i}"] = sequence.code_of(add_months(self.start, i))

        def month(code: str) -> str:
            steps = " + ".join(
                f"CAST({code} >= $month_{i} AS INTEGER)" for i in range(1, self.months)
            )
            return f"({steps})"

        sql = f"""
            SELECT {sequence.brand_sql(seq, ids, "fst")} AS brand, {month("fst")} AS c, mask
            FROM (
                SELECT min(code) AS fst,
                       bit_or(CASE WHEN {active}
                                   THEN CAST(1 AS BIGINT) << {month("code")}
                                   ELSE CAST(0 AS BIGINT) END) AS mask
                FROM ({events}) GROUP BY person
            )
        """  # noqa: S608
        return sql, values

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`: a cohort under the minimum is withheld whole."""
        sizes = dict(zip(self.cohorts, noisy["cohort"].values, strict=True))
        size_error = noisy["cohort"].error95
        active = noisy["active"]
        rows: list[dict[str, Any]] = []
        kept: dict[Cell, int] = {}
        for (month, brand), size in sizes.items():
            if size < privacy.min_noisy_persons:
                continue
            kept[(month, brand)] = size
            rows.append(
                {
                    "cohort": f"{month:%Y-%m}",
                    "brand": brand,
                    "month": 0,
                    "persons": count(size, size_error),
                    "share": None,
                }
            )
        for (month, brand, offset), value in zip(self.later, active.values, strict=True):
            base = kept.get((month, brand))
            if base is None:
                continue
            rows.append(
                {
                    "cohort": f"{month:%Y-%m}",
                    "brand": brand,
                    "month": offset,
                    "persons": count(value, active.error95),
                    "share": ratio(value, active.error95, base, size_error, 0, 1),
                }
            )
        suppressed = len(sizes) - len(kept)
        rows.sort(key=lambda r: (r["cohort"], r["brand"], r["month"]))
        extra = {"active_at": self.active_at, "start": f"{self.start:%Y-%m}", "months": self.months}
        return ["cohort", "brand", "month", "persons", "share"], rows, suppressed, extra


def prepare_retention(
    params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> Retention:
    """Check the parameters (see the module docstring)."""
    p = Params("retention", params)
    chosen = brands(p, "brands", policy, party)
    active_at = p.text("active_at")
    if active_at is not None and active_at not in chosen:
        raise p.reject("active_at", T_("must be one of the chosen brands"))
    today = clock.now().date()
    start = p.month("start", add_months(today.replace(day=1), -12))
    months = p.integer("months", 6, 2, 12)
    p.done()
    return Retention(policy, party, tuple(chosen), active_at, start, months)
