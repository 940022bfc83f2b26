"""Reading a party's export in bounded-memory batches, with errors that name file, row, column.

CSV is parsed by Arrow (quoted fields may hold newlines); every cell arrives
as bytes and is checked for UTF-8 here, so a bad byte is reported with its row
instead of failing somewhere deep. Error messages never quote a cell: a cell
may be a phone number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cleanroom.errors import T_, InputError

CSV_BLOCK = 16 * 1024 * 1024
PARQUET_BATCH = 256 * 1024
_HEADER_PROBE = 1024 * 1024


@dataclass(frozen=True)
class Batch:
    """Some rows of the input, all declared columns present, strings as UTF-8."""

    first_row: int  # 1-based data row number of the batch's first row
    table: pa.Table


class Source:
    """One input file; iterate it for batches, ask it for progress."""

    def __init__(self, path: str | Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns
        if not self.path.is_file():
            raise InputError(self.path, T_("no such file"))
        self.size = self.path.stat().st_size
        if self.size == 0:
            raise InputError(self.path, T_("file is empty"))
        self.kind = "parquet" if self.path.suffix.lower() in (".parquet", ".pq") else "csv"
        self.extra_columns: list[str] = []
        self._file: pa.NativeFile | None = None
        self._rows_total: int | None = None
        if self.kind == "parquet":
            self._check_columns(self._parquet_names())
        else:
            self._check_columns(self._csv_header())

    # --- schema checks ------------------------------------------------------------
    def _check_columns(self, names: list[str]) -> None:
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(self.path, T_("header repeats column(s) %(dupes)s", dupes=dupes))
        missing = [c for c in self.columns if c not in names]
        if missing:
            raise InputError(
                self.path,
                T_("missing column(s) %(missing)s that the spec declares", missing=missing),
            )
        # Undeclared columns stay on the party's machine; only their count is reported.
        self.extra_columns = [n for n in names if n not in self.columns]

    def _parquet_names(self) -> list[str]:
        try:
            meta = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError):
            raise InputError(
                self.path, T_("not a readable Parquet file (damaged or truncated)")
            ) from None
        self._rows_total = meta.metadata.num_rows
        return list(meta.schema_arrow.names)

    def _csv_header(self) -> list[str]:
        with self.path.open("rb") as fh:
            probe = fh.read(_HEADER_PROBE)
        line = probe.split(b"\n", 1)[0].rstrip(b"\r")
        if line.startswith(b"\xef\xbb\xbf"):
            raise InputError(
                self.path, T_("starts with a byte-order mark; save it as UTF-8 without BOM")
            )
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(self.path, T_("header is not UTF-8 text"), row=0) from None
        names = next(csv.reader(io.StringIO(text)), [])
        if not any(n.strip() for n in names):
            raise InputError(self.path, T_("has no header line"))
        return names

    # --- batches ------------------------------------------------------------------
    def progress(self) -> tuple[int, int]:
        """(done, total) in bytes for CSV, in rows for Parquet."""
        if self.kind == "parquet":
            return self._rows_done, self._rows_total or 0
        return self._bytes_done, self.size

    _rows_done = 0
    _bytes_done = 0  # as of the last batch handed out (the file is closed at the end)

    def __iter__(self) -> Iterator[Batch]:
        reader = self._parquet() if self.kind == "parquet" else self._csv()
        first = 1
        for table in reader:
            yield Batch(first, table)
            first += table.num_rows
            self._rows_done = first - 1

    def _parquet(self) -> Iterator[pa.Table]:
        try:
            for batch in pq.ParquetFile(self.path).iter_batches(
                batch_size=PARQUET_BATCH, columns=self.columns
            ):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowInvalid, OSError):
            raise InputError(self.path, T_("Parquet data is damaged or truncated")) from None

    def _csv_reader(
        self, *, threads: bool, handler: object, text: bool = True
    ) -> tuple[pa.NativeFile, pacsv.CSVStreamingReader]:
        """Every column as text (Arrow checks the UTF-8), or as bytes to find a bad cell."""
        self._file = file = pa.OSFile(str(self.path))
        return file, pacsv.open_csv(
            file,
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=CSV_BLOCK),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(
                include_columns=self.columns,
                column_types={c: pa.string() if text else pa.binary() for c in self.columns},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )

    def _csv(self) -> Iterator[pa.Table]:
        ragged: list[Ragged] = []
        try:
            file, reader = self._csv_reader(threads=True, handler=_skipper(ragged))
            for batch in reader:
                if ragged:
                    self._raise_ragged()
                self._bytes_done = file.tell()
                yield pa.Table.from_batches([batch])
            if ragged:
                self._raise_ragged()
            self._bytes_done = self.size
        except pa.ArrowInvalid as err:
            if "invalid UTF8" in str(err):
                self._raise_bad_utf8()
            raise InputError(
                self.path,
                T_("not a readable CSV file (%(arrow_reason)s)", arrow_reason=_arrow_reason(err)),
            ) from None
        finally:
            if self._file is not None:
                self._file.close()

    def _raise_ragged(self) -> None:
        """Find the first bad row again, single-threaded so Arrow knows its number."""
        found: list[Ragged] = []
        for _ in self._csv_reader(threads=False, handler=_skipper(found), text=False)[1]:
            if found:
                break
        number, expected, actual = found[0]
        row = number - 1 if number is not None else None
        raise InputError(
            self.path,
            T_(
                "has %(actual)s fields where the header has %(expected)s",
                actual=actual,
                expected=expected,
            ),
            row=row,
        )

    def _raise_bad_utf8(self) -> None:
        """Read the file again as bytes to name the first cell that is not UTF-8 text.

        Arrow's text conversion says only that a block has one; reading every file
        as bytes and checking it afterwards cost more than the parse itself. A row
        of the wrong width before it is named instead, as a first read would.
        """
        ragged: list[Ragged] = []
        first = 1
        for batch in self._csv_reader(threads=True, handler=_skipper(ragged), text=False)[1]:
            if ragged:
                self._raise_ragged()
            bad = [
                (at, name) for name in batch.schema.names if (at := _first_bad(batch, name)) >= 0
            ]
            if bad:
                at, name = min(bad, key=lambda b: b[0])  # the row's first such column
                raise InputError(
                    self.path, T_("is not valid UTF-8 text"), row=first + at, field=name
                )
            first += batch.num_rows


Ragged = tuple[int | None, int, int]  # a row's number, the fields expected, the fields found


def _skipper(into: list[Ragged]) -> Callable[[pacsv.InvalidRow], str]:
    """An Arrow invalid-row handler: note the ragged row (never its text) and skip it."""

    def skip(row: pacsv.InvalidRow) -> str:
        into.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    return skip


def _first_bad(batch: pa.RecordBatch, name: str) -> int:
    """The index of a column's first cell that is not UTF-8, or -1."""
    cells = batch.column(name)
    try:
        cells.cast(pa.string())
    except pa.ArrowInvalid:
        for i, value in enumerate(cells.to_pylist()):
            try:
                if value is not None:
                    value.decode("utf-8")
            except UnicodeDecodeError:
                return i
    return -1


def _arrow_reason(err: Exception) -> str:
    """Arrow's message without the row text it sometimes quotes."""
    text = str(err).split(":", 1)[0].strip()
    return text or "parse error"
