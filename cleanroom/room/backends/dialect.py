"""One statement tree, written for DuckDB or Spark: the per-dialect step.

Every statement a backend runs is a sqlglot tree whose values are typed
literal nodes: the query compiler's (``query/compile.py``), or the analyses'
and identity resolution's, whose DuckDB text with ``$name`` markers
``cleanroom.sql.statement`` parsed where the statement was made. :func:`render`
writes such a tree as Spark SQL (or DuckDB's) without tokenizing or parsing
anything:

1. the room's tables ``wh."g<gen>__<party>__<dataset>"`` become Spark views
   over the generation's Parquet; any other qualified table is refused;
2. the constructs Spark lacks or spells with other semantics are rewritten
   (below); sqlglot writes the rest, with unsupported constructs raising.

Rewrites, each with DuckDB's meaning kept exactly:

* ``QUALIFY`` → a subquery with the window under a fresh alias (sqlglot's own
  rewrite reuses one alias, which clashes when two QUALIFY CTEs stack);
* ``to_days(n)`` → ``make_dt_interval(n)``;
* ``epoch(a - b)`` (seconds of an interval, a DOUBLE) →
  ``CAST(timestampdiff(MICROSECOND, b, a) AS DOUBLE) / 1000000.0``; ``epoch``
  of anything else is refused (sqlglot's ``unix_timestamp`` truncates);
* ``len(list)`` → ``size(list)`` (Spark's ``length`` is for strings);
* ``datediff('month'|'year'|'day', a, b)`` → DuckDB's boundary counting
  (``(year(b) - year(a)) * 12 + month(b) - month(a)``; whole dates for days),
  where Spark's three-argument ``datediff`` counts elapsed units;
* ``WITH x AS MATERIALIZED`` → a plain CTE (Spark decides by itself);
* ``min(x, n)`` (the ``n`` smallest non-NULL values, ascending) →
  ``slice(array_sort(collect_list(x) FILTER (WHERE x IS NOT NULL)), 1, n)``:
  both order structs field by field.

Translated by sqlglot as is: ``arg_min`` → ``min_by``, ``list_filter`` with a
lambda → ``filter``, ``count(*) FILTER (WHERE …)``, ``GROUP BY ALL``,
``date_trunc``, ``CAST(… AS INTEGER[])`` → ``ARRAY<INT>``, ``random()`` →
``rand()``, DuckDB's ``NULLS LAST`` default made explicit, and ``TIMESTAMP`` →
``TIMESTAMP_NTZ`` (the Spark session runs in UTC with NTZ timestamps, so
times compare and truncate as DuckDB's naive timestamps do). ``hash()`` and
``random()`` only choose which rows a person keeps; Spark's differ from
DuckDB's, so results agree where bounds do not bind (see
``tests/system/test_backends.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from cleanroom.errors import InternalError
from cleanroom.sql import SCHEMA


def _type(name: str) -> exp.DataType:
    return exp.DataType.build(name, dialect="duckdb")


def map_tables(tree: exp.Expr, view: Callable[[str], str]) -> None:
    """``wh."g…"`` → the view ``view(name)``; CTE names stay; anything else is refused."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if table.db == SCHEMA and not table.catalog:
            table.set("db", None)
            table.set("this", exp.to_identifier(view(table.name), quoted=True))
        elif table.db or table.catalog or table.name not in ctes:
            raise InternalError(f"the query names a table outside the room: {table.sql()}")


def _fresh(prefix: str, counter: itertools.count[int]) -> str:
    return f"_{prefix}{next(counter)}"


def eliminate_qualify(tree: exp.Expr) -> exp.Expr:
    """``SELECT … QUALIFY cond`` → ``SELECT … FROM (SELECT …, window AS _qN) WHERE cond``."""
    counter = itertools.count(1)
    selects = [s for s in tree.find_all(exp.Select) if s.args.get("qualify")]
    for select in reversed(selects):  # innermost first
        condition = select.args["qualify"].this.copy()
        inner = select.copy()
        inner.set("qualify", None)
        if any(isinstance(e, exp.Star) for e in inner.expressions):
            outputs: list[exp.Expr] = [exp.Star()]
        else:  # outputs keep their names (a CTE's readers use them); unnamed ones get one
            for projection in list(inner.expressions):
                if not projection.alias_or_name:
                    projection.replace(exp.alias_(projection.copy(), _fresh("c", counter)))
            outputs = [exp.column(e.alias_or_name) for e in inner.expressions]
        for window in list(condition.find_all(exp.Window)):
            name = _fresh("q", counter)
            inner.select(exp.alias_(window.copy(), name), copy=False)
            window.replace(exp.column(name))
        outer = (
            exp.select(*outputs)
            .from_(inner.subquery(_fresh("qt", counter), copy=False), copy=False)
            .where(condition, copy=False)
        )
        if select is tree:
            tree = outer
        else:
            select.replace(outer)
    return tree


