"""Apache Spark as the backend: the same checked SQL, on the group's own cluster.

After a match, each analysis table of the new generation is exported from the
warehouse to Parquet for Spark (``publish``): DuckDB streams it as Arrow
record batches, and the Spark session itself writes them with Parquet modular
encryption under the room's key (``kms.py``), so the files are unreadable
without the room secret and the writer is the reader's own library. Queries
(``SparkCursor``) take the DuckDB SQL the compiler and templates emit,
translate it (``dialect.py``) with the room's tables mapped to temporary views
over that Parquet, and return plain tuples, as a DuckDB cursor does. The
token → person map is never exported: Spark only ever sees analysis tables.

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
from pyspark.sql import SparkSession

from cleanroom.config import Settings
from cleanroom.room.backends.dialect import to_spark
from cleanroom.room.backends.kms import ParquetKey, kms_jar
from cleanroom.room.warehouse import Warehouse, quote

SESSION_CONF = {
    "spark.app.name": "cleanroom",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",  # no authentication on it; enable in spark-defaults.conf
    "spark.ui.showConsoleProgress": "false",
}
BATCH_ROWS = 1_000_000


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
    """DuckDB SQL in, Spark SQL run, tuples out."""

    def __init__(self, backend: SparkBackend) -> None:
        self.backend = backend
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, parameters: Sequence[object] | None = None, /) -> SparkCursor:
        """Translate with the parameters bound as literals, run, collect."""
        query = to_spark(sql, list(parameters or []), self.backend.view)
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
        session = spark_session(settings.spark_master, work)
        return cls(warehouse, ParquetKey.from_secret(secret), data, session)

    def cursor(self) -> SparkCursor:
        """See :class:`~cleanroom.room.backends.Backend`."""
        return SparkCursor(self)

    def publish(self, tables: Mapping[str, str]) -> None:
        """Export every analysis table of the generation (never the token → person map)."""
        for name in tables.values():
            self.export(name)

    def export(self, name: str) -> Path:
        """One warehouse table → encrypted Parquet, in bounded batches, then renamed into place."""
        table = quote(name)  # validates the name too
        target = self.data / name
        staging = self.data / f".{name}.partial"
        with self.lock:
            shutil.rmtree(staging, ignore_errors=True)
            reader = (
                self.warehouse.cursor()
                .execute(f"SELECT * FROM {table}")
                .to_arrow_reader(self.batch_rows)
            )
            mode = "overwrite"
            for batch in reader:
                self._write(pa.Table.from_batches([batch]), staging, mode)
                mode = "append"
            if mode == "overwrite":  # no rows: still a readable, typed, empty table
                self._write(reader.schema.empty_table(), staging, mode)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        return target

    def _write(self, table: pa.Table, path: Path, mode: str) -> None:
        frame = self.session.createDataFrame(table)
        frame.write.options(**self.key.write_options()).mode(mode).parquet(str(path))

    def view(self, name: str) -> str:
        """The temporary view over a table's Parquet, exported now if it never was."""
        with self.lock:
            if name not in self.views:
                path = self.data / name
                if not path.exists():  # e.g. matched while the backend was duckdb
                    self.export(name)
                view = f"{self.prefix}{name}"
                frame = self.session.read.options(**self.key.read_options()).parquet(str(path))
                frame.createOrReplaceTempView(view)
                self.views[name] = view
            return self.views[name]

    def retire(self, tables: Iterable[str]) -> None:
        """Drop the views and the Parquet of a replaced or failed generation."""
        with self.lock:
            for name in tables:
                quote(name)
                view = self.views.pop(name, None)
                if view is not None:
                    self.session.catalog.dropTempView(view)
                shutil.rmtree(self.data / name, ignore_errors=True)
                shutil.rmtree(self.data / f".{name}.partial", ignore_errors=True)

    def close(self) -> None:
        """Drop this backend's views; the session is the process's and outlives it."""
        with self.lock:
            for view in self.views.values():
                self.session.catalog.dropTempView(view)
            self.views.clear()
