"""Identity resolution on Spark: the same components as in DuckDB, for the same input.

Person ids are random labels, so runs are compared as partitions (sets of
frozensets of tokens). One Spark session (local[2], 4 shuffle partitions)
serves the whole test run, as in ``tests/system/test_backends.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("pyspark")

from pyspark.sql import SparkSession

from cleanroom.errors import InternalError
from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.backends.spark import spark_session
from cleanroom.room.backends.spark_identity import SparkTables
from cleanroom.room.identity import IdentityStats, TokenSource, person_table, resolve
from cleanroom.room.identity_foreign import ForeignLimit
from cleanroom.room.suppression import suppressed_tokens
from tests.unit.room.test_identity import (
    Row,
    make_table,
    partition,
    reference,
    table_shapes,
    tok,
)
from tests.unit.room.test_identity_limits import LIMITS, Table, beta_persons, expected, load

pytestmark = pytest.mark.spark

SOURCES: list[Path] = []  # where source tables are written for Spark to read


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    SOURCES.append(tmp_path_factory.mktemp("spark-sources"))  # pytest prunes old ones
    return spark_session(
        "local[2]",
        tmp_path_factory.mktemp("spark-work"),
        {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"},
    )


def on_spark(
    spark: SparkSession, con: duckdb.DuckDBPyConnection, sources: list[TokenSource]
) -> SparkTables:
    """An engine whose ``wh.<table>`` views hold the DuckDB tables' rows (via Parquet)."""
    views = {}
    files = SOURCES[-1]
    for source in sources:
        view = f"src_{secrets.token_hex(4)}"
        path = files / f"{view}.parquet"
        con.table(source.table).write_parquet(str(path))
        spark.read.parquet(str(path)).createOrReplaceTempView(view)
        views[f"wh.{source.table}"] = view
    return SparkTables(spark, views)


def spark_sources(sources: list[TokenSource]) -> list[TokenSource]:
    return [TokenSource(f"wh.{s.table}", s.token_columns, s.kinds, s.party) for s in sources]


def spark_partition(engine: SparkTables, person_map: str) -> set[frozenset[bytes]]:
    groups: dict[int, set[bytes]] = {}
    for row in engine.session.table(engine.view_of(person_map)).collect():
        groups.setdefault(row["person"], set()).add(bytes(row["token"]))
    return {frozenset(g) for g in groups.values()}


def assert_dense(engine: SparkTables, person_map: str, stats: IdentityStats) -> None:
    view = engine.view_of(person_map)
    row = engine.session.sql(
        f"SELECT count(*), count(DISTINCT token), count(DISTINCT person), min(person), "
        f"max(person) FROM `{view}`"
    ).first()
    assert row is not None
    count, distinct_tokens, persons, low, high = row
    assert count == distinct_tokens == stats.tokens
    assert persons == stats.persons
    if persons:
        assert (low, high) == (1, persons)


def both(
    spark: SparkSession,
    con: duckdb.DuckDBPyConnection,
    sources: list[TokenSource],
    limits: dict[str, int] | None = None,
    foreign: ForeignLimit | None = None,
    slice_rows: int | None = None,
) -> tuple[set[frozenset[bytes]], set[frozenset[bytes]], IdentityStats, SparkTables]:
    """Resolve the same tables on DuckDB and on Spark; both partitions and Spark's run.

    ``slice_rows``: Spark groups its token dictionary that many occurrences at a time.
    """
    duck = resolve(DuckDBTables(con), sources, person_map="pm", limits=limits, foreign=foreign)
    engine = on_spark(spark, con, sources)
    engine.slice_rows = slice_rows
    stats = resolve(
        engine, spark_sources(sources), person_map="wh.pm", limits=limits, foreign=foreign
    )
    assert stats.withheld == duck.withheld
    assert_dense(engine, "wh.pm", stats)
    assert sorted(engine.views) == [*sorted(s.table for s in sources), "pm"]
    return partition(con, "pm"), spark_partition(engine, "wh.pm"), stats, engine


@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table_shapes)
def test_random_graphs_same_partition_as_duckdb(
    spark: SparkSession, tables: list[tuple[int, list[Row]]]
) -> None:
    con = duckdb.connect()
    sources = [make_table(con, f"p{i}", width, rows) for i, (width, rows) in enumerate(tables)]
    duck, on_spark_, stats, _ = both(spark, con, sources)
    expected = reference(rows for _, rows in tables)
    assert duck == on_spark_ == expected
    assert stats.persons == len(expected)


