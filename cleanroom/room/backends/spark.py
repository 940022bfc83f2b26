"""Apache Spark as the backend: the same match and checked SQL, on the group's own cluster.

Everything Spark reads or writes is Parquet with modular encryption under the
room's key (``kms.py``), so the files are unreadable without the room secret.

A match (``match``) exports the live party tables from the warehouse —
room-keyed tokens included, as the warehouse stores them — into a directory
of its own, resolves persons on Spark with the warehouse's own statements
(``spark_identity.py``), has Spark write each analysis table, and deletes the
exported party tables and the token → person map before it returns, whether
it succeeded or not. So room-keyed tokens exist outside the warehouse only
while a match runs, encrypted as the warehouse is, and only on the room's own
Spark; no token is ever in an analysis table. Tokens are HMACs under the room
secret (a party cannot link them to its own), and Spark's shuffle files,
spills and cached blocks are encrypted too (``spark.io.encryption.enabled``).

Queries (``SparkCursor``) take the statement trees the compiler and the
analyses build, write them as Spark SQL (``dialect.render``) with the room's
tables mapped to temporary views over that Parquet, and return plain tuples,
as a DuckDB cursor does.

The session runs in UTC with NTZ timestamps (DuckDB's naive ``TIMESTAMP``).
``spark_master`` picks local mode or a cluster; on a cluster ``spark_data``
must be a directory mounted at the same path on the room and on every worker.
Other Spark settings (memory, executors) come from Spark's own
``spark-defaults.conf`` (``SPARK_CONF_DIR``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from sqlglot import exp

from cleanroom.errors import ConflictError
from cleanroom.room.backends import MatchInput
from cleanroom.room.backends.dialect import render
from cleanroom.room.backends.kms import ParquetKey, kms_jar
from cleanroom.room.backends.spark_identity import SparkTables
from cleanroom.room.config import Settings
from cleanroom.room.identity import IdentityStats, person_table, resolve
from cleanroom.room.identity_foreign import ForeignLimit
from cleanroom.room.suppression import suppressed_tokens
from cleanroom.room.warehouse import Warehouse
from cleanroom.sql import SCHEMA, table_sql

SESSION_CONF = {
    "spark.app.name": "cleanroom",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",  # no authentication on it; enable in spark-defaults.conf
    "spark.ui.showConsoleProgress": "false",
    # Shuffle files, spills and blocks on local disks: match tokens and analysis rows.
    "spark.io.encryption.enabled": "true",
}
BATCH_ROWS = 1_000_000  # rows per Arrow batch and Parquet row group
FILE_ROWS = 16_000_000  # rows per exported file (files are Spark's unit of parallel reading)


def spark_session(master: str, work: Path, conf: Mapping[str, str] | None = None) -> SparkSession:
    """The process's Spark session (created once, with the room's KMS client on its classpath)."""
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master)
    settings = {**SESSION_CONF, "spark.jars": str(kms_jar(work)), **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


class SparkCursor:
    """A statement tree in, Spark SQL run, tuples out."""

    def __init__(self, backend: SparkBackend) -> None:
        self.backend = backend
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, statement: exp.Query, /) -> SparkCursor:
        """Write the tree as Spark SQL (its values are typed literals), run it, collect."""
        query = render(statement, self.backend.view)
        self.rows = [tuple(row) for row in self.backend.session.sql(query).collect()]
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        """The rows of the last statement."""
        return self.rows


class SparkBackend:
    """Analysis tables as encrypted Parquet, queries as Spark SQL."""

    name = "spark"

    def __init__(
        self,
        warehouse: Warehouse,
        key: ParquetKey,
        data: Path,
        session: SparkSession,
        *,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.warehouse = warehouse
        self.key = key
        self.data = data
        self.session = session
        self.batch_rows = batch_rows
        # Temporary views are per session; a prefix keeps two rooms in one process apart.
        self.prefix = f"cr{secrets.token_hex(4)}__"
        self.views: dict[str, str] = {}
        self.lock = threading.RLock()
        data.mkdir(parents=True, exist_ok=True)

    @classmethod
    def open(
        cls, settings: Settings, warehouse: Warehouse, secret: bytes, work: Path
    ) -> SparkBackend:
        """From the room's settings: master, Parquet directory, key from the room secret."""
        data = settings.spark_data or settings.room / "spark"
        # What a match killed mid-way left: exported party tables, half-written tables.
        for leftover in [*data.glob(".match-*"), *data.glob(".*.partial")]:
            shutil.rmtree(leftover, ignore_errors=True)
        session = spark_session(settings.spark_master, work)
        return cls(warehouse, ParquetKey.from_secret(secret), data, session)

    def cursor(self) -> SparkCursor:
        """See :class:`~cleanroom.room.backends.Backend`."""
        return SparkCursor(self)

    def match(
        self,
        inputs: Sequence[MatchInput],
        limits: Mapping[str, int] | None = None,
        foreign: ForeignLimit | None = None,
        suppressed: Sequence[str] = (),
    ) -> IdentityStats:
        """See :class:`~cleanroom.room.backends.Backend` and the module docstring."""
        run = self.data / f".match-{secrets.token_hex(6)}"
        sources: dict[str, str] = {}
        engine: SparkTables | None = None
        try:
            names = [i.source.table.removeprefix(f"{SCHEMA}.") for i in inputs]
            for name in [*names, *suppressed]:
                frame = self._read(self.export(name, into=run))
                view = f"{self.prefix}match_{name}"
                frame.createOrReplaceTempView(view)
                sources[f"{SCHEMA}.{name}"] = view
            engine = SparkTables(self.session, sources)
            person_map = f"{SCHEMA}.{self.prefix}persons"
            stats = resolve(
                engine,
                [i.source for i in inputs],
                person_map=person_map,
                limits=limits,
                foreign=foreign,
                keep_tokens=bool(suppressed),  # only a list's tokens need them
            )
            excluded = f"{SCHEMA}.{self.prefix}suppressed" if suppressed else None
            if excluded is not None:
                lists = [f"{SCHEMA}.{name}" for name in suppressed]
                suppressed_tokens(engine, lists, person_map, excluded)
            for item in inputs:
                out = f"{SCHEMA}.{item.out}"
                person_table(
                    engine,
                    item.source,
                    person_map=person_map,
                    keep_columns=item.keep_columns,
                    out=out,
                    suppressed=excluded,
                )
                self._save(self.session.table(engine.view_of(out)), item.out)
                engine.drop(out)
        finally:
            if engine is not None:
                engine.close()
            for view in sources.values():
                self.session.catalog.dropTempView(view)
            shutil.rmtree(run, ignore_errors=True)
        return stats

    def _save(self, frame: DataFrame, name: str) -> None:
        """A Spark result → the table's encrypted Parquet, written aside then renamed."""
        target, staging = self._paths(self.data, name)
        shutil.rmtree(staging, ignore_errors=True)
        frame.write.options(**self.key.write_options()).parquet(str(staging))
        self._swap(staging, target)

    def _swap(self, staging: Path, target: Path) -> None:
        with self.lock:
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)

    def export(self, name: str, into: Path | None = None) -> Path:
        """A warehouse table → encrypted Parquet written by Arrow, aside and then renamed.

        DuckDB streams the table in batches of ``batch_rows`` (memory stays
        bounded); each batch is one row group, ``FILE_ROWS`` rows a file.
        """
        table = table_sql(name)  # validates the name too
        target, staging = self._paths(into or self.data, name)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        cursor = self.warehouse.cursor()
        reader = cursor.execute(f"SELECT * FROM {table}").to_arrow_reader(self.batch_rows)  # noqa: S608
        writer: pq.ParquetWriter | None = None
        files = rows = 0
        try:
            for batch in reader:
                if writer is None or rows >= FILE_ROWS:
                    if writer is not None:
                        writer.close()
                    writer = self._writer(staging / f"part-{files:05d}.parquet", batch.schema)
                    files, rows = files + 1, 0
                writer.write_batch(batch, row_group_size=self.batch_rows)
                rows += batch.num_rows
            if writer is None:  # no rows: still a readable, typed, empty table
                writer = self._writer(staging / "part-00000.parquet", reader.schema)
        finally:
            if writer is not None:
                writer.close()
            cursor.close()
        self._swap(staging, target)
        return target

    def _writer(self, path: Path, schema: pa.Schema) -> pq.ParquetWriter:
        return pq.ParquetWriter(
            str(path), schema, encryption_properties=self.key.encryption_properties()
        )

    @staticmethod
    def _paths(directory: Path, name: str) -> tuple[Path, Path]:
        table_sql(name)
        return directory / name, directory / f".{name}.partial"

    def _read(self, path: Path) -> DataFrame:
        return self.session.read.options(**self.key.read_options()).parquet(str(path))

    def view(self, name: str) -> str:
        """The temporary view over a table's Parquet, exported now if it never was."""
        with self.lock:
            if name not in self.views:
                path = self.data / name
                if not path.exists():  # e.g. matched while the backend was duckdb
                    if name not in self.warehouse.tables():
                        raise ConflictError(
                            f"analysis table {name} is neither in {self.data} nor in the "
                            "warehouse (deleted by hand?); run a match again"
                        )
                    self.export(name)
                view = f"{self.prefix}{name}"
                self._read(path).createOrReplaceTempView(view)
                self.views[name] = view
            return self.views[name]

    def retire(self, tables: Iterable[str]) -> None:
        """Drop the views and the Parquet of a replaced or failed generation.

        Also any warehouse copy: a generation matched while the backend was
        ``duckdb`` keeps its tables there.
        """
        with self.lock:
            for name in tables:
                target, staging = self._paths(self.data, name)
                view = self.views.pop(name, None)
                if view is not None:
                    self.session.catalog.dropTempView(view)
                shutil.rmtree(target, ignore_errors=True)
                shutil.rmtree(staging, ignore_errors=True)
                self.warehouse.drop(name)

    def close(self) -> None:
        """Drop this backend's views; the session is the process's and outlives it."""
        with self.lock:
            for view in self.views.values():
                self.session.catalog.dropTempView(view)
            self.views.clear()
