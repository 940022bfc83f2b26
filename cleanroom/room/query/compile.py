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
hash of the group keys (of the group's number, when only persons are
counted) salted likewise. Every choice is thus fixed per match
generation (:mod:`cleanroom.room.selection`): asking again changes only the
noise.

The SQL is a sqlglot tree, never text: every name goes through
:mod:`cleanroom.sql` (checked and quoted) and every value — the
analyst's filter values, the declared keys, the bounds, the salt — is a typed
literal node. Each backend writes the one tree in its own dialect, so the
Spark path re-parses nothing and no value can change the statement's shape.

The same SQL measures what the bounds removed (:class:`~cleanroom.room.pipeline.Cut`):
per person, the rows (or, for a query counting only persons, the groups)
before the bounds and after them; the result carries, after the
measurements, the rows kept, each person's excess counted up to the cut's
cap, and the persons with any excess. On the stored random order the rows
before the bounds are read up to ``k + cap`` per person, which is all the
cap counts, and counted in one scan (:func:`_ranked_cut`); a query counting
only persons gets them from its per-person choice of groups
(:func:`cleanroom.room.query.groups.top_groups`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlglot import exp

from cleanroom import sql
from cleanroom.room import selection, sensitivity
from cleanroom.room.identity import RANK
from cleanroom.room.pipeline import Cut
from cleanroom.room.query import groups
from cleanroom.room.query.plan import BoolOp, ColumnRef, Comparison, Filter, QueryPlan
from cleanroom.room.query.tree import (
    Query,
    alias,
    answer_and_cut,
    column,
    count_star,
    number,
    salted,
    total,
)

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
    """The statement as a tree, and what its result columns hold.

    A result row is the group keys, one column per measurement, then (with a
    cut) the cut's three exact figures: kept, cut (capped), persons affected.
    """

    tree: exp.Select  # values inside as typed literals: the statement has no parameters
    keys: list[str]  # result columns holding the group keys, in plan order
    measures: Measures

    @property
    def sql(self) -> str:
        """The tree as DuckDB SQL (what the embedded backend runs)."""
        return self.tree.sql(dialect="duckdb")

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


def _col(ref: ColumnRef) -> exp.Column:
    return column(ref.column, ref.table)


def _all(conditions: Sequence[exp.Expr]) -> exp.Expr:
    return functools.reduce(lambda a, b: exp.And(this=a, expression=b), conditions)


def _filter(f: Filter) -> exp.Expr:
    if isinstance(f, BoolOp):
        if f.op == "not":
            return exp.paren(exp.Not(this=_filter(f.items[0])), copy=False)
        items = [_filter(item) for item in f.items]
        joined = functools.reduce(
            lambda a, b: (exp.And if f.op == "and" else exp.Or)(this=a, expression=b), items
        )
        return exp.paren(joined, copy=False)
    return exp.paren(_comparison(f), copy=False)


_COMPARE: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}


def _comparison(c: Comparison) -> exp.Expr:
    """``column op value(s)``: the analyst's values as typed literal nodes, never text."""
    col = _col(c.column)
    if c.op in ("is null", "is not null"):
        test = exp.Is(this=col, expression=exp.null())
        return test if c.op == "is null" else exp.Not(this=test)
    if c.op in ("in", "not in"):
        member = exp.In(this=col, expressions=[sql.literal(v) for v in c.values])
        return member if c.op == "in" else exp.Not(this=member)
    if c.op == "between":
        low, high = c.values[:2]
        return exp.Between(this=col, low=sql.literal(low), high=sql.literal(high))
    return _COMPARE[c.op](this=col, expression=sql.literal(c.values[0]))


def _window(
    function: exp.Expr, partition: exp.Expr, order: Sequence[exp.Expr], limit: int
) -> exp.Expr:
    """``function OVER (PARTITION BY partition ORDER BY order) <= limit`` (NULLS LAST, DuckDB's)."""
    ordered = [exp.Ordered(this=o, nulls_first=False) for o in order]
    window = exp.Window(
        this=function, partition_by=[partition], order=exp.Order(expressions=ordered), over="OVER"
    )
    return exp.LTE(this=window, expression=number(limit))


class _Tables:
    """The plan's FROM clause, built afresh for each SELECT that reads it."""

    def __init__(self, plan: QueryPlan, tables: dict[str, str]) -> None:
        self.plan = plan
        self.tables = tables
        self.first = plan.tables[0].alias

    def _table(self, name: str, alias: str) -> exp.Table:
        node = sql.table(self.tables[name])
        node.set("alias", exp.TableAlias(this=sql.identifier(alias)))
        return node

    def select(self, *columns: exp.Expr) -> exp.Select:
        """``SELECT columns FROM first JOIN … ON person = person``."""
        first, *rest = self.plan.tables
        query = exp.select(*columns).from_(self._table(first.name, first.alias), copy=False)
        for t in rest:
            on = exp.EQ(this=column("person", t.alias), expression=column("person", first.alias))
            join = exp.Join(this=self._table(t.name, t.alias), on=on)
            query = query.join(join, copy=False)
        return query