def test_long_chain_is_one_person_in_logarithmically_many_rounds(spark: SparkSession) -> None:
    con = duckdb.connect()
    n = 300
    con.execute(
        "CREATE TABLE c AS SELECT sha256(i::VARCHAR)::BLOB AS x, "
        "sha256((i + 1)::VARCHAR)::BLOB AS y FROM range(?) t(i) ORDER BY hash(i)",
        [n],
    )
    duck, on_spark_, stats, _ = both(spark, con, [TokenSource("c", ["x", "y"])])
    assert duck == on_spark_
    assert (stats.tokens, stats.edges, stats.persons) == (n + 1, n, 1)
    assert stats.iterations <= 30  # label propagation would need ~300 rounds


def test_isolated_tokens_and_tokenless_rows(spark: SparkSession) -> None:
    con = duckdb.connect()
    a = make_table(con, "a", 3, [(1, None, None), (None, 2, None), (None, None, None), (3, 4, 5)])
    b = make_table(con, "b", 1, [(6,), (1,), (None,)])
    duck, on_spark_, stats, _ = both(spark, con, [a, b])
    assert duck == on_spark_ == reference([[(1, None, None), (None, 2, None), (3, 4, 5)], [(6,)]])
    assert (stats.tokens, stats.edges, stats.persons) == (6, 2, 4)


def test_a_dictionary_in_slices_on_spark(spark: SparkSession) -> None:
    """Grouped a few occurrences at a time, Spark's signed keys land in every slice once."""
    con = duckdb.connect()
    a = make_table(con, "a", 2, [(i, i + 1) for i in range(0, 40, 2)] + [(None, 99)])
    b = make_table(con, "b", 1, [(i,) for i in range(1, 60, 3)])
    duck, on_spark_, stats, _ = both(spark, con, [a, b], slice_rows=7)
    assert duck == on_spark_
    assert stats.tokens == len({*range(40), 99, *range(1, 60, 3)})
    assert stats.persons == len(duck)


def test_only_isolated_tokens(spark: SparkSession) -> None:
    con = duckdb.connect()
    a = make_table(con, "a", 1, [(i,) for i in range(5)])
    duck, on_spark_, stats, _ = both(spark, con, [a])
    assert duck == on_spark_
    assert (stats.edges, stats.persons, stats.iterations) == (0, 5, 0)


def test_person_table_on_spark(spark: SparkSession) -> None:
    con = duckdb.connect()
    rows: list[Row] = [(1, 2), (2, None), (None, 3), (None, None), (4, 1)]
    a = make_table(con, "a", 2, rows)
    _, _, _, engine = both(spark, con, [a])
    source = spark_sources([a])[0]
    count = person_table(engine, source, person_map="wh.pm", keep_columns=["n", "city"], out="wh.t")
    assert count == 4  # the row without a token has no person
    got = engine.session.table(engine.view_of("wh.t")).collect()
    assert sorted(got[0].asDict()) == ["_rank", "city", "n", "person"]
    by_n = {r["n"]: r["person"] for r in got}
    assert by_n[0] == by_n[1] == by_n[4] != by_n[2]
    assert sorted(r["_rank"] for r in got if r["person"] == by_n[0]) == [1, 2, 3]
    with pytest.raises(InternalError, match="token column"):
        person_table(engine, source, person_map="wh.pm", keep_columns=["t0"], out="wh.t2")
    with pytest.raises(InternalError, match="already exists"):
        person_table(engine, source, person_map="wh.pm", keep_columns=["n"], out="wh.t")


def test_scratch_views_are_dropped_and_sources_kept(spark: SparkSession) -> None:
    con = duckdb.connect()
    a = make_table(con, "a", 2, [(i, i + 1) for i in range(4)])
    before = {t.name for t in spark.catalog.listTables()}
    _, _, _, engine = both(spark, con, [a])
    after = {t.name for t in spark.catalog.listTables()}
    assert after - before == {engine.view_of("wh.pm"), engine.view_of("wh.a")}
    assert not engine.scratch
    assert not engine.frames.keys() - {"pm"}


def test_only_warehouse_names(spark: SparkSession) -> None:
    with pytest.raises(InternalError, match=r"wh\.<name>"):
        SparkTables(spark, {"other.a": "v"})
    engine = SparkTables(spark, {})
    with pytest.raises(InternalError, match="no Spark view"):
        resolve(engine, [TokenSource("wh.missing", ["x"])], person_map="wh.pm")


