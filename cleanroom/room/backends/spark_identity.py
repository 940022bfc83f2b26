"""Identity resolution on Spark: the warehouse's algorithm, statement for statement.

:func:`cleanroom.room.identity.resolve` and ``person_table`` drive a
backend's :class:`~cleanroom.room.backends.Tables`; this is Spark's. Each
statement is the same query tree the warehouse runs, written as Spark SQL by
``dialect.render`` (``arg_min`` → ``min_by``, ``random()`` → ``rand()``; the
values are the tree's typed literals, nothing is parsed), and each result is
checkpointed and registered as a temporary view that the next round reads, so
a round's plan never grows with the rounds before it.

Two differences, neither touching which tokens end up together: token ids
are ``monotonically_increasing_id()`` (unique, not dense; Spark's
``row_number()`` needs a global order), computed once because the result is
checkpointed before anything reads it; and Spark's ``hash`` is 32-bit
Murmur3, not DuckDB's 64-bit hash, so ties are likelier. A tie only keeps a
vertex where it is for one round: every vertex still maps inside its own
closed neighbourhood, which is all correctness needs. The tokens' 8-byte
lookup keys (``token_ids.py``) need 64 bits, so here they are ``xxhash64``.

Tables are named as in the warehouse (``wh.<name>``); the caller says which
temporary view holds each source, and :meth:`SparkTables.view_of` gives the
view of each table a call created. ``localCheckpoint`` keeps the rounds'
results on the executors (not fault tolerant: losing an executor fails the
match, which is then rerun).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import BinaryType
from sqlglot import exp

from cleanroom.errors import InternalError
from cleanroom.room.backends.dialect import render
from cleanroom.sql import SCHEMA, column, identifier, quote_table, table_sql


def _bare(table: str) -> str:
    """``wh.name`` → ``name``; any other form is refused."""
    quote_table(table)
    schema, _, name = table.partition(".")
    if schema != SCHEMA or not name or "." in name:
        raise InternalError(f"Spark identity tables are {SCHEMA}.<name>, not {table!r}")
    return name


class SparkTables:
    """Resolution statements as Spark SQL; every result a checkpointed temporary view."""

    row_id = "monotonically_increasing_id() + 1"  # unique, from 1, not dense
    key_hash = "xxhash64"  # 64-bit, where Spark's hash() is 32-bit Murmur3
    one_place = False  # a window over every row would move them all to one partition
    slice_rows: int | None = None  # Spark's shuffles spread a GROUP BY over partitions

    def __init__(self, session: SparkSession, sources: Mapping[str, str]) -> None:
        """``sources``: room table name (``wh.<name>``) → the temporary view holding it."""
        self.session = session
        self.prefix = f"_idr_{secrets.token_hex(6)}_"
        self.views: dict[str, str] = {_bare(name): view for name, view in sources.items()}
        self.scratch: dict[str, str] = {}  # quoted scratch name → bare name
        self.frames: dict[str, DataFrame] = {}

    def _name(self, table: str) -> str:
        return self.scratch.get(table) or _bare(table)

    def _view(self, name: str) -> str:
        view = self.views.get(name)
        if view is None:
            raise InternalError(f"no Spark view for table {name!r}")
        return view

    def _frame(self, select: exp.Query) -> DataFrame:
        return self.session.sql(render(select, self._view))

    def view_of(self, table: str) -> str:
        """The temporary view holding room table ``table`` (a source or a result)."""
        return self._view(_bare(table))

    def column_types(self, table: str) -> dict[str, str]:
        """See :class:`~cleanroom.room.backends.Tables`."""
        schema = self.session.table(self._view(_bare(table))).schema
        return {
            field.name.lower(): (
                "BLOB"
                if isinstance(field.dataType, BinaryType)
                else field.dataType.simpleString().upper()
            )
            for field in schema.fields
        }

    def exists(self, table: str) -> bool:
        """See :class:`~cleanroom.room.backends.Tables`."""
        return _bare(table) in self.views

    def scratch_name(self, stem: str) -> str:
        """See :class:`~cleanroom.room.backends.Tables`."""
        name = f"{self.prefix}{stem}"
        quoted = table_sql(name)
        self.scratch[quoted] = name
        return quoted

    def materialize(self, table: str, select: exp.Query) -> None:
        """See :class:`~cleanroom.room.backends.Tables`."""
        name = self._name(table)
        view = name if table in self.scratch else f"{self.prefix}{name}"
        frame = self._frame(select).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(view)
        self.views[name] = view
        self.frames[name] = frame

    def append(self, table: str, select: exp.Query) -> None:
        """See :class:`~cleanroom.room.backends.Tables`."""
        name = self._name(table)
        frame = self.frames[name].unionByName(self._frame(select)).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(self.views[name])
        self.frames.pop(name).unpersist()
        self.frames[name] = frame

    def create(
        self,
        table: str,
        select: exp.Query,
        *,
        schema: str | None = None,
        not_null: str | None = None,
    ) -> None:
        """See :class:`~cleanroom.room.backends.Tables` (``schema`` is DuckDB's storage hint)."""
        self.materialize(table, select)
        if not_null is not None:
            view = self._view(self._name(table))
            nulls = exp.Is(this=column(not_null), expression=exp.null())
            check = exp.select(exp.Count(this=exp.Star())).from_(exp.Table(this=identifier(view)))
            row = self.session.sql(check.where(nulls).sql(dialect="spark")).first()
            if row is None or row[0]:
                raise InternalError(f"{table}.{not_null} holds NULL")

    def scalar(self, select: exp.Query) -> int:
        """See :class:`~cleanroom.room.backends.Tables`."""
        row = self._frame(select).first()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def drop(self, table: str) -> None:
        """See :class:`~cleanroom.room.backends.Tables`."""
        name = self._name(table)
        self.scratch.pop(table, None)
        frame = self.frames.pop(name, None)
        if frame is None:  # never drop a view not created here (a source)
            return
        self.session.catalog.dropTempView(self.views.pop(name))
        frame.unpersist()

    def close(self) -> None:
        """Drop every view these tables created (never a source's)."""
        for name in list(self.frames):
            self.session.catalog.dropTempView(self.views.pop(name))
            self.frames.pop(name).unpersist()

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """See :class:`~cleanroom.room.backends.Tables`; Spark needs no setting changed."""
        yield
