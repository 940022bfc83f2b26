"""A released result as a flat table: one line per released number, its bounds and flags.

The room answers with rows of dimensions and numbers (``{"value", "error95"}``,
or for an average ``{"value", "low", "high", "error95"}``). Spreadsheets,
Parquet files and DataFrames want flat columns, and a number without its error
bound is easy to misread, so every export and the Python client use this one
layout: the group's dimensions, then ``measure``, ``value``, ``error95``,
``low``, ``high`` (the 95% interval), ``flags`` (``mostly_noise``,
``no_estimate``, ``clamped``, ``range_only``, the rule that withheld or
narrowed it…), ``display`` (the number rounded to what its bound allows) and
``step`` (that rounding step), then the facts of the whole
answer (query id, epsilon, policy version, cached). Pure data: shared by the
room (downloads) and the client (DataFrames).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cleanroom.accuracy import mostly_noise, read

NUMBER_COLUMNS = ("measure", "value", "error95", "low", "high", "flags", "display", "step")
ANSWER_COLUMNS = ("query_id", "epsilon", "policy_version", "cached")

# Flags of one number; a reader filters on them instead of parsing prose.
NO_ESTIMATE = "no_estimate"  # an average over no usable count: only the bounds are known
CACHED = "cached"  # the whole answer was served from the cache, at no cost
MOSTLY_NOISE = "mostly_noise"  # |value| <= error95: the bound reaches the value
CLAMPED = "clamped"  # an AVG/ratio cut at the edge of its allowed range
RANGE_ONLY = "range_only"  # the interval covers most of the allowed range: read the range
INCLUDES_ZERO = "includes_zero"  # a difference whose interval includes 0: no evidence


def flags(cell: Mapping[str, Any]) -> list[str]:
    """The flags of one released number, and the rule that withheld or narrowed it."""
    found = [NO_ESTIMATE] if cell.get("value") is None else []
    if mostly_noise(cell):
        found.append(MOSTLY_NOISE)
    found += [f for f in (CLAMPED, RANGE_ONLY, INCLUDES_ZERO) if cell.get(f)]
    found += [f"{k}:{cell[k]}" for k in ("withheld", "restricted") if isinstance(cell.get(k), str)]
    return found


def _readable(epsilon: object) -> float | None:
    """0.2, not the 0.19999999999999998 a sum of split parts can print as."""
    if not isinstance(epsilon, int | float) or isinstance(epsilon, bool):
        return None
    return float(f"{epsilon:.12g}")


def _is_number(cell: object) -> bool:
    return isinstance(cell, Mapping) and "value" in cell


def dimensions(result: Mapping[str, Any]) -> list[str]:
    """The result's columns that are labels (not released numbers)."""
    rows = result.get("rows") or []
    columns: list[str] = list(result.get("columns") or [])
    numbers = {c for row in rows for c, cell in row.items() if _is_number(cell)}
    return [c for c in columns if c not in numbers]


def measures(result: Mapping[str, Any]) -> list[str]:
    """The result's columns that are released numbers, in column order."""
    rows = result.get("rows") or []
    columns: list[str] = list(result.get("columns") or [])
    numbers = {c for row in rows for c, cell in row.items() if _is_number(cell)}
    return [c for c in columns if c in numbers]


def _bounds(cell: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    value, error = cell.get("value"), cell.get("error95")
    low, high = cell.get("low"), cell.get("high")
    if low is None and high is None and value is not None and error is not None:
        low, high = value - error, value + error
    return error, low, high


def tidy(result: Mapping[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and records of the flat table (see the module docstring)."""
    dims = dimensions(result)
    reserved = {*NUMBER_COLUMNS, *ANSWER_COLUMNS}
    labels = {d: f"{d}_label" if d in reserved else d for d in dims}  # no clash with ours
    names = measures(result)
    cached = bool(result.get("cached"))
    answer = {
        "query_id": result.get("query_id"),
        "epsilon": _readable(result.get("epsilon_float")),
        "policy_version": result.get("policy_version"),
        "cached": cached,
    }
    records: list[dict[str, Any]] = []
    for row in result.get("rows") or []:
        for name in names:
            cell = row.get(name)
            if not _is_number(cell):
                continue
            error, low, high = _bounds(cell)
            found = [*flags(cell), *([CACHED] if cached else [])]
            reading = read(cell)
            records.append(
                {
                    **{labels[d]: row.get(d) for d in dims},
                    "measure": name,
                    "value": cell["value"],
                    "error95": error,
                    "low": low,
                    "high": high,
                    "flags": ";".join(found),
                    "display": reading.english(),
                    "step": reading.step,
                    **answer,
                }
            )
    return [*labels.values(), *NUMBER_COLUMNS, *ANSWER_COLUMNS], records
