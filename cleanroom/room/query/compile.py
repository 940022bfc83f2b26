"""Compile a checked plan into bounded DuckDB SQL and say what each release's sensitivity is.

Bounding is what makes the sensitivities true, so it is done in SQL, before
any aggregate: the filter and the declared key set first (an undeclared value
can never be counted), then at most ``k`` rows per person chosen at random,
then — only where it lowers a sensitivity — at most ``g`` groups per person
chosen at random among those, then every metric value clamped to its bounds
on both sides (a missing value stays missing: SUM skips it, as AVG's count
does) and rounded to an integer unit. A person added to or removed from the
data then changes

* COUNT(*) of all groups together by at most ``k``,
* COUNT(DISTINCT person) by at most ``min(k, g, groups)`` (1 without GROUP BY;
  a query counting only persons bounds no rows, so ``min(g, groups)``),
* SUM(metric) by at most ``k · max(|lower|, |upper|)``,

and :mod:`cleanroom.room.sensitivity` turns these per-person bounds into the
L1 and L2 sensitivities handed to the mechanism (L2: ``k``, ``√…``,
``k · M``: rows and values can all land in one group). The random rows
come from the analysis table's ``_rank``, a random order of each person's
rows drawn at match time: on one table without a
filter the row bound is the plain filter ``_rank <= k`` (no window over all
rows per query); with a filter the rows that survive keep their ``_rank``
order, and a joined row is ordered by a hash of its tables' ``_rank`` values
salted with the generation's secret. The groups a person keeps are chosen by a
hash of the group keys salted likewise. Every choice is thus fixed per match
generation (:mod:`cleanroom.room.selection`): asking again changes only the
noise. Literals travel as bound parameters; names come from the plan, which
only holds vetted names, and are quoted anyway.

The same SQL measures what the bounds removed (:class:`~cleanroom.room.pipeline.Cut`):
per person, the rows (or, for a query counting only persons, the groups)
before the bounds and after them; the result carries, after the
measurements, the rows kept, each person's excess counted up to the cut's
cap, and the persons with any excess. On the stored random order the rows
before the bounds are read up to ``k + cap`` per person, which is all the
cap counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from cleanroom.room import selection, sensitivity
from cleanroom.room.identity import RANK
from cleanroom.room.pipeline import Cut
from cleanroom.room.query.plan import BoolOp, ColumnRef, Comparison, Filter, QueryPlan
from cleanroom.room.warehouse import quote

MeasureKind = Literal["count", "count_persons", "sum", "count_values"]


@dataclass(frozen=True, eq=False)
class Measurement:
    """One vector of exact values (a value per group) to be released with noise.

    Compared by identity: the aggregates that read it hold this very object.
    """

    name: str  # SQL column of the exact result
    kind: MeasureKind
    l1: float
    l2: float
    column: ColumnRef | None = None
    bounds: tuple[int, int] | None = None
    contribution: sensitivity.Contribution | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Measures:
    """What a plan releases, and which of it each aggregate and the threshold read."""

    all: list[Measurement]  # de-duplicated, in result-column order
    per_aggregate: tuple[tuple[Measurement, ...], ...]  # aligned with the plan's aggregates
    persons: Measurement | None  # the noisy person count the minimum group size applies to
    cut: Cut | None  # what the bounds remove, when they can remove anything


@dataclass(frozen=True)
class Compiled:
    """SQL, its parameters, and what its result columns hold.

    A result row is the group keys, one column per measurement, then (with a
    cut) the cut's three exact figures: kept, cut (capped), persons affected.
    """

    sql: str
    params: list[object]
    keys: list[str]  # result columns holding the group keys, in plan order
    measures: Measures

    @property
    def measurements(self) -> list[Measurement]:
        """Every measurement, in result-column order."""
        return self.measures.all


def integer_bounds(bounds: tuple[float, float]) -> tuple[int, int]:
    """Outward-rounded integer bounds: values are summed in whole units."""
    return math.floor(bounds[0]), math.ceil(bounds[1])


def bounds_rows(plan: QueryPlan) -> bool:
    """Whether rows per person are bounded: not when only persons are counted.

    A person count needs no row bound (a person counts once per group), and
    skipping it keeps every group of a person with many rows in play for the
    group bound, which is less biased than keeping ``k`` random rows first.
    """
    return any(agg.kind != "count_persons" for agg in plan.aggregates)


def person_groups(plan: QueryPlan, k: int, g: int) -> int:
    """How many groups one person can reach once rows and groups are bounded."""
    if not plan.group_by:
        return 1
    return min(k if bounds_rows(plan) else g, g, plan.key_count)


def cut_of(plan: QueryPlan, k: int, g: int) -> Cut | None:
    """What the bounds can remove, or None when they cannot remove anything.

    Rows over ``k`` (and the rows of groups over ``g``); for a query counting
    only persons, groups over ``g``.
    """
    if bounds_rows(plan):
        return Cut.of("rows", k)
    if plan.group_by and person_groups(plan, k, g) < plan.key_count:
        return Cut.of("groups", g)
    return None


def measure(plan: QueryPlan, k: int, g: int, *, threshold: bool) -> Measures:
    """What the plan releases, de-duplicated, each aggregate tied to its measurements.

    The noisy person count per group is what the minimum-group-size rule is
    applied to, so with a ``threshold`` it is measured even when the query did
    not ask for it.
    """
    groups = person_groups(plan, k, g)
    persons = _measurement("m_persons", "count_persons", sensitivity.once_per_cell(groups))
    found: dict[tuple[str, ColumnRef | None], Measurement] = {}

    def add(m: Measurement) -> Measurement:
        return found.setdefault((m.kind, m.column), m)

    per_aggregate: list[tuple[Measurement, ...]] = []
    for agg in plan.aggregates:
        if agg.kind == "count":
            count = _measurement("m_count", "count", sensitivity.rows(k, plan.key_count))
            per_aggregate.append((add(count),))
        elif agg.kind == "count_persons":
            per_aggregate.append((add(persons),))
        else:
            assert agg.column is not None and agg.bounds is not None
            lo, hi = integer_bounds(agg.bounds)
            total = sensitivity.metric_sum(k, lo, hi, plan.key_count)
            col = f"{agg.column.table}__{agg.column.column}"
            used = [add(_measurement(f"m_sum__{col}", "sum", total, agg.column, (lo, hi)))]
            if agg.kind == "avg":
                values = sensitivity.rows(k, plan.key_count)
                used.append(add(_measurement(f"m_n__{col}", "count_values", values, agg.column)))
            per_aggregate.append(tuple(used))
    threshold_count = add(persons) if threshold else found.get(("count_persons", None))
    return Measures(list(found.values()), tuple(per_aggregate), threshold_count, cut_of(plan, k, g))


def measurements(plan: QueryPlan, k: int, g: int, *, threshold: bool) -> list[Measurement]:
    """Every measurement of the plan (see :func:`measure`)."""
    return measure(plan, k, g, threshold=threshold).all


def _measurement(
    name: str,
    kind: MeasureKind,
    contribution: sensitivity.Contribution,
    column: ColumnRef | None = None,
    bounds: tuple[int, int] | None = None,
) -> Measurement:
    return Measurement(
        name, kind, contribution.l1, contribution.l2, column, bounds, contribution=contribution
    )


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


def compile_plan(
    plan: QueryPlan, tables: dict[str, str], *, k: int, g: int, threshold: bool
) -> Compiled:
    """Bounded exact aggregates; ``tables`` maps ``party.dataset`` to warehouse tables."""
    params: list[object] = []
    first, *rest = plan.tables
    source = f"{quote(tables[first.name])} AS {_ident(first.alias)}"
    for t in rest:
        source += (
            f" JOIN {quote(tables[t.name])} AS {_ident(t.alias)}"
            f" ON {_ident(t.alias)}.person = {_ident(first.alias)}.person"
        )
    measures = measure(plan, k, g, threshold=threshold)
    ms = measures.all
    needed: dict[str, ColumnRef] = {}
    for key in plan.group_by:
        needed[f"k__{key.column.table}__{key.column.column}"] = key.column
    for m in ms:
        if m.column is not None:
            needed[f"v__{m.column.table}__{m.column.column}"] = m.column
    select = [f"{_ident(first.alias)}.person AS person"] + [
        f"{_col(ref)} AS {_ident(name)}" for name, ref in needed.items()
    ]
    # One table, no filter: the stored random order bounds the rows (see the module docstring).
    ranked_at_match = not rest and plan.where is None
    ranks = [f"r__{t.alias}" for t in plan.tables]  # each joined row's stored random orders
    if not ranked_at_match and bounds_rows(plan):
        select += [
            f"{_ident(t.alias)}.{_ident(RANK)} AS {_ident(r)}"
            for t, r in zip(plan.tables, ranks, strict=True)
        ]
    conditions = []
    first_param = len(params)
    if plan.where is not None:
        conditions.append(_filter(plan.where, params))
    for key in plan.group_by:  # only declared keys are ever counted
        params.extend(key.domain)
        conditions.append(f"({_col(key.column)} IN ({', '.join('?' for _ in key.domain)}))")
    in_scope = (list(conditions), params[first_param:])  # the rows before any bound
    if ranked_at_match and bounds_rows(plan):
        conditions.append(f"({_ident(first.alias)}.{_ident(RANK)} <= {int(k)})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    ctes = [f"src AS (SELECT {', '.join(select)} FROM {source}{where})"]
    kept = "src"
    salt = selection.salt(tables)
    if not ranked_at_match and bounds_rows(plan):
        # Fixed per generation: one table keeps its stored order, a join a salted hash of it.
        rank_cols = ", ".join(_ident(r) for r in ranks)
        if rest:
            params.append(salt)
            order = f"hash({rank_cols}, person, ?), {rank_cols}"
        else:
            order = rank_cols
        ctes.append(
            "rows_kept AS (SELECT * FROM src QUALIFY row_number() OVER "
            f"(PARTITION BY person ORDER BY {order}) <= {int(k)})"
        )
        kept = "rows_kept"
    keys = [f"k__{key.column.table}__{key.column.column}" for key in plan.group_by]
    counts_persons = any(m.kind == "count_persons" for m in ms)
    reach = k if bounds_rows(plan) else plan.key_count  # groups a person reaches before
    if counts_persons and person_groups(plan, k, g) < min(reach, plan.key_count):
        # Per person, fixed per generation: a salted hash of the keys orders their groups
        # (the keys break a tie, so a collision never keeps more than g). Ranking the
        # (person, group) pairs instead of the rows keeps the same groups but measured
        # slower (BENCHMARKS.md, issue 18 step 4).
        params.append(salt)
        key_cols = ", ".join(_ident(c) for c in keys)
        ctes.append(
            f"groups_kept AS (SELECT * FROM {kept} QUALIFY dense_rank() "
            f"OVER (PARTITION BY person ORDER BY hash({key_cols}, person, ?), {key_cols})"
            f" <= {int(g)})"
        )
        kept = "groups_kept"
    # Per row: what each measurement adds up. A person count is the number of distinct
    # (person, group) pairs, so when one is measured the rows are first summed per pair
    # and the pairs counted: DuckDB does that two-level aggregation several times faster
    # than count(DISTINCT person), with the same result.
    per_row: dict[str, str] = {}
    for m in ms:
        if m.kind == "count":
            per_row[m.name] = "count(*)"
        elif m.kind == "count_values":
            assert m.column is not None
            per_row[m.name] = f"count({_ident(f'v__{m.column.table}__{m.column.column}')})"
        elif m.kind == "sum":
            assert m.column is not None and m.bounds is not None
            value = _ident(f"v__{m.column.table}__{m.column.column}")
            per_row[m.name] = f"sum(round({sensitivity.clamp_sql(value, *m.bounds)}))"
    group_cols = ", ".join(_ident(c) for c in keys)
    lead = group_cols + ", " if keys else ""
    by = f" GROUP BY {group_cols}" if keys else ""
    final = kept  # the rows that survive every bound (before per-pair sums)
    if counts_persons:
        pair_cols = ", ".join(["person", *(_ident(c) for c in keys)])
        pairs = ", ".join([pair_cols, *(f"{e} AS {_ident(n)}" for n, e in per_row.items())])
        ctes.append(f"pairs AS (SELECT {pairs} FROM {kept} GROUP BY {pair_cols})")
        kept = "pairs"
        outer = {n: f"sum({_ident(n)})" for n in per_row}
    else:
        outer = per_row
    aggregates = ["count(*)" if m.kind == "count_persons" else outer[m.name] for m in ms]
    columns = ", ".join(
        f"coalesce({e}, 0)::BIGINT AS {_ident(m.name)}" for e, m in zip(aggregates, ms, strict=True)
    )
    answer = f"SELECT {lead}{columns} FROM {kept}{by}"
    if measures.cut is None:
        return Compiled(f"WITH {', '.join(ctes)} {answer}", params, keys, measures)
    if ranked_at_match and bounds_rows(plan):  # src holds k rows a person: read up to k + cap
        conditions, scope_params = in_scope
        rank = f"{_ident(first.alias)}.{_ident(RANK)}"
        conditions = [*conditions, f"({rank} <= {int(k + measures.cut.cap)})"]
        carried = "".join(
            f", {_col(key.column)} AS {_ident(c)}"
            for key, c in zip(plan.group_by, keys, strict=True)
        )
        ctes.append(
            f"before AS (SELECT {_ident(first.alias)}.person AS person{carried}"
            f" FROM {source} WHERE {' AND '.join(conditions)})"
        )
        params.extend(scope_params)
        before = "before"
    else:
        before = "src"
    ctes += _cut_ctes(measures.cut, before, final, keys)
    ctes.append(f"answer AS ({answer})")
    sql = (
        f"WITH {', '.join(ctes)} SELECT answer.*, cut_totals.* "
        "FROM cut_totals LEFT JOIN answer ON 1 = 1"
    )
    return Compiled(sql, params, keys, measures)


def _cut_ctes(cut: Cut, before: str, after: str, keys: list[str]) -> list[str]:
    """Per person, the units before the bounds and after them; then the three totals.

    A unit is a row, or (for a query counting only persons) a distinct group.
    """
    if cut.unit == "groups":
        cols = ", ".join(["person", *(_ident(c) for c in keys)])
        before, after = (f"(SELECT DISTINCT {cols} FROM {t}) AS u" for t in (before, after))
    return [
        f"cut_before AS (SELECT person, count(*) AS n FROM {before} GROUP BY person)",
        f"cut_after AS (SELECT person, count(*) AS n FROM {after} GROUP BY person)",
        "cut_totals AS (SELECT "
        "coalesce(sum(coalesce(a.n, 0)), 0)::BIGINT AS c_kept, "
        f"coalesce(sum(least(b.n - coalesce(a.n, 0), {int(cut.cap)})), 0)::BIGINT AS c_cut, "
        "coalesce(sum(CASE WHEN b.n > coalesce(a.n, 0) THEN 1 ELSE 0 END), 0)::BIGINT AS c_persons"
        " FROM cut_before AS b LEFT JOIN cut_after AS a ON a.person = b.person)",
    ]
