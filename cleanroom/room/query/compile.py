"""Compile a checked plan into bounded DuckDB SQL and say what each release's sensitivity is.

Bounding is what makes the sensitivities true, so it is done in SQL, before
any aggregate: the filter and the declared key set first (an undeclared value
can never be counted), then at most ``k`` rows per person chosen at random,
then at most ``g`` groups per person chosen at random among those, then every
metric value clamped to its bounds and rounded to an integer unit. A person
added to or removed from the data then changes

* COUNT(*) of all groups together by at most ``k``,
* COUNT(DISTINCT person) by at most ``g`` (1 without GROUP BY),
* SUM(metric) by at most ``k · max(|lower|, |upper|)``,

which are the L1 sensitivities handed to the mechanism (L2: ``k``, ``√g``,
``k · M``). Literals travel as bound parameters; names come from the plan,
which only holds vetted names, and are quoted anyway.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Literal

from cleanroom.room.query.plan import Aggregate, BoolOp, ColumnRef, Comparison, Filter, QueryPlan
from cleanroom.room.warehouse import quote

MeasureKind = Literal["count", "count_persons", "sum", "count_values"]


@dataclass(frozen=True)
class Measurement:
    """One vector of exact values (a value per group) to be released with noise."""

    name: str  # SQL column of the exact result
    kind: MeasureKind
    l1: float
    l2: float
    column: ColumnRef | None = None
    bounds: tuple[int, int] | None = None


@dataclass(frozen=True)
class Compiled:
    """SQL, its parameters, and the measurements its result columns hold."""

    sql: str
    params: list[object]
    keys: list[str]  # result columns holding the group keys, in plan order
    measurements: list[Measurement]


def integer_bounds(bounds: tuple[float, float]) -> tuple[int, int]:
    """Outward-rounded integer bounds: values are summed in whole units."""
    return math.floor(bounds[0]), math.ceil(bounds[1])


def measurements(plan: QueryPlan, k: int, g: int) -> list[Measurement]:
    """What the plan releases, de-duplicated, with a person count always present.

    The noisy person count per group is what the minimum-group-size rule is
    applied to, so it is measured even when the query did not ask for it.
    """
    groups = g if plan.group_by else 1
    found: dict[str, Measurement] = {}

    def add(m: Measurement) -> None:
        found.setdefault(m.name, m)

    for agg in plan.aggregates:
        if agg.kind == "count":
            add(Measurement("m_count", "count", k, k))
        elif agg.kind == "count_persons":
            add(Measurement("m_persons", "count_persons", groups, math.sqrt(groups)))
        else:
            assert agg.column is not None and agg.bounds is not None
            lo, hi = integer_bounds(agg.bounds)
            m = k * max(abs(lo), abs(hi))
            col = f"{agg.column.table}__{agg.column.column}"
            add(Measurement(f"m_sum__{col}", "sum", m, m, agg.column, (lo, hi)))
            if agg.kind == "avg":
                add(Measurement(f"m_n__{col}", "count_values", k, k, agg.column))
    add(Measurement("m_persons", "count_persons", groups, math.sqrt(groups)))
    return list(found.values())


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe identifier {name!r}")
    return f'"{name}"'


def _col(ref: ColumnRef) -> str:
    return f"{_ident(ref.table)}.{_ident(ref.column)}"


def _filter(f: Filter, params: list[object]) -> str:
    if isinstance(f, BoolOp):
        if f.op == "not":
            return f"(NOT {_filter(f.items[0], params)})"
        joiner = " AND " if f.op == "and" else " OR "
        return "(" + joiner.join(_filter(item, params) for item in f.items) + ")"
    return _comparison(f, params)


def _comparison(c: Comparison, params: list[object]) -> str:
    col = _col(c.column)
    if c.op in ("is null", "is not null"):
        return f"({col} {c.op.upper()})"
    if c.op in ("in", "not in"):
        params.extend(c.values)
        marks = ", ".join("?" for _ in c.values)
        return f"({col} {c.op.upper()} ({marks}))"
    if c.op == "between":
        params.extend(c.values[:2])
        return f"({col} BETWEEN ? AND ?)"
    params.append(c.values[0])
    return f"({col} {'<>' if c.op == '!=' else c.op} ?)"


def compile_plan(plan: QueryPlan, tables: dict[str, str], *, k: int, g: int) -> Compiled:
    """Bounded exact aggregates; ``tables`` maps ``party.dataset`` to warehouse tables."""
    params: list[object] = []
    first, *rest = plan.tables
    source = f"{quote(tables[first.name])} AS {_ident(first.alias)}"
    for t in rest:
        source += (
            f" JOIN {quote(tables[t.name])} AS {_ident(t.alias)}"
            f" ON {_ident(t.alias)}.person = {_ident(first.alias)}.person"
        )
    ms = measurements(plan, k, g)
    needed: dict[str, ColumnRef] = {}
    for key in plan.group_by:
        needed[f"k__{key.column.table}__{key.column.column}"] = key.column
    for m in ms:
        if m.column is not None:
            needed[f"v__{m.column.table}__{m.column.column}"] = m.column
    select = [f"{_ident(first.alias)}.person AS person"] + [
        f"{_col(ref)} AS {_ident(name)}" for name, ref in needed.items()
    ]
    conditions = []
    if plan.where is not None:
        conditions.append(_filter(plan.where, params))
    for key in plan.group_by:  # only declared keys are ever counted
        params.extend(key.domain)
        conditions.append(f"({_col(key.column)} IN ({', '.join('?' for _ in key.domain)}))")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    keys = [f"k__{key.column.table}__{key.column.column}" for key in plan.group_by]
    # Per person and per query: each person keeps a random subset of their groups.
    group_hash = "0"
    if keys:
        group_hash = f"hash({', '.join(_ident(c) for c in keys)}, person, ?)"
        params.append(_salt())
    aggregates = []
    for m in ms:
        if m.kind == "count":
            aggregates.append(f"count(*) AS {_ident(m.name)}")
        elif m.kind == "count_persons":
            aggregates.append(f"count(DISTINCT person) AS {_ident(m.name)}")
        elif m.kind == "count_values":
            assert m.column is not None
            aggregates.append(
                f"count({_ident(f'v__{m.column.table}__{m.column.column}')}) AS {_ident(m.name)}"
            )
        else:
            assert m.column is not None and m.bounds is not None
            value = _ident(f"v__{m.column.table}__{m.column.column}")
            lo, hi = m.bounds
            aggregates.append(
                f"coalesce(sum(round(least(greatest({value}, {lo}), {hi}))), 0)::BIGINT"
                f" AS {_ident(m.name)}"
            )
    group_cols = ", ".join(_ident(c) for c in keys)
    sql = (
        f"WITH src AS (SELECT {', '.join(select)} FROM {source}{where}), "
        "shuffled AS (SELECT *, random() AS r FROM src), "
        f"ranked AS (SELECT *, row_number() OVER (PARTITION BY person ORDER BY r) AS rn "
        "FROM shuffled), "
        f"rows_kept AS (SELECT * FROM ranked WHERE rn <= {int(k)}), "
        f"hashed AS (SELECT *, {group_hash} AS gh FROM rows_kept), "
        "grouped AS (SELECT *, dense_rank() OVER (PARTITION BY person ORDER BY gh) AS gr "
        "FROM hashed), "
        f"kept AS (SELECT * FROM grouped WHERE gr <= {int(g)}) "
        f"SELECT {group_cols + ', ' if keys else ''}{', '.join(aggregates)} FROM kept"
        + (f" GROUP BY {group_cols}" if keys else "")
    )
    return Compiled(sql, params, keys, ms)


def _salt() -> int:
    """A fresh secret per query: which groups a person keeps is not the analyst's to steer."""
    return secrets.randbits(62)


def aggregate_measurements(agg: Aggregate, ms: list[Measurement]) -> list[Measurement]:
    """The measurements one aggregate is computed from (AVG: a sum and a count)."""
    if agg.kind == "count":
        return [m for m in ms if m.kind == "count"]
    if agg.kind == "count_persons":
        return [m for m in ms if m.kind == "count_persons"]
    assert agg.column is not None
    col = f"{agg.column.table}__{agg.column.column}"
    names = [f"m_sum__{col}"] + ([f"m_n__{col}"] if agg.kind == "avg" else [])
    return [m for m in ms if m.name in names]
