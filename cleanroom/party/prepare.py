"""``cleanroom prepare``: export → normalized tokens + declared columns → sealed bundle.

Streams the input in batches; per batch, DuckDB normalizes and tokenizes every
identifier column and types the declared columns, and Arrow writes the result
as Parquet straight into the encrypting bundle writer, so neither raw
identifiers nor plaintext tokens ever touch the disk. Rows that cannot be used
are counted by reason (never shown), and nothing is left at the output path
unless the whole file went through.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

import cleanroom
from cleanroom.bundle import BundleWriter
from cleanroom.errors import InputError
from cleanroom.keys import SymmetricKey
from cleanroom.party.normalize import normalize
from cleanroom.party.source import Source
from cleanroom.party.tokens import Tokenizer
from cleanroom.spec import ARROW_TYPES, SQL_TYPES, ColumnType, DatasetSpec, payload_schema

NO_IDENTIFIER = "no usable identifier"


# What prepare is doing, for a progress display (user-facing: one place for the catalogs).
PHASE_ROWS = "normalizing, tokenizing and encrypting: {rows:,} rows read"
PHASE_FINISH = "finishing the encrypted Parquet payload"
PHASE_SIGN = "signing the bundle"


@dataclass
class Summary:
    """Counts only: what was read, written, and why rows or identifiers were dropped."""

    rows_read: int = 0
    rows_written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    identifiers: dict[str, Counter[str]] = field(default_factory=dict)
    undeclared_columns: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the manifest and ``--json`` output."""
        return {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_rejected": dict(sorted(self.rejected.items())),
            "identifiers": {k: dict(sorted(v.items())) for k, v in self.identifiers.items()},
            "undeclared_columns_dropped": self.undeclared_columns,
        }


def _typing_sql(spec: DatasetSpec) -> str:
    # Column names are validated by the spec ([a-z][a-z0-9_]*), so quoting them is safe.
    # A blank cell is a missing value; a non-blank one that does not parse is a bad row.
    parts = []
    for name, kind in spec.columns.items():
        text = f"NULLIF(trim(\"{name}\"::VARCHAR), '')"
        value = f"TRY_CAST({text} AS {SQL_TYPES[kind]})"
        parts.append(f'{value} AS "{name}"')
        parts.append(f'({text} IS NOT NULL AND {value} IS NULL) AS "{name}__bad"')
    return "SELECT " + ", ".join(parts) + " FROM t"


class Preparer:
    """Turns batches of raw rows into batches of payload rows, keeping the counts."""

    def __init__(self, spec: DatasetSpec, match_key: SymmetricKey, threads: int | None = None):
        self.spec = spec
        self.tokenizer = Tokenizer(match_key, workers=threads)
        self.schema = payload_schema(spec)
        self.summary = Summary(identifiers={c: Counter() for c in spec.identifiers})
        self.con = duckdb.connect(config={"threads": threads or os.cpu_count() or 1})
        self.con.execute("SET enable_progress_bar = false")
        self._typing = _typing_sql(spec) if spec.columns else None
        self.timings: defaultdict[str, float] = defaultdict(float)  # seconds per stage

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *_: object) -> None:
        self.tokenizer.close()
        self.con.close()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall time to ``stage`` (for benchmarks and profiles)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - start

    def transform(self, raw: pa.Table) -> pa.Table:
        """One batch: tokens and typed columns, unusable rows removed and counted."""
        self.summary.rows_read += raw.num_rows
        columns: dict[str, pa.Array] = {}
        for name, id_type in self.spec.identifiers.items():
            with self.timed("normalize"):
                norm = normalize(self.con, raw.column(name).combine_chunks(), id_type)
            counts = self.summary.identifiers[name]
            counts["empty"] += norm.empty
            counts["invalid"] += norm.invalid
            counts["reference_parser"] += norm.fallback
            with self.timed("tokenize"):
                columns[name] = self.tokenizer(id_type, norm.values)
            counts["tokens"] += len(norm.values) - norm.values.null_count
        has_token = functools.reduce(pc.or_, [pc.is_valid(c) for c in columns.values()])
        reason = pc.if_else(has_token, pa.scalar(None, pa.string()), NO_IDENTIFIER)
        if self._typing is not None:
            t = raw.select(list(self.spec.columns))  # noqa: F841 - read by DuckDB
            with self.timed("type columns"):
                typed = self.con.sql(self._typing).to_arrow_table()
            for name, kind in self.spec.columns.items():
                columns[name] = typed.column(name).combine_chunks().cast(ARROW_TYPES[kind])
                bad = typed.column(f"{name}__bad").combine_chunks()
                reason = pc.if_else(
                    pc.and_(pc.is_null(reason), bad), f"{name}: not a valid {kind.value}", reason
                )
        keep = pc.is_null(reason)
        rejected = pc.drop_null(reason)
        if len(rejected):
            for item in pc.value_counts(rejected).to_pylist():
                self.summary.rejected[item["values"]] += item["counts"]
        out = pa.table(columns, schema=self.schema).filter(keep)
        self.summary.rows_written += out.num_rows
        return out


