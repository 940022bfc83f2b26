"""``transitions``: for each ordered brand pair (A, B), persons whose next brand after A was B.

Each person's events across the chosen brands are put in time order; a
transition A→B is two consecutive events at different brands, B within
``window_days`` of A (so "next brand after A" skips repeat visits to A). A
person counts once per pair they made, and at most ``max_transitions`` pairs,
chosen by a hash salted with the match generation's secret (fixed per
generation, so asking again changes only the noise), so one person moves the
brand-by-brand matrix by at most that many (L1). The pairs over that bound are
counted and disclosed (:class:`~cleanroom.room.pipeline.Cut`). Parameters:
``brands`` (default: every brand open to you), ``window_days`` (1–365, default
30), ``max_transitions`` (1–10, default 3), ``start``/``end`` (dates; default
the year up to today).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.errors import T_
from cleanroom.room import dp, selection
from cleanroom.room.analyses import sequence
from cleanroom.room.analyses.activity import activity_sources, brands, events_sql
from cleanroom.room.analyses.journey import CUT, Cell, Journey, Vector, cells_of, person_rows
from cleanroom.room.analyses.params import Params, period
from cleanroom.room.pipeline import Cut
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.sensitivity import once_per_cell
from cleanroom.sql import bigint, statement

CUT_CELLS = {0: ("kept",), 1: ("cut",), 2: ("persons",)}
# Up to this many brands, a person's pairs are the bits of one BIGINT (64 = 8 x 8).
MASK_BRANDS = 8


@dataclass(frozen=True)
class Transitions(Journey):
    """The brand-to-brand matrix."""

    policy: CollaborationPolicy
    party: str
    brands: tuple[str, ...]
    window_days: int
    max_transitions: int
    start: Any
    end: Any
    name = "transitions"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        return (
            f"template transitions brands={','.join(self.brands)} window={self.window_days}"
            f" m={self.max_transitions} period={self.start}..{self.end}"
        )

    @property
    def pairs(self) -> tuple[Cell, ...]:
        """Every ordered pair of distinct brands."""
        return tuple(itertools.permutations(self.brands, 2))

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`."""
        return [
            Vector("persons", self.pairs, once_per_cell(min(self.max_transitions, len(self.pairs))))
        ]

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`."""
        sources = [s for b in self.brands for s in activity_sources(self.policy, self.party, b)]
        sources = [s for s in sources if s.table in tables]
        ids = {b: i for i, b in enumerate(self.brands)}  # integers sort faster than names
        numbers = ids  # brand -> its number in the events' rows
        prepared = sequence.prepared(cursor, tables)
        if sources and prepared is not None and prepared.covers(sources):
            # Each event's previous one, prepared at match time: no sort per query. Its
            # brands by their slots in the codes where the pairs' bits can hold them.
            slots = {b: prepared.brands[b] for b in self.brands if b in prepared.brands}
            by_slot = max(slots.values()) < MASK_BRANDS
            numbers = slots if by_slot else ids
            ordered, values = sequence.previous_sql(
                prepared, sources, None if by_slot else ids, self.start, self.end, self.window_days
            )
        else:
            events, values = events_sql(sources, tables, self.start, self.end, brand_ids=ids)
            values["window"] = self.window_days
            ordered = f"""
                SELECT person, brand, prev_brand,
                       t - prev_t <= to_days(CAST($window AS INTEGER)) AS near
                FROM (
                    SELECT person, brand, t,
                           lag(brand) OVER w AS prev_brand, lag(t) OVER w AS prev_t
                    FROM ({events}) WINDOW w AS (PARTITION BY person ORDER BY t, brand)
                )
            """  # noqa: S608
        made = "prev_brand IS NOT NULL AND prev_brand <> brand AND near"
        choose = (
            "SELECT a, b FROM pairs {where} QUALIFY row_number() OVER "
            "(PARTITION BY person ORDER BY hash(a, b, person, $salt), a, b) <= $m"
        )
        if max(numbers.values()) < MASK_BRANDS:
            # Each person's distinct pairs as the bits of one BIGINT (pair x -> y is bit
            # x * 8 + y of their numbers): one aggregation per person instead of a DISTINCT
            # over every transition; each bit then names its pair by the template's ids.
            # Only persons with more than m pairs choose (the same choice).
            codes = ", ".join(
                f"({numbers[x] * MASK_BRANDS + numbers[y]}, {ids[x]}, {ids[y]})"
                for x, y in itertools.permutations(numbers, 2)
            )
            pairs = f"""
                per AS (
                    SELECT person, mask, bit_count(mask) AS n FROM (
                        SELECT person,
                               bit_or(CAST(1 AS BIGINT) << (prev_brand * {MASK_BRANDS} + brand))
                                   AS mask
                        FROM seq WHERE {made} GROUP BY person
                    )
                ),
                pairs AS (
                    SELECT person, n, a, b
                    FROM per, (VALUES {codes}) AS r(k, a, b) WHERE (mask >> k) & 1 = 1
                ),
                kept AS (
                    SELECT a, b FROM pairs WHERE n <= $m
                    UNION ALL {choose.format(where="WHERE n > $m")}
                )
            """  # noqa: S608
        else:
            pairs = f"""
                pairs AS (
                    SELECT DISTINCT person, prev_brand AS a, brand AS b FROM seq WHERE {made}
                ),
                kept AS ({choose.format(where="")}),
                per AS (SELECT person, count(*) AS n FROM pairs GROUP BY person)
            """  # noqa: S608
        sql = f"""
            WITH seq AS ({ordered}), {pairs}
            SELECT a, b, count(*) FROM kept GROUP BY a, b
            UNION ALL SELECT -1, 0, coalesce(sum(least(n, $m)), 0) FROM per
            UNION ALL SELECT -1, 1, coalesce(sum(least(n - $m, $cap)), 0) FROM per WHERE n > $m
            UNION ALL SELECT -1, 2, count(*) FROM per WHERE n > $m
        """  # noqa: S608
        query = statement(
            sql,
            **values,
            salt=bigint(selection.salt(tables)),  # one type, so a salt hashes one way
            m=int(self.max_transitions),
            cap=int(self.cut().cap),
        )
        found = cells_of(cursor, query, 2)
        cut = {CUT_CELLS[b]: n for (a, b), n in found.items() if a < 0}
        return {
            "persons": {
                (self.brands[a], self.brands[b]): n for (a, b), n in found.items() if a >= 0
            },
            CUT: cut,
        }

    def cut(self) -> Cut:
        """Pairs over ``max_transitions`` a person (see :class:`~cleanroom.room.pipeline.Cut`)."""
        return Cut.of("pairs", self.max_transitions)

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`."""
        labels = [{"from": a, "to": b} for a, b in self.pairs]
        rows, suppressed = person_rows(labels, noisy["persons"], privacy)
        extra = {"brands": list(self.brands), "window_days": self.window_days}
        return ["from", "to", "persons"], rows, suppressed, extra


def prepare_transitions(
    params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> Transitions:
    """Check the parameters (see the module docstring)."""
    p = Params("transitions", params)
    chosen = brands(p, "brands", policy, party)
    if len(chosen) < 2:
        raise p.reject("brands", T_("must name at least two brands"))
    window = p.integer("window_days", 30, 1, 365)
    m = p.integer("max_transitions", 3, 1, 10)
    start, end = period(p)
    p.done()
    return Transitions(policy, party, tuple(chosen), window, m, start, end)
