"""Execution backends: the engines that resolve identities and compute exact aggregates.

A match hands a backend the stored party tables; the backend resolves persons
(``cleanroom.room.identity``, the same SQL on both engines) and builds the
generation's analysis tables where its queries will read them. The DP engine
(``cleanroom.room.query``) checks a query, charges the budget, compiles the
bounded plan to one SQL tree, hands it to a backend's cursor, and adds the noise
to whatever exact numbers come back; a backend only computes. ``duckdb`` is
the embedded warehouse (the default); ``spark`` runs the same tree, written as
Spark SQL (``dialect.py``), on Apache Spark over encrypted Parquet (``spark.py``).
Budget, cache, audit, policy and the uploaded datasets stay in the room's
metadata store and warehouse whatever the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlglot import exp

from cleanroom.errors import UserError
from cleanroom.room.config import Settings
from cleanroom.room.identity import ForeignLimit, IdentityStats, TokenSource
from cleanroom.room.warehouse import Warehouse


@dataclass(frozen=True)
class MatchInput:
    """One live dataset in a match: its stored table, what to keep, where the result goes."""

    source: TokenSource  # the warehouse table (``wh.<name>``) and its token columns
    keep_columns: list[str]  # every non-token column, in the dataset's order
    out: str  # the analysis table's bare name (``g<N>__<party>__<dataset>``)


class Cursor(Protocol):
    """DB-API-like: ``execute`` a statement, then rows.

    A statement is the compiler's sqlglot tree (its values typed literals, no
    parameters; each backend writes it in its own dialect) or a template's
    DuckDB text with ``?`` parameters.
    """

    def execute(self, sql: str | exp.Query, parameters: Sequence[object] | None = None, /) -> Any:
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

    def match(
        self,
        inputs: Sequence[MatchInput],
        limits: Mapping[str, int] | None = None,
        foreign: ForeignLimit | None = None,
        suppressed: Sequence[str] = (),
    ) -> IdentityStats:
        """Resolve persons over the inputs and build each analysis table ``out``.

        ``suppressed``: the warehouse tables (bare names) of the live
        suppression lists; every person holding one of their tokens, and
        every row holding one, is left out of every ``out``
        (``cleanroom.room.suppression``).

        ``limits``: the most identifiers of each type one person may hold
        (the policy's ``identity.max_per_person``; ``identity.resolve``);
        ``foreign``: how many of one party's persons another's rows may merge
        (``identity.max_foreign_merges``).

        Called before the generation goes live; a failure fails the match, and
        the caller then retires every ``out``. The token → person map is the
        match's own scratch: it never outlives the call.
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
