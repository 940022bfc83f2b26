"""Identity resolution: partitions checked against a Python union-find."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.errors import InternalError
from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.identity import IdentityStats, TokenSource, person_table, resolve

Row = tuple[int | None, ...]


def tok(i: int) -> bytes:
    return hashlib.sha256(f"token-{i}".encode()).digest()


def maybe_tok(i: int | None) -> bytes | None:
    return None if i is None else tok(i)


def make_table(
    con: duckdb.DuckDBPyConnection, name: str, width: int, rows: Sequence[Row]
) -> TokenSource:
    """A party table: ``width`` token columns t0.., a row number and a label."""
    columns = {
        f"t{j}": pa.array([maybe_tok(r[j]) for r in rows], pa.binary()) for j in range(width)
    }
    columns["n"] = pa.array(range(len(rows)), pa.int64())
    columns["city"] = pa.array([f"c{i % 3}" for i in range(len(rows))], pa.string())
    con.from_arrow(pa.table(columns)).create(name)
    return TokenSource(name, [f"t{j}" for j in range(width)])


def reference(tables: Iterable[Sequence[Row]]) -> set[frozenset[bytes]]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for rows in tables:
        for row in rows:
            present = [t for t in row if t is not None]
            for t in present:
                find(t)
            for t in present[1:]:
                parent[find(t)] = find(present[0])
    groups: dict[int, set[bytes]] = {}
    for t in parent:
        groups.setdefault(find(t), set()).add(tok(t))
    return {frozenset(g) for g in groups.values()}


def partition(con: duckdb.DuckDBPyConnection, person_map: str) -> set[frozenset[bytes]]:
    groups: dict[int, set[bytes]] = {}
    for token, person in con.execute(f"SELECT token, person FROM {person_map}").fetchall():
        groups.setdefault(person, set()).add(bytes(token))
    return {frozenset(g) for g in groups.values()}


def assert_dense(con: duckdb.DuckDBPyConnection, person_map: str, stats: IdentityStats) -> None:
    count, distinct_tokens, persons, low, high = con.execute(
        f"SELECT count(*), count(DISTINCT token), count(DISTINCT person), min(person), "
        f"max(person) FROM {person_map}"
    ).fetchall()[0]
    assert count == distinct_tokens == stats.tokens
    assert persons == stats.persons
    if persons:
        assert (low, high) == (1, persons)


def scratch_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    return [r[0] for r in rows]


table_shapes = st.integers(min_value=0, max_value=60).flatmap(
    lambda pool: st.lists(
        st.integers(min_value=1, max_value=3).flatmap(
            lambda width: st.tuples(
                st.just(width),
                st.lists(
                    st.tuples(
                        *[
                            st.none()
                            if pool == 0
                            else st.one_of(st.none(), st.integers(0, pool - 1))
                            for _ in range(width)
                        ]
                    ),
                    max_size=25,
                ),
            )
        ),
        min_size=1,
        max_size=4,
    )
)


@settings(max_examples=150, deadline=None)
@given(table_shapes)
def test_partition_equals_union_find(tables: list[tuple[int, list[Row]]]) -> None:
    con = duckdb.connect()
    sources = [make_table(con, f"p{i}", width, rows) for i, (width, rows) in enumerate(tables)]
    stats = resolve(DuckDBTables(con), sources, person_map="pm")
    expected = reference(rows for _, rows in tables)
    assert partition(con, "pm") == expected
    assert stats.persons == len(expected)
    assert_dense(con, "pm", stats)
    assert scratch_tables(con) == []


def test_chain_of_200_across_two_tables_is_one_person() -> None:
    con = duckdb.connect()
    a = make_table(con, "a", 2, [(i, i + 1) for i in range(0, 200, 2)])
    b = make_table(con, "b", 2, [(i, i + 1) for i in range(1, 200, 2)])
    stats = resolve(DuckDBTables(con), [a, b], person_map="pm")
    assert (stats.tokens, stats.edges, stats.persons) == (201, 200, 1)
    assert stats.iterations < 40  # plain label propagation would need ~200 rounds


def test_long_chain_needs_logarithmically_many_rounds() -> None:
    con = duckdb.connect()
    n = 20_000
    con.execute(
        "CREATE TABLE c AS SELECT sha256(i::VARCHAR)::BLOB AS x, "
        "sha256((i + 1)::VARCHAR)::BLOB AS y FROM range(?) t(i) ORDER BY hash(i)",
        [n],
    )
    stats = resolve(DuckDBTables(con), [TokenSource("c", ["x", "y"])], person_map="pm")
    assert (stats.tokens, stats.persons) == (n + 1, 1)
    assert stats.iterations <= 60


def test_person_table_keeps_columns_drops_tokens_and_tokenless_rows() -> None:
    con = duckdb.connect()
    rows: list[Row] = [(1, 2), (None, None), (1, None), (None, 2), (None, None), (4, 4)]
    src = make_table(con, "orders", 2, rows)
    resolve(DuckDBTables(con), [src], person_map="pm")
    count = person_table(
        DuckDBTables(con), src, person_map="pm", keep_columns=["n", "city"], out="orders_p"
    )
    assert count == 4
    described = con.execute("DESCRIBE orders_p").fetchall()
    assert [(r[0], r[1], r[2]) for r in described] == [
        ("person", "BIGINT", "NO"),
        ("n", "BIGINT", "YES"),
        ("city", "VARCHAR", "YES"),
        ("_rank", "BIGINT", "YES"),
    ]
    assert "BLOB" not in {r[1] for r in described}
    by_row = dict(con.execute("SELECT n, person FROM orders_p").fetchall())
    assert sorted(by_row) == [0, 2, 3, 5]  # the two token-less rows are gone
    assert by_row[0] == by_row[2] == by_row[3] != by_row[5]
    assert con.execute("SELECT count(*) FROM orders_p WHERE city IS NULL").fetchall() == [(0,)]
    ranks = con.execute(
        "SELECT person, list(_rank ORDER BY _rank) FROM orders_p GROUP BY person"
    ).fetchall()
    assert all(r == list(range(1, len(r) + 1)) for _, r in ranks)  # 1..n per person


@pytest.mark.parametrize(
    "keep", [["t0"], ["T1"], ["person"], ["_rank"], ["blob"], ["n", "n"], ["nope"]]
)
def test_person_table_refuses_token_like_or_bad_keep_columns(keep: list[str]) -> None:
    con = duckdb.connect()
    src = make_table(con, "orders", 2, [(1, 2)])
    con.execute("ALTER TABLE orders ADD COLUMN blob BLOB")
    resolve(DuckDBTables(con), [src], person_map="pm")
    with pytest.raises(InternalError):
        person_table(DuckDBTables(con), src, person_map="pm", keep_columns=keep, out="orders_p")
    assert con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'orders_p'"
    ).fetchall() == [(0,)]


def test_rematch_keeps_partition_but_changes_ids() -> None:
    con = duckdb.connect()
    rows: list[Row] = [(i, i + 1000) for i in range(60)] + [(i, None) for i in range(60, 120)]
    src = make_table(con, "a", 2, rows)
    first = resolve(DuckDBTables(con), [src], person_map="pm1")
    second = resolve(DuckDBTables(con), [src], person_map="pm2")
    assert partition(con, "pm1") == partition(con, "pm2")
    assert first.persons == second.persons == 120
    assert_dense(con, "pm1", first)
    assert_dense(con, "pm2", second)
    changed = con.execute(
        "SELECT count(*) FROM pm1 JOIN pm2 USING (token) WHERE pm1.person <> pm2.person"
    ).fetchall()[0][0]
    assert changed > 100


def test_three_parties_linked_only_through_a_third_partys_row() -> None:
    con = duckdb.connect()
    phone, email, card = 0, 100, 200  # token numbers per identifier type
    # Party A (phone, email) is the only one that saw Sara's phone with her e-mail.
    shop = make_table(con, "shop", 2, [(phone + 1, email + 1), (phone + 2, None)])
    # Party B (phone, card): Sara pays by card with her phone; Ali too.
    bank = make_table(con, "bank", 2, [(phone + 1, card + 1), (phone + 3, card + 3)])
    # Party C (email only): Sara's newsletter subscription, and a stranger's.
    news = make_table(con, "news", 1, [(email + 1,), (email + 9,)])
    stats = resolve(DuckDBTables(con), [shop, bank, news], person_map="pm")
    assert stats.persons == 4  # Sara, phone 2, Ali, the stranger
    for src in (shop, bank, news):
        person_table(
            DuckDBTables(con), src, person_map="pm", keep_columns=["n"], out=f"{src.table}_p"
        )
    sara = {
        con.execute(f"SELECT person FROM {t}_p WHERE n = 0").fetchall()[0][0]
        for t in ("shop", "bank", "news")
    }
    assert len(sara) == 1
    others = {
        con.execute("SELECT person FROM shop_p WHERE n = 1").fetchall()[0][0],
        con.execute("SELECT person FROM bank_p WHERE n = 1").fetchall()[0][0],
        con.execute("SELECT person FROM news_p WHERE n = 1").fetchall()[0][0],
    }
    assert len(others) == 3
    assert not sara & others
    # Without party A's row, bank card and newsletter e-mail stay apart.
    stats = resolve(DuckDBTables(con), [bank, news], person_map="pm_without_shop")
    assert stats.persons == 4


def test_qualified_names_in_an_attached_database() -> None:
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS wh")
    make_table(con, "staging", 2, [(1, 2), (2, 3), (7, None)])
    con.execute("CREATE TABLE wh.okala__orders__v3 AS FROM staging")
    src = TokenSource("wh.okala__orders__v3", ["t0", "t1"])
    stats = resolve(DuckDBTables(con), [src], person_map="wh.person_map")
    assert stats.persons == 2
    assert (
        person_table(
            DuckDBTables(con), src, person_map="wh.person_map", keep_columns=["n"], out="wh.p"
        )
        == 3
    )
    assert scratch_tables(con) == []


@pytest.mark.parametrize(
    "name", ["a; DROP TABLE x", 'a"b', "1abc", "a..b", "a.b.c.d", "", "a b", "a-b", "a."]
)
def test_bad_table_names_are_refused(name: str) -> None:
    con = duckdb.connect()
    make_table(con, "a", 1, [(1,)])
    with pytest.raises(InternalError):
        resolve(DuckDBTables(con), [TokenSource(name, ["t0"])], person_map="pm")
    with pytest.raises(InternalError):
        resolve(DuckDBTables(con), [TokenSource("a", ["t0"])], person_map=name)
    with pytest.raises(InternalError):
        resolve(DuckDBTables(con), [TokenSource("a", [name or "x y"])], person_map="pm")


def test_sources_must_hold_blob_tokens() -> None:
    con = duckdb.connect()
    make_table(con, "a", 1, [(1,)])
    with pytest.raises(InternalError, match="not BLOB"):
        resolve(DuckDBTables(con), [TokenSource("a", ["city"])], person_map="pm")
    with pytest.raises(InternalError, match="no column"):
        resolve(DuckDBTables(con), [TokenSource("a", ["missing"])], person_map="pm")
    with pytest.raises(InternalError):
        resolve(DuckDBTables(con), [TokenSource("a", [])], person_map="pm")
    with pytest.raises(InternalError):
        resolve(DuckDBTables(con), [], person_map="pm")


def test_failure_cleans_up_and_leaves_existing_tables_alone() -> None:
    con = duckdb.connect()
    src = make_table(con, "a", 2, [(1, 2)])
    con.execute("CREATE TABLE pm AS SELECT 42 AS keep_me")
    con.execute("SET preserve_insertion_order = true")
    with pytest.raises(InternalError, match="exists"):
        resolve(DuckDBTables(con), [src], person_map="pm")
    assert con.execute("SELECT * FROM pm").fetchall() == [(42,)]
    assert scratch_tables(con) == []
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall() == [(True,)]


def test_no_tokens_at_all() -> None:
    con = duckdb.connect()
    src = make_table(con, "a", 2, [(None, None)] * 3)
    stats = resolve(DuckDBTables(con), [src], person_map="pm")
    assert (stats.tokens, stats.edges, stats.persons, stats.iterations) == (0, 0, 0, 0)
    assert person_table(DuckDBTables(con), src, person_map="pm", keep_columns=["n"], out="a_p") == 0
