"""The embedded backend: the room's own encrypted DuckDB warehouse (the default)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import duckdb

from cleanroom.room.backends import MatchInput
from cleanroom.room.identity import (
    DuckDBEngine,
    ForeignLimit,
    IdentityStats,
    person_table,
    quote_table,
    resolve,
)
from cleanroom.room.suppression import suppressed_tokens
from cleanroom.room.warehouse import SCHEMA, Warehouse


class DuckDBBackend:
    """Matches and queries in the warehouse that holds the uploaded datasets."""

    name = "duckdb"

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A warehouse cursor (DuckDB SQL, ``?`` parameters: the compiler's own dialect)."""
        return self.warehouse.cursor()

    def match(
        self,
        inputs: Sequence[MatchInput],
        limits: Mapping[str, int] | None = None,
        foreign: ForeignLimit | None = None,
        suppressed: Sequence[str] = (),
    ) -> IdentityStats:
        """See :class:`~cleanroom.room.backends.Backend`; the person map is a TEMP table."""
        con = self.warehouse.cursor()
        person_map = "temp.main.match_persons"  # TEMP tables are per cursor
        excluded = "temp.main.match_suppressed" if suppressed else None
        try:
            stats = resolve(
                con,
                [i.source for i in inputs],
                person_map=person_map,
                limits=limits,
                foreign=foreign,
                keep_tokens=bool(suppressed),  # only a list's tokens need them
            )
            if excluded is not None:
                lists = [f"{SCHEMA}.{name}" for name in suppressed]
                suppressed_tokens(DuckDBEngine(con), lists, person_map, excluded)
            for item in inputs:
                person_table(
                    con,
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
