"""A stored result as a download: CSV, Parquet, JSON or XLSX, bounds and flags as columns.

Every format holds the same flat table (:func:`cleanroom.results.tidy`): one
line per released number with its 95% error bound and interval, so a number
never leaves the room without its uncertainty. JSON is the whole answer as the
API returns it (template figures such as pairwise rates included); XLSX adds a
sheet with the answer's facts (epsilon, policy version, cached).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from cleanroom.errors import T_, UserError
from cleanroom.results import tidy


@dataclass(frozen=True)
class Download:
    """A file to send: its bytes, media type and suffix."""

    body: bytes
    media_type: str
    suffix: str


FORMATS = ("json", "csv", "parquet", "xlsx")
Format = Literal["json", "csv", "parquet", "xlsx"]
assert set(FORMATS) == set(get_args(Format))
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _csv(columns: list[str], records: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(_safe_for_sheets(record))
    return out.getvalue().encode()


def _safe_for_sheets(record: dict[str, Any]) -> dict[str, Any]:
    """Labels that a spreadsheet would run as a formula get a leading quote (CSV injection)."""
    return {
        k: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
        for k, v in record.items()
    }


def _parquet(columns: list[str], records: list[dict[str, Any]]) -> bytes:
    table = pa.Table.from_pylist(records) if records else pa.table({c: [] for c in columns})
    sink = io.BytesIO()
    pq.write_table(table.select(columns), sink)
    return sink.getvalue()


def _xlsx(result: Mapping[str, Any], columns: list[str], records: list[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("result")
    sheet.append(columns)
    for record in records:
        sheet.append([_safe_for_sheets(record)[c] for c in columns])
    about = book.create_sheet("about")
    for key in ("query_id", "template", "epsilon_float", "delta", "mechanism", "cached",
                "policy_version", "generation", "suppressed_groups"):  # fmt: skip
        about.append([key, result.get(key)])
    sink = io.BytesIO()
    book.save(sink)
    return sink.getvalue()


def export(result: Mapping[str, Any], fmt: str) -> Download:
    """The result in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise UserError(
            T_(
                "unknown format '%(fmt)s'; use one of %(formats)s",
                fmt=fmt[:20],
                formats=", ".join(FORMATS),
            )
        )
    if fmt == "json":
        body = json.dumps(result, indent=2, sort_keys=True).encode()
        return Download(body, MEDIA_TYPES[fmt], fmt)
    columns, records = tidy(result)
    if fmt == "csv":
        return Download(_csv(columns, records), MEDIA_TYPES[fmt], fmt)
    if fmt == "parquet":
        return Download(_parquet(columns, records), MEDIA_TYPES[fmt], fmt)
    return Download(_xlsx(result, columns, records), MEDIA_TYPES[fmt], fmt)
