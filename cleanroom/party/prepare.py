"""``cleanroom prepare``: export → normalized tokens + declared columns → sealed bundle.

Streams the input in batches; per batch, one Polars pass (native, on every
core) normalizes and tokenizes every identifier column — the few phones it
does not recognise go through the reference parser — DuckDB types the
declared columns, and Arrow writes the result
as Parquet straight into the encrypting bundle writer, so neither raw
identifiers nor plaintext tokens ever touch the disk. Rows that cannot be used
are counted by reason (never shown), and nothing is left at the output path
unless the whole file went through.

Batches are worked on by a small thread pool while the main thread reads the
next ones and writes the finished ones (:mod:`cleanroom.batches`). The counts
are kept by the main thread, in input order, so a summary (and the first bad
row an error names) is the same whatever the threads did.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

import cleanroom
from cleanroom.batches import in_order
from cleanroom.contract.bundle import BundleWriter
from cleanroom.contract.keyed_hash import TOKEN_VERSION, to_tokens
from cleanroom.contract.keys import SymmetricKey
from cleanroom.contract.spec import (
    ARROW_TYPES,
    SQL_TYPES,
    Calendar,
    ColumnType,
    DatasetSpec,
    payload_schema,
)
from cleanroom.errors import T_, InputError
from cleanroom.jalali import SOLAR_HIJRI_YEARS, is_solar_hijri_year
from cleanroom.jalali import parse_date as parse_jalali
from cleanroom.party.normalize import INVISIBLE_RE, finish, with_normalized
from cleanroom.party.source import Batch, Source
from cleanroom.party.tokens import Tokenizer, token_expr
from cleanroom.sql import quote_column
from cleanroom.text import ARABIC_DIGITS, PERSIAN_DIGITS, fold_digits, normalize_categories

NO_IDENTIFIER = "no usable identifier"
BundleKind = Literal["dataset", "suppression"]
ROWS_SHOWN = 10  # row numbers kept per rejection reason


# What prepare is doing, for a progress display (user-facing: one place for the catalogs).
PHASE_ROWS = "normalizing, tokenizing and encrypting: {rows:,} rows read"
PHASE_FINISH = "finishing the encrypted Parquet payload"
PHASE_SIGN = "signing the bundle"


@dataclass
class Summary:
    """Counts only: what was read, written, and why rows or identifiers were dropped.

    ``rejected_rows`` (the first row numbers per reason) and ``time_ranges``
    are for the party's own eyes: printed by ``prepare``, never put in the
    bundle's manifest.
    """

    rows_read: int = 0
    rows_written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_rows: dict[str, list[int]] = field(default_factory=dict)
    identifiers: dict[str, Counter[str]] = field(default_factory=dict)
    undeclared_columns: int = 0
    time_ranges: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self, *, local: bool = True) -> dict[str, Any]:
        """JSON-ready: for ``--json`` output, or (``local=False``) for the manifest."""
        out: dict[str, Any] = {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_rejected": dict(sorted(self.rejected.items())),
            "identifiers": {k: dict(sorted(v.items())) for k, v in self.identifiers.items()},
            "undeclared_columns_dropped": self.undeclared_columns,
        }
        if local:
            out["rejected_rows"] = dict(sorted(self.rejected_rows.items()))
            out["time_ranges"] = dict(sorted(self.time_ranges.items()))
        return out

    def note_rejected(self, reasons: pa.Array, first_row: int) -> None:
        """Count a batch's rejection reasons (null: kept) and keep their first row numbers."""
        rejected = pc.drop_null(reasons)
        if not len(rejected):
            return
        for item in pc.value_counts(rejected).to_pylist():
            reason, count = item["values"], item["counts"]
            self.rejected[reason] += count
            rows = self.rejected_rows.setdefault(reason, [])
            if len(rows) < ROWS_SHOWN:
                where = pc.indices_nonzero(pc.fill_null(pc.equal(reasons, reason), False))
                rows += [first_row + i for i in where[: ROWS_SHOWN - len(rows)].to_pylist()]

    def note_range(self, name: str, values: pa.Array) -> None:
        """Widen a time column's [min, max] by a batch's kept values."""
        bounds = pc.min_max(values).as_py()
        if bounds["min"] is None:
            return
        seen = self.time_ranges.get(name)
        low, high = str(bounds["min"]), str(bounds["max"])
        # Same type within a column, so ISO text orders as the values do.
        self.time_ranges[name] = [min(seen[0], low), max(seen[1], high)] if seen else [low, high]


