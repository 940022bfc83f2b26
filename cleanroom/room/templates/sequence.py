"""Each person's event order, prepared once per match generation for the journey templates.

``transitions`` needs, for every event, the previous event of the same person
among the chosen brands' datasets in time order. Computed per query that is a
window over every event, partitioned by person and sorted by time: the most
expensive step of the journeys at the group's scale (200M events). It is a
property of the data, not of the question, so the match computes it once
(:func:`prepare`, DuckDB backend) into the generation's table
``g<N>___sequence``: every activity event (person, source, brand rank, time)
with, per activity source ``c``, the time of the person's latest event at
``c`` before this one in the order (time, brand) (column ``p<c>``). For any
chosen subset of sources, the previous chosen event is then the latest of
those columns — a scan with ``greatest``, no sort — and its brand the greatest
brand among the sources at that time (the order's tie-break).

A second table, ``g<N>___sequence_sources``, names the sources (``party.dataset``
and time column) in the order of their ``src`` numbers. A query whose sources
are not all there (a policy changed since the match, a Spark generation, a
table made by hand) falls back to the per-query window, which gives the same
pairs. Both tables hold only ``person`` (the room's own random numbering) and
times, like the analysis tables, and are retired with the generation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.templates.activity import Source
from cleanroom.room.warehouse import quote

EVENTS_KEY = "_sequence"  # reserved keys of a generation's tables (never "party.dataset")
SOURCES_KEY = "_sequence_sources"


@dataclass(frozen=True)
class Sequence:
    """The prepared tables of a generation and the sources they cover, by ``src`` number."""

    events: str
    sources: dict[tuple[str, str], int]  # (party.dataset, time column) -> src

    def covers(self, sources: list[Source]) -> bool:
        """Whether every one of ``sources`` (unfiltered) is prepared."""
        return all(s.where is None and (s.table, s.time) in self.sources for s in sources)


def activity(policy: CollaborationPolicy, tables: dict[str, str]) -> list[Source]:
    """Every activity source of the policy with a table in the generation, in a fixed order."""
    return [
        Source(party, name, contract.time)
        for party, spec in sorted(policy.parties.items())
        for name, contract in sorted(spec.datasets.items())
        if contract.time is not None and contract.activity and f"{party}.{name}" in tables
    ]


def prepare(
    cursor: Any, policy: CollaborationPolicy, tables: dict[str, str], prefix: str
) -> dict[str, str]:
    """Build the generation's sequence tables; the reserved ``tables`` entries naming them.

    Brands rank by name, so the tie-break among events at one instant is the
    one the per-query window uses (its brand ids follow the sorted names).
    """
    sources = activity(policy, tables)
    if not sources:
        return {}
    events, manifest = f"{prefix}___sequence", f"{prefix}___sequence_sources"
    brands = sorted({s.party for s in sources})
    parts = []
    for i, s in enumerate(sources):
        parts.append(
            f"SELECT person, {i}::SMALLINT AS src, {brands.index(s.party)}::SMALLINT AS brand, "
            f'CAST("{s.time}" AS TIMESTAMP) AS t FROM {quote(tables[s.table])} '
            f'WHERE "{s.time}" IS NOT NULL'
        )
    window = (
        "(PARTITION BY person ORDER BY t, brand ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    latest = ", ".join(
        f"max(CASE WHEN src = {i} THEN t END) OVER w AS p{i}" for i in range(len(sources))
    )
    values = ", ".join(f"({i}, ?, ?)" for i in range(len(sources)))
    try:
        cursor.execute(
            f"CREATE TABLE {quote(events)} AS SELECT person, src, brand, t, {latest} "
            f"FROM ({' UNION ALL '.join(parts)}) WINDOW w AS {window}"
        )
        cursor.execute(
            f"CREATE TABLE {quote(manifest)} AS "
            f"SELECT * FROM (VALUES {values}) AS m(src, tab, tcol)",
            [v for s in sources for v in (s.table, s.time)],
        )
    except BaseException:
        for name in (events, manifest):
            cursor.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        raise
    return {EVENTS_KEY: events, SOURCES_KEY: manifest}


def prepared(cursor: Any, tables: dict[str, str]) -> Sequence | None:
    """The generation's sequence tables, or None (not prepared: use the per-query window)."""
    events, manifest = tables.get(EVENTS_KEY), tables.get(SOURCES_KEY)
    if events is None or manifest is None:
        return None
    rows = cursor.execute(f"SELECT src, tab, tcol FROM {quote(manifest)}").fetchall()
    return Sequence(events, {(str(tab), str(tcol)): int(src) for src, tab, tcol in rows})


def previous_sql(
    seq: Sequence,
    sources: list[Source],
    brand_ids: dict[str, int],
    start: dt.date,
    end: dt.date,
    params: list[object],
) -> str:
    """``SELECT person, brand, t, prev_brand, prev_t``: each chosen event and the one before.

    Over the chosen sources' events in [start, end), each with the previous
    chosen event in the period (events with none are left out): what the
    per-query ``lag`` over ``ORDER BY t, brand`` gives, read from the prepared
    columns.
    """
    chosen = sorted({seq.sources[(s.table, s.time)]: s for s in sources}.items())
    cols = [f"p{src}" for src, _ in chosen]
    latest = f"greatest({', '.join(cols)})" if len(cols) > 1 else cols[0]
    # At the latest time, the greatest brand wins the tie, as in ORDER BY t, brand.
    by_brand = sorted(chosen, key=lambda item: brand_ids[item[1].party], reverse=True)
    which = " ".join(f"WHEN p{src} = prev_t THEN {brand_ids[s.party]}" for src, s in by_brand)
    case = (
        "CASE "
        + " ".join(f"WHEN src = {src} THEN {brand_ids[s.party]}" for src, s in chosen)
        + " END"
    )
    params.extend([start, end, start])
    return f"""
        SELECT person, brand, t, CASE {which} END AS prev_brand, prev_t FROM (
            SELECT person, {case} AS brand, t, {latest} AS prev_t, {", ".join(cols)}
            FROM {quote(seq.events)}
            WHERE src IN ({", ".join(str(src) for src, _ in chosen)})
              AND t >= CAST(? AS TIMESTAMP) AND t < CAST(? AS TIMESTAMP)
        ) WHERE prev_t >= CAST(? AS TIMESTAMP)
    """
