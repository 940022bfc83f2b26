"""Execution backends: the engines that compute a checked query's exact bounded aggregates.

The DP engine (``cleanroom.room.query``) checks a query, charges the budget,
compiles the bounded plan to SQL once, hands it to a backend's cursor, and
adds the noise to whatever exact numbers come back; a backend only computes.
``duckdb`` is the embedded warehouse (the default); ``spark`` runs the same
SQL, transpiled (``dialect.py``), on Apache Spark over the generation's
analysis tables exported as encrypted Parquet (``spark.py``). Budget, cache,
audit and policy stay in the room's metadata store whatever the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from cleanroom.config import Settings
from cleanroom.errors import UserError
from cleanroom.room.warehouse import Warehouse


class Cursor(Protocol):
    """DB-API-like: ``execute(sql, params)`` with DuckDB SQL and ``?`` parameters, then rows."""

    def execute(self, sql: str, parameters: Sequence[object] | None = None, /) -> Any:
        """Run one statement; returns an object with ``fetchall()`` (the cursor itself)."""
        ...

    def fetchall(self) -> list[Any]:
        """Every row of the last result, as tuples."""
        ...


class Backend(Protocol):
    """One engine for exact aggregates over the live generation's analysis tables."""

    name: str

    def cursor(self) -> Cursor:
        """A cursor for the calling thread."""
        ...

    def publish(self, tables: Mapping[str, str]) -> None:
        """Make a new generation's analysis tables (``party.dataset`` → table) readable.

        Called by the match before the generation goes live; a failure fails the match.
        """
        ...

    def retire(self, tables: Iterable[str]) -> None:
        """Forget the tables of a replaced or failed generation."""
        ...

    def close(self) -> None:
        """Release what the backend holds (not the warehouse, which the room owns)."""
        ...


def open_backend(settings: Settings, warehouse: Warehouse, secret: bytes, work: Path) -> Backend:
    """The backend ``settings.backend`` names; ``work`` is a private directory for its files."""
    if settings.backend == "duckdb":
        from cleanroom.room.backends.duckdb import DuckDBBackend

        return DuckDBBackend(warehouse)
    try:
        from cleanroom.room.backends.spark import SparkBackend
    except ImportError as err:
        raise UserError(
            "backend 'spark' needs pyspark: install the project with its spark extra "
            "(pip install 'cleanroom[spark]')"
        ) from err
    return SparkBackend.open(settings, warehouse, secret, work)
