"""The embedded backend: the room's own encrypted DuckDB warehouse (the default)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
from sqlglot import exp

from cleanroom.room.backends import MatchInput
from cleanroom.room.identity import IdentityStats, person_table, resolve
from cleanroom.room.identity_foreign import ForeignLimit
from cleanroom.room.suppression import suppressed_tokens
from cleanroom.room.warehouse import Warehouse
from cleanroom.sql import SCHEMA, quote_table


def _duckdb(select: exp.Query) -> str:
    """A statement tree as DuckDB SQL (its values are typed literals: no parameters)."""
    return select.sql(dialect="duckdb")


class DuckDBCursor:
    """A warehouse cursor: a statement tree in, written as DuckDB SQL, rows out."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, statement: exp.Query, /) -> duckdb.DuckDBPyConnection:
        """Run one statement; the result is read from what this returns (DuckDB's cursor)."""
        return self.con.execute(_duckdb(statement))

    def fetchall(self) -> list[Any]:
        """Every row of the last result."""
        return self.con.fetchall()


class DuckDBTables:
    """Resolution in the warehouse: scratch results as TEMP tables.

    TEMP tables live in DuckDB's ``temp`` catalog (spilled to the temp
    directory under memory pressure) whatever the caller's default database
    is, and die with the connection even if the process is killed mid-way.
    """

    row_id = "row_number() OVER ()"
    key_hash = "hash"  # DuckDB's 64-bit hash of a value
    one_place = True
    # A GROUP BY of 120M tokens into 56M groups spilled past a 6 GB memory limit;
    # slices of 32M occurrences fit (``token_ids.build``).
    slice_rows: int | None = 32_000_000

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.prefix = f"_idr_{secrets.token_hex(6)}_"

    def column_types(self, table: str) -> dict[str, str]:
        """See ``backends.Tables``."""
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {quote_table(table)}").fetchall()  # noqa: S608
        return {str(row[0]).lower(): str(row[1]) for row in rows}

    def exists(self, table: str) -> bool:
        """See ``backends.Tables``."""
        try:
            self.con.execute(f"SELECT 1 FROM {quote_table(table)} LIMIT 0").fetchall()  # noqa: S608
        except duckdb.CatalogException:
            return False
        return True

    def scratch_name(self, stem: str) -> str:
        """See ``backends.Tables``."""
        return f'temp.main."{self.prefix}{stem}"'

    def materialize(self, table: str, select: exp.Query) -> None:
        """See ``backends.Tables``."""
        self.con.execute(f"CREATE TEMP TABLE {table} AS {_duckdb(select)}")

    def append(self, table: str, select: exp.Query) -> None:
        """See ``backends.Tables``."""
        self.con.execute(f"INSERT INTO {table} {_duckdb(select)}")

    def create(
        self,
        table: str,
        select: exp.Query,
        *,
        schema: str | None = None,
        not_null: str | None = None,
    ) -> None:
        """See ``backends.Tables``; a ``temp.`` name makes a table private to the connection."""
        target = quote_table(table)
        kind = "TEMP TABLE" if table.startswith("temp.") else "TABLE"
        if schema is None:
            self.con.execute(f"CREATE {kind} {target} AS {_duckdb(select)}")
        else:
            self.con.execute(f"CREATE {kind} {target} ({schema})")
            self.con.execute(f"INSERT INTO {target} {_duckdb(select)}")
        if not_null is not None:
            self.con.execute(f"ALTER TABLE {target} ALTER COLUMN {not_null} SET NOT NULL")

    def scalar(self, select: exp.Query) -> int:
        """See ``backends.Tables``."""
        row = self.con.execute(_duckdb(select)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def drop(self, table: str) -> None:
        """See ``backends.Tables``."""
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


class DuckDBBackend:
    """Matches and queries in the warehouse that holds the uploaded datasets."""

    name = "duckdb"

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def cursor(self) -> DuckDBCursor:
        """A warehouse cursor that runs the compiler's trees as well as text."""
        return DuckDBCursor(self.warehouse.cursor())

    def match(
        self,
        inputs: Sequence[MatchInput],
        limits: Mapping[str, int] | None = None,
        foreign: ForeignLimit | None = None,
        suppressed: Sequence[str] = (),
    ) -> IdentityStats:
        """See :class:`~cleanroom.room.backends.Backend`; the person map is a TEMP table."""
        con = self.warehouse.cursor()
        tables = DuckDBTables(con)
        person_map = "temp.main.match_persons"  # TEMP tables are per cursor
        excluded = "temp.main.match_suppressed" if suppressed else None
        try:
            stats = resolve(
                tables,
                [i.source for i in inputs],
                person_map=person_map,
                limits=limits,
                foreign=foreign,
                keep_tokens=bool(suppressed),  # only a list's tokens need them
            )
            if excluded is not None:
                lists = [f"{SCHEMA}.{name}" for name in suppressed]
                suppressed_tokens(tables, lists, person_map, excluded)
            for item in inputs:
                person_table(
                    tables,
                    item.source,
                    person_map=person_map,
                    keep_columns=item.keep_columns,
                    out=f"{SCHEMA}.{item.out}",
                    suppressed=excluded,
                )
        finally:
            con.execute(f"DROP TABLE IF EXISTS {quote_table(person_map)}")
            if excluded is not None:
                con.execute(f"DROP TABLE IF EXISTS {quote_table(excluded)}")
            con.close()
        self.warehouse.checkpoint()
        return stats

    def retire(self, tables: Iterable[str]) -> None:
        """Drop a replaced or failed generation's tables."""
        for name in tables:
            self.warehouse.drop(name)

    def close(self) -> None:
        """The room closes the warehouse."""
