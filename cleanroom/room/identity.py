"""Identity resolution: one room-internal ``person`` per connected set of tokens.

Two tokens belong to the same person when they appear in one row of any
party's table, directly or through a chain of such rows (a phone seen with an
e-mail at one party and with a card at another joins all three). That is the
connected-components problem on a graph of up to ~10^8 nodes, so it runs
set-based inside DuckDB; Python only drives a logarithmic number of rounds.

Algorithm (randomised contraction, Bögeholz, Brand & Todor, "In-database
connected component analysis", ICDE 2020):

1. Tokens get dense BIGINT ids, so the iterative part hashes and joins 8-byte
   keys instead of 32-byte blobs. Edges are built in id space, one star per
   row (first token to each other token), deduplicated.
2. Each round draws a fresh secret salt and maps every vertex still having an
   edge to the vertex of its closed neighbourhood with the smallest
   ``hash(id, salt)``; every edge is replaced by the edge between the images
   and self-loops and duplicates are dropped. A vertex only ever maps inside
   its own component, so components are never merged wrongly; the paper
   proves the graph shrinks by a constant factor per round in expectation,
   so rounds grow with the log of the component size, not with its diameter
   as in plain label propagation (chains of 200, 20,000 and 10^6 tokens took
   ~8, ~16 and 22 rounds here; a 10^5-leaf star 12). The loop stops when no
   edge is left, i.e. when a round would change no label.
3. The per-round maps are composed backwards (each is smaller than the one
   before), giving every token the id of a representative of its component.
4. Persons are numbered 1..N by a fresh random permutation of the
   components, so ids are dense, collision-free, carry nothing derivable from
   tokens and change on every re-match.

Every step is one SELECT whose result becomes the table the next step reads,
written once in DuckDB SQL with ``?`` parameters and run by an :class:`Engine`:
DuckDB here (temporary tables), or Spark (``backends/spark_identity.py``:
each result a checkpointed temporary view, the SQL transpiled by
``backends/dialect.py``). Both compute the same components; only the random
labels (and the salted hashes choosing them) differ.

Table and column names come from the room, never from a request, but they are
still validated and quoted; data values only ever travel as bound parameters.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import duckdb

from cleanroom.errors import InternalError

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Expected rounds are ~log(largest component); this only stops a bug from
# looping forever, it is never reached by a correct run on any real graph.
_MAX_ROUNDS = 256
RANK = "_rank"  # per-person random row order in every analysis table (see person_table)


@dataclass(frozen=True)
class TokenSource:
    """A stored party table and the columns of it that hold room tokens."""

    table: str
    token_columns: list[str]


@dataclass(frozen=True)
class IdentityStats:
    """What a match did, for the audit log, progress display and benchmarks."""

    tokens: int
    edges: int
    persons: int
    iterations: int
    seconds: dict[str, float]


def quote_table(name: str) -> str:
    """Quote a possibly qualified table name part by part, refusing anything odd."""
    parts = name.split(".")
    if not _TABLE.match(name) or len(parts) > 3 or not all(parts):
        raise InternalError(f"invalid table name {name!r}")
    return ".".join(f'"{part}"' for part in parts)


def quote_column(name: str) -> str:
    """Quote a bare column name, refusing anything that is not a plain identifier."""
    if not _COLUMN.match(name):
        raise InternalError(f"invalid column name {name!r}")
    return f'"{name}"'


class Engine(Protocol):
    """Where resolution's statements run: each SELECT's result becomes a table.

    Table names in the SQL are the room's (``quote_table``) or ones
    :meth:`scratch_name` made; the SQL is DuckDB's with ``?`` parameters.
    """

    row_id: str  # an expression numbering a statement's rows with unique BIGINTs

    def column_types(self, table: str) -> dict[str, str]:
        """Lower-cased column name → type, ``BLOB`` for byte strings."""
        ...

    def exists(self, table: str) -> bool:
        """Whether the room table ``table`` exists."""
        ...

    def scratch_name(self, stem: str) -> str:
        """A fresh, quoted name for an intermediate result of this call."""
        ...

    def materialize(self, table: str, select: str, params: Sequence[object] = ()) -> None:
        """Store the result of ``select`` as the scratch table ``table``."""
        ...

    def create(
        self,
        table: str,
        select: str,
        params: Sequence[object] = (),
        *,
        schema: str | None = None,
        not_null: str | None = None,
    ) -> None:
        """Store the result of ``select`` as the room table ``table`` (``schema``: DDL hint)."""
        ...

    def scalar(self, select: str, params: Sequence[object] = ()) -> int:
        """The integer in the one row and column of ``select`` (NULL → 0)."""
        ...

    def drop(self, table: str) -> None:
        """Drop a scratch or room table if it exists."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """Settings for building large tables, restored afterwards."""
        ...


class DuckDBEngine:
    """Resolution in the warehouse: scratch results as TEMP tables.

    TEMP tables live in DuckDB's ``temp`` catalog (spilled to the temp
    directory under memory pressure) whatever the caller's default database
    is, and die with the connection even if the process is killed mid-way.
    """

    row_id = "row_number() OVER ()"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.prefix = f"_idr_{secrets.token_hex(6)}_"

    def column_types(self, table: str) -> dict[str, str]:
        """See :class:`Engine`."""
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {quote_table(table)}").fetchall()
        return {str(row[0]).lower(): str(row[1]) for row in rows}

    def exists(self, table: str) -> bool:
        """See :class:`Engine`."""
        try:
            self.con.execute(f"SELECT 1 FROM {quote_table(table)} LIMIT 0").fetchall()
        except duckdb.CatalogException:
            return False
        return True

    def scratch_name(self, stem: str) -> str:
        """See :class:`Engine`."""
        return f'temp.main."{self.prefix}{stem}"'

    def materialize(self, table: str, select: str, params: Sequence[object] = ()) -> None:
        """See :class:`Engine`."""
        self.con.execute(f"CREATE TEMP TABLE {table} AS {select}", list(params))

    def create(
        self,
        table: str,
        select: str,
        params: Sequence[object] = (),
        *,
        schema: str | None = None,
        not_null: str | None = None,
    ) -> None:
        """See :class:`Engine`; a ``temp.`` name makes a table private to the connection."""
        target = quote_table(table)
        kind = "TEMP TABLE" if table.startswith("temp.") else "TABLE"
        if schema is None:
            self.con.execute(f"CREATE {kind} {target} AS {select}", list(params))
        else:
            self.con.execute(f"CREATE {kind} {target} ({schema})")
            self.con.execute(f"INSERT INTO {target} {select}", list(params))
        if not_null is not None:
            self.con.execute(f"ALTER TABLE {target} ALTER COLUMN {not_null} SET NOT NULL")

    def scalar(self, select: str, params: Sequence[object] = ()) -> int:
        """See :class:`Engine`."""
        row = self.con.execute(select, list(params)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def drop(self, table: str) -> None:
        """See :class:`Engine`."""
        name = table if '"' in table else quote_table(table)  # scratch names come quoted
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Let DuckDB reorder rows while we build tables, then restore the caller's setting.

        Nothing here relies on row order, and keeping insertion order makes large
        CREATE TABLE AS statements buffer far more in memory.
        """
        row = self.con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
        before = bool(row[0]) if row else True
        if not before:  # already off (the room's warehouse sets it once and locks its settings)
            yield
            return
        self.con.execute("SET preserve_insertion_order = false")
        try:
            yield
        finally:
            self.con.execute("SET preserve_insertion_order = true")


