"""``segments``: recency/frequency segments per brand, as of a date.

For each brand, each person with an event there in the ``lookback_days``
before ``as_of`` falls in exactly one segment, by these rules, in order:

* ``new``: their first event there was within the last ``recent_days``;
* ``loyal``: last event within ``recent_days`` and at least ``loyal_events``
  events in the last ``risk_days``;
* ``active``: last event within ``recent_days``;
* ``at_risk``: last event ``recent_days``–``risk_days`` ago;
* ``lapsed``: last event longer ago than ``risk_days``.

A person is in one segment per brand, so one person moves the brand ×
segment vector by at most the number of brands (L1). Parameters: ``brands``,
``as_of`` (date, default today), ``recent_days`` (default 30), ``risk_days``
(default 90), ``loyal_events`` (default 6), ``lookback_days`` (default 365).
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
from cleanroom.room.analyses.activity import activity_sources, brands, events_sql
from cleanroom.room.analyses.journey import Cell, Journey, Vector, cells_of, person_rows
from cleanroom.room.analyses.params import Params
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.sensitivity import once_per_cell
from cleanroom.sql import literal_sql, statement

SEGMENTS = ("new", "active", "loyal", "at_risk", "lapsed")


@dataclass(frozen=True)
class Segments(Journey):
    """Brand × segment counts."""

    policy: CollaborationPolicy
    party: str
    brands: tuple[str, ...]
    as_of: dt.date
    recent_days: int
    risk_days: int
    loyal_events: int
    lookback_days: int
    name = "segments"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        return (
            f"template segments brands={','.join(self.brands)} as_of={self.as_of}"
            f" recent={self.recent_days} risk={self.risk_days} loyal={self.loyal_events}"
            f" lookback={self.lookback_days}"
        )

    @property
    def cells(self) -> tuple[Cell, ...]:
        """Every brand × segment."""
        return tuple((b, s) for b in self.brands for s in SEGMENTS)

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`."""
        return [Vector("persons", self.cells, once_per_cell(len(self.brands)))]

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`.

        Each brand's persons by one aggregation over that brand's events alone (keys of
        one BIGINT in tables a brand wide, not (person, brand) over every brand's events:
        the same groups). Where the match prepared the event order (:mod:`sequence`) the
        events are its integer codes, compared with the codes of the rules' midnights;
        otherwise the analysis tables' times.
        """
        recent = self.as_of - dt.timedelta(days=self.recent_days)
        risk = self.as_of - dt.timedelta(days=self.risk_days)
        start = self.as_of - dt.timedelta(days=self.lookback_days)
        by_brand = {
            i: [s for s in activity_sources(self.policy, self.party, b) if s.table in tables]
            for i, b in enumerate(self.brands)
        }
        by_brand = {i: sources for i, sources in by_brand.items() if sources}
        seq = sequence.prepared(cursor, tables)
        coded = seq is not None and all(seq.covers(s) for s in by_brand.values())
        per_brand: list[str] = []
        values: dict[str, object] = {}
        for i, sources in by_brand.items():
            if seq is not None and coded:
                events, markers = sequence.codes_sql(seq, sources, start, self.as_of)
                time = "code"
            else:
                events, markers = events_sql(sources, tables, start, self.as_of, prefix=f"b{i}")
                time = "t"
            values |= markers
            per_brand.append(
                f"SELECT {literal_sql(i)} AS brand, min({time}) AS first_t, "  # noqa: S608
                f"max({time}) AS last_t, count(*) FILTER (WHERE {time} >= $risk) AS n_risk "
                f"FROM ({events}) GROUP BY person"
            )
        if not per_brand:
            return {"persons": {}}
        for name, day in (("recent", recent), ("risk", risk)):  # the rules' midnights
            values[name] = sequence.code_of(day) if coded else dt.datetime.combine(day, dt.time())
        sql = f"""
            WITH per AS ({" UNION ALL ".join(per_brand)})
            SELECT brand, segment, count(*) FROM (
                SELECT brand, CASE
                    WHEN first_t >= $recent THEN 'new'
                    WHEN last_t >= $recent AND n_risk >= $loyal THEN 'loyal'
                    WHEN last_t >= $recent THEN 'active'
                    WHEN last_t >= $risk THEN 'at_risk'
                    ELSE 'lapsed' END AS segment
                FROM per
            ) GROUP BY ALL
        """  # noqa: S608
        query = statement(sql, **values, loyal=self.loyal_events)
        found = cells_of(cursor, query, 2)
        return {"persons": {(self.brands[b], seg): n for (b, seg), n in found.items()}}

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`."""
        labels = [{"brand": b, "segment": s} for b, s in self.cells]
        rows, suppressed = person_rows(labels, noisy["persons"], privacy)
        extra = {
            "as_of": str(self.as_of),
            "rules": {
                "recent_days": self.recent_days,
                "risk_days": self.risk_days,
                "loyal_events": self.loyal_events,
                "lookback_days": self.lookback_days,
            },
        }
        return ["brand", "segment", "persons"], rows, suppressed, extra


def prepare_segments(
    params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> Segments:
    """Check the parameters (see the module docstring)."""
    p = Params("segments", params)
    chosen = brands(p, "brands", policy, party)
    as_of = p.date("as_of", clock.now().date())
    recent = p.integer("recent_days", 30, 1, 365)
    risk = p.integer("risk_days", 90, 2, 730)
    if risk <= recent:
        raise p.reject("risk_days", T_("must be longer than recent_days"))
    loyal = p.integer("loyal_events", 6, 2, 1000)
    lookback = p.integer("lookback_days", 365, 1, 3 * 366)
    if lookback < risk:
        raise p.reject("lookback_days", T_("must be at least risk_days"))
    p.done()
    return Segments(policy, party, tuple(chosen), as_of, recent, risk, loyal, lookback)