_NUMBER_MARKS = {"\u066b": ".", "\u2212": "-"}  # Arabic decimal separator, minus sign
_GROUPED = "^[-+]?[0-9]{1,3}(\u066c[0-9]{3})+([.][0-9]+)?$"  # 1٬234٬567 (Arabic thousands)


def _folded(name: str) -> str:
    """SQL: a cell's text with Persian/Arabic digits and marks read (non-ASCII cells only)."""
    cell = f"{quote_column(name)}::VARCHAR"
    text = f"regexp_replace(translate({cell}, '{PERSIAN_DIGITS}{ARABIC_DIGITS}"
    text += "".join(_NUMBER_MARKS) + "', '" + "0123456789" * 2 + "".join(_NUMBER_MARKS.values())
    text += f"'), '{INVISIBLE_RE}', '', 'g')"
    grouped = (
        f"CASE WHEN regexp_full_match({text}, '{_GROUPED}') THEN replace({text}, '\u066c', '')"
    )
    return (
        f"CASE WHEN regexp_matches({cell}, '[^\\x01-\\x7f]') "
        f"THEN ({grouped} ELSE {text} END) ELSE {cell} END"
    )


def _typed_in_sql(spec: DatasetSpec) -> dict[str, ColumnType]:
    """The declared columns DuckDB types: all but categories.

    A category is text already normalized (:func:`normalize_categories`: trimmed, blank
    as null), which the SQL cast would copy through DuckDB and back unchanged.
    """
    return {n: k for n, k in spec.columns.items() if k is not ColumnType.category}


def _typing_sql(spec: DatasetSpec, folded: frozenset[str], trimmed: frozenset[str]) -> str:
    """The SQL that types a batch's declared columns and flags the cells it cannot read.

    Only ``folded`` columns (a batch with non-ASCII text in them) pay for reading
    Persian digits and marks: most exports are ASCII in their number columns.
    Only ``trimmed`` ones pay for ``trim``, which is Unicode-aware and the
    dearest step; on ASCII text it removes spaces alone, so a batch whose ASCII
    cells neither start nor end with one skips it (:func:`_untrimmed`). Each
    cell's text and value are computed once, in the inner queries.
    """
    # Column names are validated by the spec ([a-z][a-z0-9_]*) and quoted by the one helper.
    # A blank cell is a missing value; a non-blank one that does not parse is a bad row.
    texts, values, parts = [], [], []
    for i, (name, kind) in enumerate(_typed_in_sql(spec).items()):
        cell = _folded(name) if name in folded else f"{quote_column(name)}::VARCHAR"
        if name in trimmed:
            cell = f"trim({cell})"
        texts.append(f"NULLIF({cell}, '') AS x{i}")
        value = f"TRY_CAST(x{i} AS {SQL_TYPES[kind]})"
        if kind is ColumnType.integer:  # a cast would round '1.5' to 2: whole numbers only
            value = f"CASE WHEN regexp_full_match(x{i}, '[-+]?[0-9]+') THEN {value} END"
        values.append(f"x{i}, {value} AS v{i}")
        parts.append(f"v{i} AS {quote_column(name)}")
        parts.append(f"(x{i} IS NOT NULL AND v{i} IS NULL) AS {quote_column(name + '__bad')}")
        if kind in (ColumnType.timestamp, ColumnType.date):
            low, high = SOLAR_HIJRI_YEARS[0], SOLAR_HIJRI_YEARS[-1]
            sh = quote_column(f"{name}__sh")
            parts.append(f"coalesce(year(v{i}) BETWEEN {low} AND {high}, false) AS {sh}")
    inner = f"SELECT {', '.join(texts)} FROM t"  # noqa: S608 (names quoted above)
    return f"SELECT {', '.join(parts)} FROM (SELECT {', '.join(values)} FROM ({inner}))"  # noqa: S608


def _untrimmed(cells: pa.Array) -> bool:
    """Whether ``trim`` would leave every cell of an ASCII column as it is (no edge spaces)."""
    text = cells.cast(pa.string())
    edged = pc.or_(pc.starts_with(text, " "), pc.ends_with(text, " "))
    return not pc.any(edged).as_py()