@dataclass(frozen=True)
class PrepareResult:
    """Where the bundle went and what it holds."""

    path: Path
    bundle_id: str
    summary: Summary
    timings: dict[str, float]


def prepare(
    *,
    input_path: str | Path,
    spec: DatasetSpec,
    party: str,
    match_key: SymmetricKey,
    room_key: X25519PublicKey,
    signing_key: Ed25519PrivateKey,
    out: str | Path,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
    phase: Callable[[str], None] | None = None,
) -> PrepareResult:
    """Normalize, tokenize and seal one dataset export into a bundle at ``out``.

    ``progress(done, total)`` follows the input as it is read; ``phase(text)``
    says what the run is doing, because the reader runs ahead of the work
    (its bar reaches 100% long before the last rows are tokenized and sealed).
    """
    source = Source(input_path, spec.input_columns)
    with Preparer(spec, match_key, threads) as preparer:
        return _seal(
            source, preparer, spec, party, match_key, room_key, signing_key, out, progress,
            phase or (lambda _: None),
        )  # fmt: skip


def _seal(
    source: Source,
    preparer: Preparer,
    spec: DatasetSpec,
    party: str,
    match_key: SymmetricKey,
    room_key: X25519PublicKey,
    signing_key: Ed25519PrivateKey,
    out: str | Path,
    progress: Callable[[int, int], None] | None,
    phase: Callable[[str], None],
) -> PrepareResult:
    preparer.summary.undeclared_columns = len(source.extra_columns)
    metadata = {
        "spec": spec.model_dump(mode="json"),
        "payload_schema": {f.name: str(f.type) for f in preparer.schema},
        "match_key_id": match_key.key_id,
        "tool": f"cleanroom {cleanroom.__version__}",
    }
    with BundleWriter(
        out,
        party=party,
        dataset=spec.dataset,
        metadata=metadata,
        room_key=room_key,
        signing_key=signing_key,
    ) as bundle:
        sink = pa.PythonFile(bundle, mode="w")
        writer = pq.ParquetWriter(
            sink,
            preparer.schema,
            compression={
                name: ("NONE" if name in spec.identifiers else "ZSTD")
                for name in preparer.schema.names
            },
            use_dictionary=[n for n, k in spec.columns.items() if k is ColumnType.category],
            write_statistics=[n for n in spec.columns],
        )
        batches = iter(source)
        phase(PHASE_ROWS.format(rows=0))
        while True:
            with preparer.timed("read and parse"):
                batch = next(batches, None)
            if batch is None:
                break
            table = preparer.transform(batch.table)
            with preparer.timed("write and encrypt"):
                writer.write_table(table)
            if progress is not None:
                progress(*source.progress())
            phase(PHASE_ROWS.format(rows=preparer.summary.rows_read))
        phase(PHASE_FINISH)
        with preparer.timed("write and encrypt"):
            writer.close()
        summary = preparer.summary
        if summary.rows_read == 0:
            raise InputError(source.path, "has a header but no data rows")
        if summary.rows_written == 0:
            raise InputError(source.path, "no row has a usable identifier; nothing to seal")
        phase(PHASE_SIGN)
        bundle.finish({"rows": summary.rows_written, "summary": summary.as_dict()})
    return PrepareResult(Path(out), bundle.bundle_id, summary, dict(preparer.timings))
