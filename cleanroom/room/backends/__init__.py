"""Execution backends: where identities are resolved and exact aggregates computed.

The one backend abstraction: a :class:`Backend` per room (its cursor, its
match, its retirement of old tables) and the :class:`Tables` a match's
statements run on. A match hands a backend the stored party tables; the
backend resolves persons (``cleanroom.room.identity``, the same SQL on both
backends, run on their :class:`Tables`) and builds the
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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlglot import exp

from cleanroom.errors import UserError
from cleanroom.room.config import Settings
from cleanroom.room.identity import IdentityStats, TokenSource
from cleanroom.room.identity_foreign import ForeignLimit
from cleanroom.room.warehouse import Warehouse


@dataclass(frozen=True)
class MatchInput:
    """One live dataset in a match: its stored table, what to keep, where the result goes."""

    source: TokenSource  # the warehouse table (``wh.<name>``) and its token columns
    keep_columns: list[str]  # every non-token column, in the dataset's order
    out: str  # the analysis table's bare name (``g<N>__<party>__<dataset>``)


class Cursor(Protocol):
    """DB-API-like: ``execute`` a statement, then rows.

    A statement is a sqlglot tree whose values are typed literals (the
    compiler's, or ``cleanroom.sql.statement``'s); each backend writes it in
    its own dialect, so no backend parses or binds anything.
    """

    def execute(self, statement: exp.Query, /) -> Any:
        """Run one statement; returns an object with ``fetchall()`` (the cursor itself)."""
        ...

    def fetchall(self) -> list[Any]:
        """Every row of the last result, as tuples."""
        ...


class Tables(Protocol):
    """Where a match's statements run on a backend: each SELECT's result becomes a table.

    Identity resolution (``cleanroom.room.identity``) and the opt-out lists
    (``cleanroom.room.suppression``) are written once against this; each
    backend implements it (``DuckDBTables``: the warehouse's TEMP tables;
    ``SparkTables``: checkpointed temporary views). Table names in the SQL are
    the room's (``quote_table``) or ones :meth:`scratch_name` made; each
    statement is a query tree (``cleanroom.sql.statement``: DuckDB's grammar,
    values as typed literal nodes), which each backend writes in its own
    dialect. One instance serves one match.
    """

    row_id: str  # an expression numbering a statement's rows with unique BIGINTs from 1
    key_hash: str  # a function of one BLOB giving a 64-bit integer hash (``token_ids``)
    one_place: bool  # every row is on one machine, so one global sort is cheap
    # The most rows one large GROUP BY groups at a time (``token_ids.build``), None: all.
    slice_rows: int | None

    def column_types(self, table: str) -> dict[str, str]:
        """Lower-cased column name → type, ``BLOB`` for byte strings."""
        ...

    def exists(self, table: str) -> bool:
        """Whether the room table ``table`` exists."""
        ...

    def scratch_name(self, stem: str) -> str:
        """A fresh, quoted name for an intermediate result of this call."""
        ...

    def materialize(self, table: str, select: exp.Query) -> None:
        """Store the result of ``select`` as the scratch table ``table``."""
        ...

    def append(self, table: str, select: exp.Query) -> None:
        """Add the rows of ``select`` to the scratch table ``table`` (same columns)."""
        ...

    def create(
        self,
        table: str,
        select: exp.Query,
        *,
        schema: str | None = None,
        not_null: str | None = None,
    ) -> None:
        """Store the result of ``select`` as the room table ``table`` (``schema``: DDL hint)."""
        ...

    def scalar(self, select: exp.Query) -> int:
        """The integer in the one row and column of ``select`` (NULL → 0)."""
        ...

    def drop(self, table: str) -> None:
        """Drop a scratch or room table if it exists."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """Settings for building large tables, restored afterwards."""
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