def _engine(con: duckdb.DuckDBPyConnection | Engine) -> Engine:
    return DuckDBEngine(con) if isinstance(con, duckdb.DuckDBPyConnection) else con


def _refuse_existing(engine: Engine, name: str) -> None:
    """Refuse up front to overwrite: a match must never replace a table in place."""
    if engine.exists(name):
        raise InternalError(f"table {name!r} already exists")


def _check_source(engine: Engine, source: TokenSource) -> None:
    """Fail before any work if a source is not what the room thinks it stored."""
    if not source.token_columns:
        raise InternalError(f"source {source.table!r} declares no token column")
    lowered = [c.lower() for c in source.token_columns]
    if len(set(lowered)) != len(lowered):
        raise InternalError(f"source {source.table!r} repeats a token column")
    types = engine.column_types(source.table)
    for column in source.token_columns:
        quote_column(column)
        kind = types.get(column.lower())
        if kind is None:
            raise InternalError(f"source {source.table!r} has no column {column!r}")
        if kind != "BLOB":
            raise InternalError(f"token column {source.table}.{column} is {kind}, not BLOB")


class _Scratch:
    """Intermediate tables of one call, all dropped at the end."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.live: list[str] = []

    def name(self, stem: str) -> str:
        """Return the name of a new scratch table, tracked for dropping."""
        table = self.engine.scratch_name(stem)
        self.live.append(table)
        return table

    def drop(self, table: str) -> None:
        """Drop a scratch table as soon as it is no longer needed, to free memory."""
        self.engine.drop(table)
        if table in self.live:
            self.live.remove(table)

    def drop_all(self) -> None:
        """Drop every scratch table still live; keep going past failures."""
        for table in list(self.live):
            try:
                self.drop(table)
            except Exception:
                self.live.remove(table)


def _count(engine: Engine, table: str) -> int:
    return engine.scalar(f"SELECT count(*) FROM {table}")


def _salt() -> int:
    # 63 bits so the value binds as a plain BIGINT; unpredictable, from the OS.
    return secrets.randbits(63)


def _occurrences(source: TokenSource) -> list[str]:
    table = quote_table(source.table)
    return [
        f"SELECT {quote_column(c)} AS tok FROM {table} WHERE {quote_column(c)} IS NOT NULL"
        for c in source.token_columns
    ]


def _star_pairs(source: TokenSource) -> list[str]:
    """Token pairs of each row: its first token joined to each later one.

    A star spans exactly the row's tokens, so it links them all with k-1
    edges instead of k(k-1)/2.
    """
    table = quote_table(source.table)
    columns = [quote_column(c) for c in source.token_columns]
    selects = []
    for j in range(1, len(columns)):
        anchor = f"coalesce({', '.join(columns[:j])})"
        selects.append(
            f"SELECT {anchor} AS a, {columns[j]} AS b FROM {table} "
            f"WHERE {columns[j]} IS NOT NULL AND {anchor} IS NOT NULL"
        )
    return selects


def round_map_sql(edges: str) -> tuple[str, list[object]]:
    """One round's map: vertex with an edge → min-hash vertex of its closed neighbourhood."""
    salt = _salt()
    sql = f"""
        WITH arcs AS (
            SELECT u AS x, v AS y, hash(v, ?) AS hy FROM {edges}
            UNION ALL
            SELECT v AS x, u AS y, hash(u, ?) AS hy FROM {edges}
        ),
        best AS (
            SELECT x, arg_min(y, hy) AS y, min(hy) AS h FROM arcs GROUP BY x
        )
        SELECT x AS v, CASE WHEN h < hash(x, ?) THEN y ELSE x END AS rep
        FROM best
        """
    return sql, [salt, salt, salt]