def compile_plan(
    plan: QueryPlan, tables: dict[str, str], *, k: int, g: int, threshold: bool
) -> Compiled:
    """Bounded exact aggregates; ``tables`` maps ``party.dataset`` to warehouse tables."""
    source = _Tables(plan, tables)
    first = source.first
    rest = plan.tables[1:]
    measures = measure(plan, k, g, threshold=threshold)
    ms = measures.all
    needed: dict[str, ColumnRef] = {}
    for key in plan.group_by:
        needed[f"k__{key.column.table}__{key.column.column}"] = key.column
    for m in ms:
        if m.column is not None:
            needed[f"v__{m.column.table}__{m.column.column}"] = m.column
    select: list[exp.Expr] = [alias(column("person", first), "person")]
    select += [alias(_col(ref), name) for name, ref in needed.items()]
    # One table, no filter: the stored random order bounds the rows (see the module docstring).
    ranked_at_match = not rest and plan.where is None
    ranks = [f"r__{t.alias}" for t in plan.tables]  # each joined row's stored random orders
    if not ranked_at_match and bounds_rows(plan):
        select += [alias(column(RANK, t.alias), r) for t, r in zip(plan.tables, ranks, strict=True)]
    counts_persons = any(m.kind == "count_persons" for m in ms)
    reach = k if bounds_rows(plan) else plan.key_count  # groups a person reaches before
    bounds_groups = counts_persons and person_groups(plan, k, g) < min(reach, plan.key_count)
    # Counting only persons, by groups: each group is known by its number, and a person's
    # groups are bounded to ``g`` or, within one integer's bits, counted all at once.
    by_number = (
        counts_persons
        and not bounds_rows(plan)
        and bool(plan.group_by)
        and (bounds_groups or plan.key_count <= groups.MASK_CELLS)
    )
    conditions: list[exp.Expr] = []
    if plan.where is not None:
        conditions.append(_filter(plan.where))
    # Only declared keys are ever counted (a person count's groups join them instead).
    for key in [] if by_number else plan.group_by:
        domain = [sql.literal(v) for v in key.domain]
        conditions.append(exp.paren(exp.In(this=_col(key.column), expressions=domain)))
    in_scope = [c.copy() for c in conditions]  # the rows before any bound
    if ranked_at_match and bounds_rows(plan):
        conditions.append(exp.paren(exp.LTE(this=column(RANK, first), expression=number(k))))
    src = source.select(*select)
    if conditions:
        src = src.where(_all(conditions), copy=False)
    query = Query()
    query.add("src", src)
    kept = "src"
    salt = selection.salt(tables)
    if not ranked_at_match and bounds_rows(plan):
        # Fixed per generation: one table keeps its stored order, a join a salted hash of it.
        order = salted(ranks, salt) if rest else [column(r) for r in ranks]
        bound = _window(exp.RowNumber(), column("person"), order, k)
        query.add("rows_kept", exp.select("*").from_(kept).qualify(bound, copy=False))
        kept = "rows_kept"
    keys = [f"k__{key.column.table}__{key.column.column}" for key in plan.group_by]
    if by_number:  # the cut is None exactly when g bounds nothing
        return Compiled(groups.top_groups(query, plan, keys, g, salt, measures.cut), keys, measures)
    if bounds_groups:
        # Per person, fixed per generation: a salted hash of the keys orders their groups
        # (the keys break a tie, so a collision never keeps more than g).
        bound = _window(exp.DenseRank(), column("person"), salted(keys, salt), g)
        query.add("groups_kept", exp.select("*").from_(kept).qualify(bound, copy=False))
        kept = "groups_kept"
    # Per row: what each measurement adds up. A person count is the number of distinct
    # (person, group) pairs, so when one is measured the rows are first summed per pair
    # and the pairs counted: DuckDB does that two-level aggregation several times faster
    # than count(DISTINCT person), with the same result.
    per_row: dict[str, exp.Expr] = {}
    for m in ms:
        if m.kind == "count":
            per_row[m.name] = count_star()
        elif m.kind in ("count_values", "sum"):
            assert m.column is not None
            value = column(f"v__{m.column.table}__{m.column.column}")
            if m.kind == "count_values":
                per_row[m.name] = exp.Count(this=value)
            else:
                assert m.bounds is not None
                per_row[m.name] = exp.Sum(this=exp.Round(this=sensitivity.clamp(value, *m.bounds)))
    final = kept  # the rows that survive every bound (before per-pair sums)
    if counts_persons:
        pair_cols = [column("person"), *(column(c) for c in keys)]
        pairs = exp.select(*pair_cols, *(alias(e, n) for n, e in per_row.items()))
        pairs = pairs.from_(kept, copy=False).group_by(*(c.copy() for c in pair_cols), copy=False)
        query.add("pairs", pairs)
        kept = "pairs"
        outer: dict[str, exp.Expr] = {n: exp.Sum(this=column(n)) for n in per_row}
    else:
        outer = per_row
    aggregates = [count_star() if m.kind == "count_persons" else outer[m.name] for m in ms]
    columns = [total(e, m.name) for e, m in zip(aggregates, ms, strict=True)]
    answer = exp.select(*(column(c) for c in keys), *columns).from_(kept, copy=False)
    if keys:
        answer = answer.group_by(*(column(c) for c in keys), copy=False)
    if measures.cut is None:
        return Compiled(query.build(answer), keys, measures)
    if ranked_at_match and bounds_rows(plan):  # src holds k rows a person: read up to k + cap
        cap = exp.LTE(this=column(RANK, first), expression=number(k + measures.cut.cap))
        carried = [alias(_col(key.column), c) for key, c in zip(plan.group_by, keys, strict=True)]
        before_rows = source.select(alias(column("person", first), "person"), *carried)
        before_rows = before_rows.select(alias(column(RANK, first), RANK), copy=False)
        before_rows = before_rows.where(_all([*in_scope, exp.paren(cap)]), copy=False)
        query.add("before", before_rows)
        before = "before"
    else:
        before = "src"
    if before == "before" and final == "src":  # rows bounded by the stored order alone
        query.add("cut_totals", _ranked_cut(k))
    else:
        for name, cte in _cut_ctes(measures.cut, before, final, keys):
            query.add(name, cte)
    query.add("answer", answer)
    return Compiled(query.build(answer_and_cut()), keys, measures)