def _is_list(node: exp.Expr) -> bool:
    if isinstance(node, exp.ArrayFilter | exp.Array):
        return True
    return isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.ARRAY)


def _year_month_diff(node: exp.DateDiff, unit: str) -> exp.Expr:
    end, start = node.this, node.expression
    years = exp.Sub(this=exp.Year(this=end.copy()), expression=exp.Year(this=start.copy()))
    if unit == "YEAR":
        return exp.paren(years, copy=False)
    months = exp.Sub(this=exp.Month(this=end.copy()), expression=exp.Month(this=start.copy()))
    total = exp.Add(
        this=exp.Mul(this=exp.paren(years, copy=False), expression=exp.Literal.number(12)),
        expression=months,
    )
    return exp.paren(total, copy=False)


def _materialized(node: exp.CTE) -> exp.Expr:
    node.set("materialized", None)
    return node


def _to_days(node: exp.ToDays) -> exp.Expr:
    return exp.Anonymous(this="make_dt_interval", expressions=[node.this])


def _epoch(node: exp.TimeToUnix) -> exp.Expr:
    interval = node.this
    if not isinstance(interval, exp.Sub):
        raise InternalError("epoch() of a timestamp has no exact Spark form; use epoch(a - b)")
    micros = exp.TimestampDiff(
        this=interval.this, expression=interval.expression, unit=exp.var("MICROSECOND")
    )
    seconds = exp.Div(this=exp.cast(micros, _type("DOUBLE")), expression=exp.Literal.number("1e6"))
    return exp.paren(seconds, copy=False)


def _length(node: exp.Length) -> exp.Expr:
    return exp.ArraySize(this=node.this) if _is_list(node.this) else node


def _datediff(node: exp.DateDiff) -> exp.Expr:
    unit = (node.unit.name if node.unit else "DAY").upper()
    if unit in ("MONTH", "YEAR"):
        return _year_month_diff(node, unit)
    if unit == "DAY":  # whole dates: elapsed days are the day boundaries crossed
        return exp.DateDiff(
            this=exp.cast(node.this, _type("DATE")),
            expression=exp.cast(node.expression, _type("DATE")),
            unit=exp.var("DAY"),
        )
    raise InternalError(f"datediff('{unit.lower()}', …) has no Spark rewrite yet")


def _smallest(node: exp.Min) -> exp.Expr:
    count = node.args.get("count")
    if count is None:
        return node
    present = exp.Where(this=exp.Not(this=exp.Is(this=node.this.copy(), expression=exp.null())))
    ordered = exp.ArraySort(this=exp.Filter(this=exp.ArrayAgg(this=node.this), expression=present))
    return exp.func("slice", ordered, exp.Literal.number(1), count)


_REWRITES: dict[type[exp.Expr], Callable[[Any], exp.Expr]] = {
    exp.Min: _smallest,
    exp.CTE: _materialized,
    exp.ToDays: _to_days,
    exp.TimeToUnix: _epoch,
    exp.Length: _length,
    exp.DateDiff: _datediff,
}


def _rewrite(node: exp.Expr) -> exp.Expr:
    rewrite = _REWRITES.get(type(node))
    return rewrite(node) if rewrite is not None else node


def render(tree: exp.Query, view: Callable[[str], str], *, dialect: str = "spark") -> str:
    """A statement tree written in ``dialect``: tables mapped, Spark's gaps rewritten.

    The tree's values are already typed literals, so nothing is tokenized or
    parsed here; it is copied first, as the caller may render it again. Spark
    is what the backend runs; writing the same tree as DuckDB is how the tests
    check that the rewrites keep the query's meaning.
    """
    node: exp.Expr = tree.copy()
    map_tables(node, view)
    node = eliminate_qualify(node)
    node = node.transform(_rewrite, copy=False)
    try:
        return node.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as err:
        raise InternalError(f"no {dialect} form for part of the query: {err}") from None