def round_edges_sql(edges: str, step: str) -> str:
    """The next round's edges: every edge between the images, no loops, no duplicates."""
    return f"""
        SELECT DISTINCT least(ma.rep, mb.rep) AS u, greatest(ma.rep, mb.rep) AS v
        FROM {edges} e
        JOIN {step} ma ON ma.v = e.u
        JOIN {step} mb ON mb.v = e.v
        WHERE ma.rep <> mb.rep
        """


def _contract(engine: Engine, scratch: _Scratch, edges: str) -> tuple[list[str], int]:
    """Run contraction rounds until no edge is left; return the per-round maps.

    ``edges`` holds undirected edges once each as (u < v); it is consumed.
    Map ``i`` gives, for every vertex that still had an edge in round ``i``,
    the vertex it was merged into.
    """
    maps: list[str] = []
    current = edges
    while _count(engine, current) > 0:
        if len(maps) >= _MAX_ROUNDS:
            raise InternalError("identity resolution did not converge")
        step = scratch.name(f"map{len(maps)}")
        engine.materialize(step, *round_map_sql(current))
        maps.append(step)
        following = scratch.name(f"edges{len(maps)}")
        engine.materialize(following, round_edges_sql(current, step))
        scratch.drop(current)
        current = following
    scratch.drop(current)
    return maps, len(maps)