def _ranked_cut(k: int) -> exp.Select:
    """The cut's totals in one scan, when the stored order alone bounds the rows.

    A person's in-scope rows numbered (``_rank``) up to ``k`` are kept and the
    ones from ``k + 1`` to ``k + cap`` are the excess the cap counts, so
    ``before`` (the in-scope rows up to ``k + cap``) gives all three totals
    without a per-person pass: the rows kept, the rows over ``k``, and the
    persons who have any.
    """
    over = exp.GT(this=column(RANK), expression=number(k))

    def only(condition: exp.Expr, value: exp.Expr) -> exp.Case:
        return exp.Case(ifs=[exp.If(this=condition.copy(), true=value)])

    kept, whose = only(exp.Not(this=over.copy()), column(RANK)), only(over, column("person"))
    return exp.select(
        total(exp.Count(this=kept), "c_kept"),
        total(exp.Count(this=only(over, column(RANK))), "c_cut"),
        total(exp.Count(this=exp.Distinct(expressions=[whose])), "c_persons"),
    ).from_("before")


def _cut_ctes(cut: Cut, before: str, after: str, keys: list[str]) -> list[tuple[str, exp.Query]]:
    """Per person, the units before the bounds and after them; then the three totals.

    A unit is a row, or (for a query counting only persons) a distinct group.
    """

    def units(name: str) -> exp.Expr:
        if cut.unit != "groups":
            return exp.to_table(name)
        distinct = exp.select(column("person"), *(column(c) for c in keys)).from_(name).distinct()
        return distinct.subquery("u", copy=False)

    def per_person(name: str) -> exp.Select:
        count = alias(count_star(), "n")
        return exp.select(column("person"), count).from_(units(name)).group_by(column("person"))

    kept = exp.Coalesce(this=column("n", "a"), expressions=[exp.Literal.number(0)])
    excess = exp.Sub(this=column("n", "b"), expression=kept.copy())
    over = exp.Case(
        ifs=[
            exp.If(
                this=exp.GT(this=column("n", "b"), expression=kept.copy()),
                true=exp.Literal.number(1),
            )
        ]
    )
    totals = exp.select(
        total(exp.Sum(this=kept.copy()), "c_kept"),
        total(exp.Sum(this=exp.func("least", excess, number(cut.cap))), "c_cut"),
        total(exp.Sum(this=over.else_(exp.Literal.number(0))), "c_persons"),
    )
    on = exp.EQ(this=column("person", "a"), expression=column("person", "b"))
    totals = totals.from_(exp.alias_(exp.to_table("cut_before"), "b", table=True))
    totals = totals.join(
        exp.Join(this=exp.alias_(exp.to_table("cut_after"), "a", table=True), side="LEFT", on=on)
    )
    return [
        ("cut_before", per_person(before)),
        ("cut_after", per_person(after)),
        ("cut_totals", totals),
    ]