@dataclass(frozen=True)
class Worked:
    """One batch after :meth:`Preparer.work`, before :meth:`Preparer.account` counts it."""

    first_row: int
    rows_read: int
    columns: dict[str, pa.Array]
    reason: pa.Array  # per row: why it cannot be used, NULL where it is kept
    identifiers: dict[str, Counter[str]]


class Preparer:
    """Turns batches of raw rows into batches of payload rows, keeping the counts.

    :meth:`work` may run on several threads at once (each on its own DuckDB
    cursor); :meth:`account` runs on one, in input order.
    """

    def __init__(
        self,
        spec: DatasetSpec,
        match_key: SymmetricKey,
        threads: int | None = None,
        source: str | Path = "<input>",
    ):
        self.spec = spec
        self.source = source
        self.match_key = match_key
        self.tokenizer = Tokenizer(match_key)
        self.schema = payload_schema(spec)
        self.summary = Summary(identifiers={c: Counter() for c in spec.identifiers})
        self.con = duckdb.connect(config={"threads": threads or os.cpu_count() or 1})
        self.con.execute("SET enable_progress_bar = false")
        self._typed = bool(spec.columns)
        # SQL by the batch's folded and trimmed columns
        self._typing: dict[tuple[frozenset[str], frozenset[str]], str] = {}
        # Seconds per stage, summed over the threads that ran it.
        self.timings: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._cursors = threading.local()
        self._opened: list[duckdb.DuckDBPyConnection] = []

    def _tokens(self, raw: pa.Table) -> tuple[dict[str, pa.Array], dict[str, Counter[str]]]:
        """Normalize and tokenize every identifier column in one native, parallel pass."""
        ids = self.spec.identifiers
        with self.timed("normalize and tokenize"):
            text = {n: raw.column(n).cast(pa.string()) for n in ids}
            frame = with_normalized(pl.LazyFrame(pa.table(text)), ids)
            out = (
                frame.with_columns(
                    token_expr(self.match_key, t, pl.col(f"{n}__value")).alias(f"{n}__token")
                    for n, t in ids.items()
                )
                .select(f"{n}__{part}" for n in ids for part in ("value", "blank", "token"))
                .collect()
                .to_arrow()
            )
        columns: dict[str, pa.Array] = {}
        counted: dict[str, Counter[str]] = {}
        for name, id_type in ids.items():
            fast = out.column(f"{name}__value").combine_chunks().cast(pa.string())
            tokens = to_tokens(out.column(f"{name}__token"))
            with self.timed("reference parser"):
                norm = finish(
                    text[name].combine_chunks(),
                    fast,
                    out.column(f"{name}__blank").combine_chunks(),
                    id_type,
                )
                if norm.fallback:  # the few the reference parser accepted get their tokens
                    late = pc.and_(pc.is_null(fast), pc.is_valid(norm.values))
                    if pc.any(late).as_py():
                        extra = self.tokenizer(id_type, pc.filter(norm.values, late))
                        tokens = pc.replace_with_mask(tokens, late, extra)
            counted[name] = Counter(
                empty=norm.empty,
                invalid=norm.invalid,
                reference_parser=norm.fallback,
                tokens=len(norm.values) - norm.values.null_count,
            )
            columns[name] = tokens
        return columns, counted

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *_: object) -> None:
        for cursor in self._opened:
            cursor.close()
        self.con.close()

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall time to ``stage`` (for benchmarks and profiles)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.timings[stage] += time.perf_counter() - start

    def work(self, batch: Batch) -> Worked:
        """The batch's tokens, typed columns and rejection reasons; counts nothing yet.

        ``batch.first_row`` (its first data row number) names the row of an error.
        """
        raw, first_row = batch.table, batch.first_row
        columns, identifiers = self._tokens(raw)
        has_token = functools.reduce(pc.or_, [pc.is_valid(c) for c in columns.values()])
        reason = pc.if_else(has_token, pa.scalar(None, pa.string()), NO_IDENTIFIER)
        if self._typed:
            reason = self._type_columns(raw, columns, reason, first_row)
        return Worked(first_row, raw.num_rows, columns, reason, identifiers)

    def account(self, done: Worked) -> pa.Table:
        """Count a worked batch (call in input order) and return its kept rows.

        The rejection summary keeps the first row numbers per reason, so the
        order of the calls is the order of the file.
        """
        self.summary.rows_read += done.rows_read
        for name, counts in done.identifiers.items():
            self.summary.identifiers[name].update(counts)
        columns, reason = done.columns, done.reason
        keep = pc.is_null(reason)
        self.summary.note_rejected(reason, done.first_row)
        out = pa.table(columns, schema=self.schema).filter(keep)
        for name, kind in self.spec.columns.items():
            if kind in (ColumnType.timestamp, ColumnType.date):
                self.summary.note_range(name, out.column(name))
        self.summary.rows_written += out.num_rows
        return out

    def _type_columns(
        self, raw: pa.Table, columns: dict[str, pa.Array], reason: pa.Array, first_row: int
    ) -> pa.Array:
        """Type the declared columns into ``columns``; the reasons, with bad cells added.

        Categories are normalized in Arrow (each distinct value once) and are never bad
        but for an emptied value; DuckDB casts the rest. A row's reason is its first
        column's, in the spec's order.
        """
        in_sql = _typed_in_sql(self.spec)
        with self.timed("type columns"):
            cells: dict[str, pa.Array] = {}
            emptied: dict[str, pa.Array] = {}
            for name, kind in self.spec.columns.items():
                cells[name] = raw.column(name).combine_chunks()
                if kind is ColumnType.category:
                    cells[name], emptied[name] = normalize_categories(cells[name])
                elif self.spec.calendar(name) is Calendar.jalali:
                    cells[name] = self._jalali(name, cells[name], first_row)
            typed = pa.table({})
            if in_sql:
                folded = frozenset(name for name in in_sql if not _ascii(cells[name]))
                trimmed = frozenset(n for n in in_sql if n in folded or not _untrimmed(cells[n]))
                t = pa.table({name: cells[name] for name in in_sql})  # noqa: F841 - read by DuckDB
                if (folded, trimmed) not in self._typing:
                    self._typing[folded, trimmed] = _typing_sql(self.spec, folded, trimmed)
                typed = self._cursor().sql(self._typing[folded, trimmed]).to_arrow_table()
        for name, kind in self.spec.columns.items():
            if name in emptied:
                columns[name] = cells[name]
                why = f"{name}: only marks (tatweel, vowel signs)"
                reason = pc.if_else(pc.and_(pc.is_null(reason), emptied[name]), why, reason)
                continue
            columns[name] = typed.column(name).combine_chunks().cast(ARROW_TYPES[kind])
            bad = typed.column(f"{name}__bad").combine_chunks()
            what = (
                f"{self.spec.calendar(name).value} {kind.value}"
                if name in self.spec.calendars
                else kind.value
            )
            reason = pc.if_else(
                pc.and_(pc.is_null(reason), bad), f"{name}: not a valid {what}", reason
            )
            if f"{name}__sh" in typed.column_names:
                self._refuse_solar_hijri(name, typed, columns[name], first_row)
        return reason

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """The calling thread's cursor: a DuckDB connection object serves one thread at a time."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._cursors, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._cursors.cursor = self.con.cursor()
                self._opened.append(cursor)
        return cursor

    def _refuse_solar_hijri(
        self, name: str, typed: pa.Table, values: pa.Array, first_row: int
    ) -> None:
        """A Gregorian column holding a 13xx/14xx year was written in the Solar Hijri calendar."""
        hits = pc.indices_nonzero(typed.column(f"{name}__sh").combine_chunks())
        if not len(hits):
            return
        at = hits[0].as_py()
        year = values[at].as_py().year
        raise InputError(
            self.source,
            T_(
                "year %(year)s looks like a Solar Hijri date; if the column is written "
                "in that calendar, declare it as {type: %(value)s, calendar: jalali}",
                year=year,
                value=self.spec.columns[name].value,
            ),
            row=first_row + at,
            field=name,
        )

    def _jalali(self, name: str, cells: pa.Array, first_row: int) -> pa.Array:
        """Solar Hijri dates (``1405/01/15 10:00``, Persian digits too) as Gregorian text.

        Each distinct date is converted once (by :mod:`cleanroom.jalali`); the
        time of day is kept as written. A cell that is not a Solar Hijri date
        becomes text that fails typing, so its row is rejected by reason; a year
        outside 1300–1499 refuses the file (the column is not Solar Hijri).
        """
        text = pc.utf8_trim_whitespace(cells.cast(pa.string()))
        parts = pc.extract_regex(text, _JALALI)
        dates = pc.if_else(pc.is_valid(parts), pc.struct_field(parts, "date"), None)
        distinct = pc.unique(dates).drop_null()
        converted: list[str | None] = []
        for value in distinct.to_pylist():
            year = int(fold_digits(value)[:4])
            if not is_solar_hijri_year(year):
                at = pc.index(dates, value).as_py()
                raise InputError(
                    self.source,
                    T_(
                        "year %(year)s is not a Solar Hijri year (1300-1499), but the spec "
                        "declares the column with calendar: jalali",
                        year=year,
                    ),
                    row=first_row + at,
                    field=name,
                )
            try:
                converted.append(parse_jalali(value).isoformat())
            except ValueError:
                converted.append(None)  # no such day (e.g. 30 Esfand of a common year)
        gregorian = pc.take(
            pa.array(converted, pa.string()), pc.index_in(dates, value_set=distinct)
        )
        rest = pc.if_else(pc.is_valid(parts), pc.struct_field(parts, "rest"), "")
        joined = pc.binary_join_element_wise(gregorian, rest, "")
        blank = pc.fill_null(pc.equal(text, ""), True)
        return pc.if_else(blank, None, pc.fill_null(joined, "not a date"))


def _ascii(cells: pa.Array) -> bool:
    """Whether every cell of a (text or binary) column is ASCII."""
    text = cells.cast(pa.string())
    return bool(pc.all(pc.string_is_ascii(text)).as_py() is not False)


_DIGIT = "[0-9\u06f0-\u06f9\u0660-\u0669]"
_JALALI = f"^(?P<date>{_DIGIT}{{4}}[-/]{_DIGIT}{{1,2}}[-/]{_DIGIT}{{1,2}})(?P<rest>(?:[ T].*)?)$"


WORKERS = 2  # batches worked on at once; more only adds memory on the parties' 2-4 cores


def _read(source: Source, preparer: Preparer) -> Iterator[Batch]:
    """The input's batches, the reading timed."""
    batches = iter(source)
    while True:
        with preparer.timed("read and parse"):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


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
    kind: BundleKind = "dataset",
) -> PrepareResult:
    """Normalize, tokenize and seal one dataset export into a bundle at ``out``.

    ``kind="suppression"``: the export lists customers who objected (opt-out);
    the spec declares identifiers only, and the bundle replaces the party's
    previous list in the room. An empty list (a header, no rows) is allowed:
    it withdraws every objection.

    ``progress(done, total)`` follows the input as it is read; ``phase(text)``
    says what the run is doing, because the reader runs ahead of the work
    (its bar reaches 100% long before the last rows are tokenized and sealed).
    """
    source = Source(input_path, spec.input_columns)
    with Preparer(spec, match_key, threads, source=source.path) as preparer:
        return _seal(
            source, preparer, spec, party, match_key, room_key, signing_key, out, progress,
            phase or (lambda _: None), kind,
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
    kind: BundleKind,
) -> PrepareResult:
    if kind == "suppression" and spec.columns:
        raise InputError(
            source.path,
            T_(
                "a suppression list holds identifiers only; its spec declares columns "
                "(%(columns)s)",
                columns=", ".join(sorted(spec.columns)),
            ),
        )
    preparer.summary.undeclared_columns = len(source.extra_columns)
    metadata = {
        "kind": kind,
        "spec": spec.model_dump(mode="json"),
        "payload_schema": {f.name: str(f.type) for f in preparer.schema},
        "match_key_id": match_key.key_id,
        "token_version": TOKEN_VERSION,
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
        phase(PHASE_ROWS.format(rows=0))
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="prepare") as pool:
            for done in in_order(pool, preparer.work, _read(source, preparer), WORKERS):
                table = preparer.account(done)
                with preparer.timed("write and encrypt"):
                    writer.write_table(table)
                if progress is not None:
                    progress(*source.progress())
                phase(PHASE_ROWS.format(rows=preparer.summary.rows_read))
        phase(PHASE_FINISH)
        with preparer.timed("write and encrypt"):
            writer.close()
        summary = preparer.summary
        if summary.rows_read == 0 and kind == "dataset":
            raise InputError(source.path, T_("has a header but no data rows"))
        if summary.rows_written == 0 and summary.rows_read > 0:
            raise InputError(source.path, T_("no row has a usable identifier; nothing to seal"))
        phase(PHASE_SIGN)
        bundle.finish({"rows": summary.rows_written, "summary": summary.as_dict(local=False)})
    return PrepareResult(Path(out), bundle.bundle_id, summary, dict(preparer.timings))
