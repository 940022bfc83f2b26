"""The Spark form of a statement tree: values typed literals, room tables mapped, rewrites exact.

Rewrites are checked the sqlglot way: the rewritten tree is written back as
DuckDB SQL and run beside the original text (with DuckDB binding the same
values to its ``$name`` parameters) on the same data; the answers must be
equal. Spark itself runs them in ``tests/system/test_backends.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp

from cleanroom.errors import InternalError
from cleanroom.room.backends.dialect import render
from cleanroom.sql import statement


def spark(sql: str, **values: object) -> str:
    return render(statement(sql, **values), lambda name: f"v_{name}")


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute("CREATE MACRO make_dt_interval(n) AS to_days(n)")  # Spark's name for it
    con.execute("CREATE MACRO slice(l, start, n) AS list_slice(l, start, start + n - 1)")  # Spark's
    con.execute(
        """CREATE TABLE ev AS SELECT * FROM (VALUES
        (1, 'a', TIMESTAMP '2026-01-01 10:00:00', DATE '2026-01-31', 10.5),
        (1, 'b', TIMESTAMP '2026-02-15 11:30:00.25', DATE '2026-03-01', 3.0),
        (1, 'c', TIMESTAMP '2026-03-02 00:00:00', DATE '2027-02-01', NULL),
        (2, 'a', TIMESTAMP '2026-03-01 23:59:59', DATE '2026-03-01', 7.25)
        ) t(person, brand, t, d, v)"""
    )
    yield con
    con.close()


REWRITES = [
    (
        'SELECT person, epoch(max(t) - min(t)) / 86400.0 FROM wh."ev" GROUP BY person',
        {},
    ),
    (
        "SELECT person, len(list_filter(CAST($bins AS INTEGER[]), lambda e: e <= count(*))) - 1 "
        'FROM wh."ev" GROUP BY person',
        {"bins": [0, 1, 2, 7]},
    ),
    (
        "SELECT person, datediff('month', min(d), max(d)), datediff('year', min(d), max(d)),"
        " datediff('day', min(t), max(t)) FROM wh.\"ev\" GROUP BY person",
        {},
    ),
    (
        'SELECT count(*) FROM wh."ev" WHERE t < $day + to_days(CAST($days AS INTEGER))',
        {"day": dt.date(2026, 1, 1), "days": 45},
    ),
    (
        'WITH x AS MATERIALIZED (SELECT person, brand FROM wh."ev" '
        "QUALIFY row_number() OVER (PARTITION BY person ORDER BY t) <= $k), "
        "y AS (SELECT * FROM x QUALIFY dense_rank() OVER (PARTITION BY person ORDER BY brand) <= 1)"
        " SELECT brand, count(*) FROM y GROUP BY brand",
        {"k": 2},
    ),
    (
        'SELECT person, count(*) FILTER (WHERE t >= $since), sum(v) FROM wh."ev" '
        "WHERE brand IN ($a, $b) AND v > $low GROUP BY ALL",
        {"since": dt.datetime(2026, 2, 1, 12, 0), "a": "a", "b": "b", "low": -1.5},
    ),
    ('SELECT person, arg_min(brand, t) FROM wh."ev" GROUP BY person', {}),
    ("SELECT person, min({'t': t, 'b': brand}, 2), min(v, 9) FROM wh.\"ev\" GROUP BY person", {}),
]


@pytest.mark.parametrize(("sql", "values"), REWRITES)
def test_rewrites_keep_the_duckdb_answer(
    con: duckdb.DuckDBPyConnection, sql: str, values: dict[str, object]
) -> None:
    original = con.execute(sql.replace('wh."ev"', "ev"), values or None).fetchall()
    rewritten = render(statement(sql, **values), lambda name: name, dialect="duckdb")
    assert "$" not in rewritten
    assert sorted(con.execute(rewritten).fetchall()) == sorted(original)
    spark(sql, **values)  # and Spark SQL can be written for it


def test_spark_forms_of_what_spark_lacks() -> None:
    out = spark(
        'WITH f AS MATERIALIZED (SELECT 1 AS x FROM wh."g1__a__b") SELECT epoch(b.t - a.t), '
        "len(list_filter([1, 2], lambda e: e > 1)), to_days(CAST($days AS INTEGER)) FROM f",
        days=3,
    )
    assert "MATERIALIZED" not in out
    assert "TIMESTAMPDIFF(MICROSECOND, a.t, b.t)" in out
    assert "SIZE(FILTER(" in out
    assert "MAKE_DT_INTERVAL(CAST(3 AS INT))" in out
    assert "`v_g1__a__b`" in out


def test_stacked_qualify_gets_distinct_aliases() -> None:
    out = spark(
        'WITH a AS (SELECT * FROM wh."t" QUALIFY row_number() OVER (PARTITION BY person '
        "ORDER BY random()) <= 3), b AS (SELECT * FROM a QUALIFY dense_rank() OVER "
        "(PARTITION BY person ORDER BY hash(k, person, $salt)) <= 2) SELECT count(*) FROM b",
        salt=7,
    )
    assert "QUALIFY" not in out
    aliases = [w.alias for w in sqlglot.parse_one(out, read="spark").find_all(exp.Alias)]
    assert len(aliases) == len(set(aliases))


@pytest.mark.parametrize(
    "table", ['other."t"', '"t"', 'main.wh."t"', "read_parquet('/etc/passwd')"]
)
def test_only_the_room_tables_and_ctes_are_read(table: str) -> None:
    with pytest.raises(InternalError):
        spark(f"SELECT count(*) FROM {table}")


def test_epoch_of_a_timestamp_is_refused_not_truncated() -> None:
    with pytest.raises(InternalError, match="epoch"):
        spark('SELECT epoch(t) FROM wh."t"')


@given(
    st.one_of(
        st.text(max_size=40),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
        st.dates(),
        st.datetimes(),
    )
)
def test_any_value_is_one_literal_that_reads_back_as_itself(value: object) -> None:
    """A bound value is a single literal node: no quote or backslash escapes it."""
    out = spark('SELECT $p AS p FROM wh."t"', p=value)
    tree = sqlglot.parse_one(out, read="spark")
    assert [t.name for t in tree.find_all(exp.Table)] == ["v_t"]
    projection = tree.expressions[0].this
    if isinstance(value, str):
        assert isinstance(projection, exp.Literal) and projection.is_string
        assert projection.this == value
    elif isinstance(value, dt.datetime):
        assert projection.this.this == value.isoformat(sep=" ")
    elif isinstance(value, dt.date):
        assert projection.this.this == value.isoformat()
    elif isinstance(value, float):
        assert float(projection.this.this) == value
    elif isinstance(value, bool):
        assert isinstance(projection, exp.Boolean) and projection.this is value
    elif isinstance(value, int):
        assert int(projection.sql("spark").strip("()")) == value


def test_values_never_reach_the_text_unquoted() -> None:
    attack = "x') OR 1=1; DROP TABLE t; --"
    out = spark('SELECT count(*) FROM wh."t" WHERE c = $c', c=attack)
    tree = sqlglot.parse_one(out, read="spark")
    literals = [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]
    assert literals == [attack]
    assert not list(tree.find_all(exp.Or))
