"""Each person's event order, prepared once per match generation for the journey templates.

``transitions`` needs, for every event, the previous event of the same person
among the chosen brands' datasets in time order. Computed per query that is a
window over every event, partitioned by person and sorted by time: the most
expensive step of the journeys at the group's scale (200M events). It is a
property of the data, not of the question, so the match computes it once
(:func:`prepare`, DuckDB backend) into the generation's table
``g<N>___sequence``: every activity event (person, source, ``code``) with, per
activity source ``c``, the code of the person's latest event at ``c`` before
this one (column ``p<c>``). A code (:func:`code_sql`) is an event's place in
the order (time, brand) as one integer, so for any chosen subset of sources
the previous chosen event, with the order's tie-break, is the greatest of
those columns: a scan with ``greatest`` and integer arithmetic, no sort.
``retention`` reads the codes too (:func:`codes_sql`): a person's first event
and months as integers, from one table.

A second table, ``g<N>___sequence_sources``, names the sources (``party.dataset``
and time column) in the order of their ``src`` numbers. A query whose sources
are not all there (a policy changed since the match, a Spark generation, a
table made by hand) falls back to the per-query window, which gives the same
pairs. Both tables hold only ``person`` (the room's own random numbering) and
times, like the analysis tables, and are retired with the generation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom.room.analyses.activity import Source
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.sql import quote_column, statement, table_sql

SLOTS = 16  # brands a code can tell apart
EPOCH_OFFSET_US = 62_135_596_800_000_000  # 0001-01-01 to 1970-01-01, in microseconds
FIRST, LAST = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)
EVENTS_KEY = "_sequence"  # reserved keys of a generation's tables (never "party.dataset")
SOURCES_KEY = "_sequence_sources"


@dataclass(frozen=True)
class Sequence:
    """The prepared tables of a generation and the sources they cover, by ``src`` number."""

    events: str
    sources: dict[tuple[str, str], int]  # (party.dataset, time column) -> src
    brands: dict[str, int]  # party -> its brand slot in the codes (rank by name)

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


def code_sql(time: str, brand: int) -> str:
    """An event's place in the order (time, brand) as one BIGINT: microseconds, then brand.

    Comparing codes compares times and, at one instant, brands; the greatest
    of several codes is the latest event with the order's tie-break. Times
    count from 0001-01-01 so codes are never negative (``//`` and ``%`` then
    floor); 16 brand slots keep year 9999 within a BIGINT.
    """
    return f"((epoch_us(CAST({time} AS TIMESTAMP)) + {EPOCH_OFFSET_US}) * {SLOTS} + {brand})"


def prepare(
    cursor: Any, policy: CollaborationPolicy, tables: dict[str, str], prefix: str
) -> dict[str, str]:
    """Build the generation's sequence tables; the reserved ``tables`` entries naming them.

    Brands rank by name, so the tie-break among events at one instant is the
    one the per-query window uses (its brand ids follow the sorted names).
    Nothing is prepared (templates use the per-query window) when the policy
    does not approve ``transitions`` (the reader it was built for, so a match
    without it costs nothing more; ``retention`` then reads the tables'
    times), beyond 16 brands, or for a time outside years 1–9999, which a
    code cannot hold.

    ``cursor`` is the DuckDB warehouse's own (``room.wh.cursor()``), never a
    backend's: these statements are DuckDB text, run at match time, with the
    manifest's names bound as DuckDB's own named parameters (``$tab_<i>``).
    What the queries send to a backend (:func:`prepared`,
    :func:`previous_sql`) are statement trees.
    """
    approved = policy.templates.get("transitions")
    if approved is None or not approved.enabled:  # no reader: the match does not pay for it
        return {}
    sources = activity(policy, tables)
    brands = sorted({s.party for s in sources})
    if not sources or len(brands) > SLOTS:
        return {}
    for s in sources:
        time = quote_column(s.time)
        low, high = cursor.execute(
            f"SELECT min(CAST({time} AS TIMESTAMP)), max(CAST({time} AS TIMESTAMP)) "  # noqa: S608
            f"FROM {table_sql(tables[s.table])}"
        ).fetchone()
        if low is not None and not (low >= FIRST and high <= LAST):
            return {}
    events, manifest = f"{prefix}___sequence", f"{prefix}___sequence_sources"
    parts = []
    for i, s in enumerate(sources):
        time = quote_column(s.time)
        parts.append(
            f"SELECT person, {i}::SMALLINT AS src, "  # noqa: S608
            f"{code_sql(time, brands.index(s.party))} AS code "
            f"FROM {table_sql(tables[s.table])} WHERE {time} IS NOT NULL"
        )
    window = "(PARTITION BY person ORDER BY code ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    latest = ", ".join(
        f"max(CASE WHEN src = {i} THEN code END) OVER w AS p{i}" for i in range(len(sources))
    )
    # The manifest: a row per source, its names bound as DuckDB parameters.
    rows: list[str] = []
    names: dict[str, str] = {}
    for i, s in enumerate(sources):
        rows.append(f"({i}, $tab_{i}, $tcol_{i}, {brands.index(s.party)})")
        names |= {f"tab_{i}": s.table, f"tcol_{i}": s.time}
    try:
        cursor.execute(
            f"CREATE TABLE {table_sql(events)} AS SELECT person, src, code, {latest} "  # noqa: S608
            f"FROM ({' UNION ALL '.join(parts)}) WINDOW w AS {window}"
        )
        cursor.execute(
            f"CREATE TABLE {table_sql(manifest)} AS "  # noqa: S608
            f"SELECT * FROM (VALUES {', '.join(rows)}) AS m(src, tab, tcol, brand)",
            names,
        )
    except BaseException:
        for name in (events, manifest):
            cursor.execute(f"DROP TABLE IF EXISTS {table_sql(name)}")
        raise
    return {EVENTS_KEY: events, SOURCES_KEY: manifest}


def datasets(tables: Mapping[str, str]) -> dict[str, str]:
    """A generation's analysis tables of party datasets, without the prepared sequence's."""
    return {k: v for k, v in tables.items() if k not in (EVENTS_KEY, SOURCES_KEY)}


def prepared(cursor: Any, tables: dict[str, str]) -> Sequence | None:
    """The generation's sequence tables, or None (not prepared: use the per-query window).

    ``cursor`` is the backend's (the manifest is read with a statement tree).
    """
    events, manifest = tables.get(EVENTS_KEY), tables.get(SOURCES_KEY)
    if events is None or manifest is None:
        return None
    query = f"SELECT src, tab, tcol, brand FROM {table_sql(manifest)}"  # noqa: S608
    rows = cursor.execute(statement(query)).fetchall()
    return Sequence(
        events,
        {(str(tab), str(tcol)): int(src) for src, tab, tcol, _ in rows},
        {str(tab).split(".", 1)[0]: int(brand) for _, tab, _, brand in rows},
    )


def previous_sql(
    seq: Sequence,
    sources: list[Source],
    brand_ids: dict[str, int] | None,
    start: dt.date,
    end: dt.date,
    window_days: int,
) -> tuple[str, dict[str, object]]:
    """``SELECT person, brand, prev_brand, near``: each chosen event and the one before it.

    Over the chosen sources' events in [start, end), each with the previous
    chosen event in the period (events with none are left out) and whether it
    lies within ``window_days``: what the per-query ``lag`` over ``ORDER BY t,
    brand`` gives, read from the prepared codes with integer arithmetic only.
    A brand is the template's id for it in ``brand_ids`` or, with None, its
    slot in the codes (``seq.brands``): ``code % 16`` itself, no lookup per
    event (at 200M events the lookup cost a fifth of the statement).

    Returns the text and the values of its ``$name`` markers, for the
    statement that embeds it (:func:`cleanroom.sql.statement`):
    ``$seq_window`` (the window in microseconds), ``$seq_start`` and
    ``$seq_end`` (the codes of the period's bounds).
    """
    chosen = sorted({seq.sources[(s.table, s.time)] for s in sources})
    cols = [f"p{src}" for src in chosen]
    latest = f"greatest({', '.join(cols)})" if len(cols) > 1 else cols[0]
    values: dict[str, object] = {
        "seq_window": window_days * 86_400_000_000,
        "seq_start": code_of(start),
        "seq_end": code_of(end),
    }
    sql = f"""
        SELECT person, {brand_sql(seq, brand_ids, "code")} AS brand,
               {brand_sql(seq, brand_ids, "prev")} AS prev_brand,
               code // {SLOTS} - prev // {SLOTS} <= $seq_window AS near
        FROM (
            SELECT person, code, {latest} AS prev FROM {table_sql(seq.events)}
            WHERE src IN ({", ".join(map(str, chosen))}) AND code >= $seq_start AND code < $seq_end
        ) WHERE prev >= $seq_start
    """  # noqa: S608
    return sql, values


def codes_sql(
    seq: Sequence, sources: list[Source], start: dt.date, end: dt.date
) -> tuple[str, dict[str, object]]:
    """``SELECT person, code``: the chosen sources' events in [start, end), as codes.

    Markers: ``$seq_start`` and ``$seq_end`` (the codes of the period's bounds).
    """
    chosen = ", ".join(
        str(src) for src in sorted({seq.sources[(s.table, s.time)] for s in sources})
    )
    sql = f"""
        SELECT person, code FROM {table_sql(seq.events)}
        WHERE src IN ({chosen}) AND code >= $seq_start AND code < $seq_end
    """  # noqa: S608
    return sql, {"seq_start": code_of(start), "seq_end": code_of(end)}


def brand_sql(seq: Sequence, brand_ids: dict[str, int] | None, code: str) -> str:
    """SQL: the template's brand id of the event coded ``code`` (NULL: a brand not chosen).

    With ``brand_ids`` None, the brand's slot in the codes.
    """
    if brand_ids is None:
        return f"({code} % {SLOTS})"
    ids = [brand_ids.get(party) for party in sorted(seq.brands, key=seq.brands.__getitem__)]
    slots = "(CAST([" + ", ".join("NULL" if i is None else str(i) for i in ids) + "] AS INTEGER[]))"
    return f"{slots}[{code} % {SLOTS} + 1]"


def code_of(day: dt.date) -> int:
    """The code of midnight starting ``day``, before any brand at that instant."""
    micros = (dt.datetime(day.year, day.month, day.day) - dt.datetime(1, 1, 1)) // dt.timedelta(
        microseconds=1
    )
    return micros * SLOTS