def _compose(engine: Engine, scratch: _Scratch, maps: list[str]) -> str | None:
    """Fold the round maps, last first, into one map vertex -> final representative.

    A representative absent from the next round's map had no edge left, so it
    is final. Each map is dropped once folded.
    """
    resolved: str | None = None
    for index in range(len(maps) - 1, -1, -1):
        step = maps[index]
        if resolved is None:
            resolved = step
            continue
        folded = scratch.name(f"final{index}")
        engine.materialize(
            folded,
            f"SELECT m.v, coalesce(f.rep, m.rep) AS rep "
            f"FROM {step} m LEFT JOIN {resolved} f ON f.v = m.rep",
        )
        scratch.drop(step)
        scratch.drop(resolved)
        resolved = folded
    return resolved


def resolve(
    con: duckdb.DuckDBPyConnection | Engine,
    sources: Sequence[TokenSource],
    *,
    person_map: str,
) -> IdentityStats:
    """Create table ``person_map`` (token BLOB, person BIGINT NOT NULL).

    ``con`` is the warehouse (DuckDB) or another :class:`Engine`. ``token``
    is unique by construction (it comes from a DISTINCT); no index is
    declared because an ART index over 10^8 32-byte keys costs gigabytes and
    the hash joins that read this table would not use it. The table is
    filled by one statement at the end and dropped on any failure, so no
    partial map survives an error.
    """
    engine = _engine(con)
    quote_table(person_map)
    if not sources:
        raise InternalError("identity resolution needs at least one source")
    for source in sources:
        _check_source(engine, source)
    _refuse_existing(engine, person_map)
    seconds: dict[str, float] = {}
    scratch = _Scratch(engine)
    created = False
    try:
        with engine.bulk():
            started = time.perf_counter()
            tokens = scratch.name("tokens")
            occurrences = " UNION ALL ".join(q for s in sources for q in _occurrences(s))
            engine.materialize(
                tokens,
                f"SELECT tok, {engine.row_id} AS id "
                f"FROM (SELECT DISTINCT tok FROM ({occurrences}) o) d",
            )
            token_count = _count(engine, tokens)
            seconds["tokens"] = time.perf_counter() - started

            started = time.perf_counter()
            edges = scratch.name("edges0")
            pairs = [q for s in sources for q in _star_pairs(s)]
            if pairs:
                engine.materialize(
                    edges,
                    f"""
                    SELECT DISTINCT least(ta.id, tb.id) AS u, greatest(ta.id, tb.id) AS v
                    FROM ({" UNION ALL ".join(pairs)}) p
                    JOIN {tokens} ta ON ta.tok = p.a
                    JOIN {tokens} tb ON tb.tok = p.b
                    WHERE ta.id <> tb.id
                    """,
                )
            else:
                engine.materialize(edges, f"SELECT id AS u, id AS v FROM {tokens} WHERE id <> id")
            edge_count = _count(engine, edges)
            seconds["edges"] = time.perf_counter() - started

            started = time.perf_counter()
            maps, rounds = _contract(engine, scratch, edges)
            resolved = _compose(engine, scratch, maps)
            seconds["components"] = time.perf_counter() - started

            started = time.perf_counter()
            if resolved is None:
                labelled = f"SELECT tok, id AS label, true AS alone FROM {tokens}"
                linked = f"SELECT id AS label FROM {tokens} WHERE id <> id"
            else:
                labelled = (
                    f"SELECT t.tok, coalesce(f.rep, t.id) AS label, f.v IS NULL AS alone "
                    f"FROM {tokens} t LEFT JOIN {resolved} f ON f.v = t.id"
                )
                linked = f"SELECT DISTINCT rep AS label FROM {resolved}"
            # A token without edges is its own component and its id is never some
            # other component's representative, so only linked tokens need the
            # DISTINCT. Ties on the salted hash fall back to the label: still a
            # permutation.
            created = True
            engine.create(
                person_map,
                f"""
                WITH labelled AS ({labelled}),
                components AS (
                    {linked}
                    UNION ALL
                    SELECT label FROM labelled WHERE alone
                ),
                shuffled AS (
                    SELECT label,
                           row_number() OVER (ORDER BY hash(label, ?), label) AS person
                    FROM components
                )
                SELECT l.tok AS token, s.person
                FROM labelled l JOIN shuffled s ON s.label = l.label
                """,
                [_salt()],
                # Random blobs do not compress; DuckDB would still spend most of the
                # write trying FSST on them (3x slower here), so say so up front.
                schema="token BLOB USING COMPRESSION uncompressed, person BIGINT NOT NULL",
            )
            persons = engine.scalar(f"SELECT max(person) FROM {quote_table(person_map)}")
            seconds["person_map"] = time.perf_counter() - started
    except BaseException:
        if created:
            engine.drop(person_map)
        raise
    finally:
        scratch.drop_all()
    return IdentityStats(
        tokens=token_count,
        edges=edge_count,
        persons=persons,
        iterations=rounds,
        seconds=seconds,
    )


