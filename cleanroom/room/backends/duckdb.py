"""The embedded backend: the room's own encrypted DuckDB warehouse (the default)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb

from cleanroom.room.warehouse import Warehouse


class DuckDBBackend:
    """Queries run where the match wrote the analysis tables; nothing to publish."""

    name = "duckdb"

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A warehouse cursor (DuckDB SQL, ``?`` parameters: the compiler's own dialect)."""
        return self.warehouse.cursor()

    def publish(self, tables: Mapping[str, str]) -> None:
        """The match's tables already live in the warehouse."""

    def retire(self, tables: Iterable[str]) -> None:
        """The match drops replaced tables from the warehouse itself."""

    def close(self) -> None:
        """The room closes the warehouse."""