@pytest.fixture(autouse=True)
def _fresh_views(spark: SparkSession) -> Iterator[None]:
    yield
    for table in spark.catalog.listTables():
        if table.isTemporary:
            spark.catalog.dropTempView(table.name)


def test_identity_limits_same_persons_and_counts_as_duckdb(spark: SparkSession) -> None:
    """Hubs' links withheld and an over-limit chain not formed, on both engines alike."""
    con = duckdb.connect()
    tables = [
        beta_persons(12),
        Table("alpha", 2, [(3 * 5000 + 1, 3 * (10 + i)) for i in range(8)]),  # a hub
        Table(
            "gamma", 2, [(3 * (6000 + i) + 1, 3 * (20 + i + d)) for i in range(4) for d in (0, 1)]
        ),
        Table("delta", 3, [(0, 1, 2), (3, 1, 5)]),  # an honest two-phone, two-card person
    ]
    sources = [load(con, f"p{i}", t) for i, t in enumerate(tables)]
    duck, on_spark_, stats, _ = both(spark, con, sources, LIMITS)
    want, hubs = expected(tables, LIMITS)
    assert duck == on_spark_ == want
    assert stats.withheld.hubs == hubs == 1
    assert stats.withheld.by_party["alpha"] == 8 and stats.withheld.split_groups == 1


def test_foreign_merge_limit_same_persons_and_counts_as_duckdb(spark: SparkSession) -> None:
    """Disjoint pairs of beta's phones tied to forged e-mails, with a chain and a hub too."""
    con = duckdb.connect()
    tables = [
        beta_persons(16),
        Table(
            "alpha",
            2,
            [(3 * (7000 + i) + 1, 3 * (10 + 2 * i + d)) for i in range(8) for d in (0, 1)],
        ),
        Table("alpha", 2, [(3 * 5000 + 1, 3 * (10 + i)) for i in range(5)]),  # a hub
        Table("gamma", 2, [(3 * (10 + i), 3 * (10 + i) + 1) for i in range(16)]),  # honest
    ]
    sources = [load(con, f"p{i}", t) for i, t in enumerate(tables)]
    foreign = ForeignLimit(fraction=0.1, at_least=1)
    duck, on_spark_, stats, _ = both(spark, con, sources, LIMITS, foreign)
    assert duck == on_spark_
    assert stats.withheld.hubs == 1 and stats.withheld.foreign_merges > 8
    assert set(stats.withheld.by_party) == {"alpha"}
    assert all(len(group) <= 2 for group in duck)  # beta's persons: a phone and its e-mail


def test_suppression_leaves_out_the_same_rows_as_duckdb(spark: SparkSession) -> None:
    con = duckdb.connect()
    a = make_table(con, "a", 2, [(1, 2), (4, None), (5, 6)])
    b = make_table(con, "b", 2, [(2, None), (7, 8), (None, 6)])
    con.from_arrow(pa.table({"token": pa.array([tok(1), tok(8), tok(99)], pa.binary())})).create(
        "l"
    )
    _, _, _, engine = both(spark, con, [a, b])
    listed = TokenSource("l", ["token"])
    views = on_spark(spark, con, [listed]).views  # the list as a Spark view too
    engine.views["l"] = views["l"]
    suppressed_tokens(engine, ["wh.l"], "wh.pm", "wh.sup")
    duck_tables = DuckDBTables(con)
    suppressed_tokens(duck_tables, ["l"], "pm", "temp.main.sup")
    for source in (a, b):
        person_table(duck_tables, source, person_map="pm", keep_columns=["n"],
                     out=f"d_{source.table}", suppressed="temp.main.sup")  # fmt: skip
        (on,) = spark_sources([source])
        out = f"wh.s_{source.table}"
        person_table(engine, on, person_map="wh.pm", keep_columns=["n"], out=out,
                     suppressed="wh.sup")  # fmt: skip
        duck = sorted(n for (n,) in con.execute(f"SELECT n FROM d_{source.table}").fetchall())
        got = sorted(r["n"] for r in engine.session.table(engine.view_of(out)).collect())
        assert got == duck
    # Token 1 takes its person (tokens 1, 2) out at both parties; token 8 its own row.
    assert sorted(n for (n,) in con.execute("SELECT n FROM d_a").fetchall()) == [1, 2]
    assert sorted(n for (n,) in con.execute("SELECT n FROM d_b").fetchall()) == [2]
