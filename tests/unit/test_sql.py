"""The one quoting helper and the statement tree: one tree, two dialects, no way in.

The compiler's tree is written as DuckDB SQL and as Spark SQL from the same
object; a hostile value stays one literal in both, and a hostile name is
refused before any SQL exists.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from cleanroom import sql
from cleanroom.errors import InternalError
from cleanroom.room.backends.dialect import render
from cleanroom.room.query.compile import compile_plan
from cleanroom.room.query.plan import (
    Aggregate,
    ColumnRef,
    Comparison,
    GroupKey,
    QueryPlan,
    TableRef,
)
from cleanroom.room.selection import GenerationTables

HOSTILE = [
    "x'); DROP TABLE t; --",
    "\\'; DROP TABLE t; --",
    "a\\",
    "it''s",
    'say "hi"',
    "line\nbreak -- comment",
    "/* c */ ?",
]


def plan(value: str) -> QueryPlan:
    city = ColumnRef("o", "city")
    return QueryPlan(
        tables=(TableRef("okala", "orders", "o"),),
        aggregates=(Aggregate("count", "n"),),
        group_by=(GroupKey(city, ("tehran", value), "city"),),
        where=Comparison(city, "!=", (value,)),
    )


def compiled_tree(value: str) -> exp.Select:
    tables = GenerationTables({"okala.orders": "g1__okala__orders"}, 12345)
    return compile_plan(plan(value), tables, k=2, g=1, threshold=False).tree


def shape(tree: exp.Expr) -> list[str]:
    """The statement's node types, in order: what a value must never change.

    Spark reads every CAST back as its own (ANSI-off) TryCast; a cast is a cast.
    """
    return ["Cast" if isinstance(n, exp.Cast) else type(n).__name__ for n in tree.walk()]


def strings(tree: exp.Expr) -> list[str]:
    return [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]


@pytest.mark.parametrize("value", HOSTILE)
def test_spark_and_duckdb_sql_come_from_one_tree(value: str) -> None:
    tree = compiled_tree(value)
    duck = render(tree, lambda name: name, dialect="duckdb")
    spark = render(tree, lambda name: f"v_{name}")
    # Both texts read back to the shape of the compiler's tree (Spark's after its
    # QUALIFY rewrite, so compared with the tree's DuckDB form rewritten alike).
    again = sqlglot.parse_one(duck, read="duckdb")
    assert shape(sqlglot.parse_one(spark, read="spark")) == shape(again)
    # And the hostile value is still one string, intact, in both.
    assert strings(again).count(value) == 2
    assert strings(sqlglot.parse_one(spark, read="spark")).count(value) == 2
    assert tree.sql(dialect="duckdb") == compiled_tree(value).sql(dialect="duckdb")


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_literal_does_not_change_the_statement_shape(value: str) -> None:
    assert shape(compiled_tree(value)) == shape(compiled_tree("mashhad"))


@given(st.text(max_size=40))
def test_any_string_is_one_literal_in_both_dialects(value: str) -> None:
    node = exp.select(sql.literal(value).as_("v"))
    for dialect in ("duckdb", "spark"):
        back = sqlglot.parse_one(node.sql(dialect=dialect), read=dialect)
        assert strings(back) == [value]
        assert shape(back) == shape(node)


@given(st.text(max_size=40).filter(lambda s: "\x00" not in s))
def test_duckdb_reads_back_the_value_it_was_given(value: str) -> None:
    con = duckdb.connect()
    assert con.execute(f"SELECT {sql.literal_sql(value)}").fetchall() == [(value,)]


def test_typed_literals() -> None:
    con = duckdb.connect()
    values: list[object] = [
        -3,
        2**62,
        0.5,
        -1e-3,
        True,
        None,
        dt.date(2026, 3, 21),
        dt.datetime(2026, 3, 21, 12, 30),
    ]
    for value in values:
        got = con.execute(f"SELECT {sql.literal_sql(value)}").fetchone()
        assert got == (value,)
    assert con.execute("SELECT typeof(" + sql.literal_sql(0.5) + ")").fetchone() == ("DOUBLE",)
    assert sql.bigint(7).sql(dialect="spark") == "CAST(7 AS BIGINT)"
    with pytest.raises(InternalError):
        sql.literal(float("nan"))
    with pytest.raises(InternalError):
        sql.literal(object())


@pytest.mark.parametrize(
    "name", ['a"b', "a b", "a;b", "1abc", "", "a.b", "a\n", "a-b", "a`b", "x'y"]
)
def test_odd_identifiers_are_refused_not_escaped(name: str) -> None:
    with pytest.raises(InternalError):
        sql.identifier(name)
    with pytest.raises(InternalError):
        sql.quote_column(name)


def test_names_are_quoted() -> None:
    assert sql.quote_column("city") == '"city"'
    assert sql.quote_column("شهر") == '"شهر"'  # an analyst's Persian output name
    assert sql.table_sql("g1__okala__orders") == 'wh."g1__okala__orders"'
    assert sql.quote_table("temp.main.match_persons") == '"temp"."main"."match_persons"'
    assert sql.name_sql("okala") == "'okala'"
    assert sql.name_sql("") == "''"
    for bad in ("G1", "wh.x", 'x"', "x" * 200):
        with pytest.raises(InternalError):
            sql.table(bad)
    for bad in ("a.b.c.d", "a..b", 'a."b"'):
        with pytest.raises(InternalError):
            sql.quote_table(bad)
    with pytest.raises(InternalError):
        sql.name_sql("no good")


def test_a_hostile_table_alias_never_reaches_sql() -> None:
    bad = QueryPlan(
        tables=(TableRef("okala", "orders", 'o" OR 1=1 --'),),
        aggregates=(Aggregate("count", "n"),),
    )
    with pytest.raises(InternalError):
        compile_plan(bad, {"okala.orders": "g1__okala__orders"}, k=2, g=1, threshold=False)


def test_a_statement_binds_each_marker_by_name_and_only_markers() -> None:
    """``$name`` in a string or a comment is text; each marker gets its value's typed literal."""
    tree = sql.statement(
        "SELECT '$q' AS q, $p AS p, $p + 1 AS again -- not $x\n FROM wh.\"t\" WHERE d >= $day",
        p="it's",
        day=dt.date(2026, 3, 20),
    )
    assert strings(tree) == ["$q", "it's", "it's", "2026-03-20"]
    assert not list(tree.find_all(exp.Placeholder))
    assert tree.sql(dialect="duckdb").count("CAST('2026-03-20' AS DATE)") == 1


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("SELECT $a + $b", {"a": 1}),  # a marker without a value
        ("SELECT $a", {"a": 1, "b": 2}),  # a value without a marker
        ("SELECT ?", {}),  # positional: the order of a list is not a contract
        ("SELECT $1", {}),
        ("DROP TABLE t", {}),  # not a query
        ("SELECT (", {}),
    ],
)
def test_a_statement_refuses_what_it_cannot_bind_exactly(
    text: str, values: dict[str, object]
) -> None:
    with pytest.raises(InternalError):
        sql.statement(text, **values)