def person_table(
    con: duckdb.DuckDBPyConnection | Engine,
    source: TokenSource,
    *,
    person_map: str,
    keep_columns: Sequence[str],
    out: str,
) -> int:
    """Create table ``out`` (person, *keep_columns*, ``_rank``); return its rows.

    This is what analysts see, so no token may reach it: token columns and
    any BLOB column are refused as keep columns. All tokens of a row belong
    to one person by construction, so the row's first token decides it; a row
    with no token (or none in the map) has no person and is left out.

    ``_rank`` numbers each person's rows 1, 2, … in a random order drawn once
    here, so the query engine bounds rows per person with ``_rank <= k``, a
    filter, instead of a window over every row at every query. Which rows a
    person keeps depends only on that person's rows and fresh randomness, so
    the bound's sensitivity argument is unchanged. Dataset columns cannot be
    called ``_rank`` (names start with a letter).
    """
    engine = _engine(con)
    _check_source(engine, source)
    _refuse_existing(engine, out)
    table = quote_table(source.table)
    quote_table(out)
    mapping = quote_table(person_map)
    types = engine.column_types(source.table)
    tokens = {c.lower() for c in source.token_columns}
    seen: set[str] = set()
    for column in keep_columns:
        quote_column(column)
        key = column.lower()
        if key in seen:
            raise InternalError(f"keep column {column!r} repeated")
        seen.add(key)
        if key in ("person", RANK):
            raise InternalError(f"keep column {column!r} would shadow an engine column")
        if key in tokens:
            raise InternalError(f"keep column {column!r} is a token column")
        kind = types.get(key)
        if kind is None:
            raise InternalError(f"source {source.table!r} has no column {column!r}")
        if kind == "BLOB":
            raise InternalError(f"keep column {column!r} is a BLOB and may hold tokens")
    anchor = f"coalesce({', '.join('s.' + quote_column(c) for c in source.token_columns)})"
    kept = "".join(f", s.{quote_column(c)}" for c in keep_columns)
    created = False
    try:
        with engine.bulk():
            created = True
            engine.create(
                out,
                f"""
                SELECT m.person{kept},
                       row_number() OVER (PARTITION BY m.person ORDER BY random()) AS {RANK}
                FROM {table} s JOIN {mapping} m ON m.token = {anchor}
                """,
                not_null="person",
            )
            return _count(engine, quote_table(out))
    except BaseException:
        if created:
            engine.drop(out)
        raise
