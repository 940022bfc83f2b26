"""Suppression at a match: analysis tables checked against a plain-Python statement of the rule.

The rule (``cleanroom.room.suppression``): a row is left out when its person
holds a listed token (through identity resolution, so at every party) or
when the row itself holds one; a listed token no party holds removes no one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.identity import TokenSource, person_table, resolve
from cleanroom.room.suppression import SuppressionList, suppressed_tokens
from tests.unit.room.test_identity import Row, make_table, tok

WIDTH = 2
rows_of = st.lists(
    st.tuples(*[st.one_of(st.none(), st.integers(0, 25)) for _ in range(WIDTH)]).filter(
        lambda r: any(t is not None for t in r)
    ),
    max_size=25,
)


def components(tables: Sequence[Sequence[Row]]) -> dict[int, int]:
    """Token -> component representative (plain union-find over every row)."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for rows in tables:
        for row in rows:
            present = [t for t in row if t is not None]
            for t in present:
                find(t)
            for t in present[1:]:
                parent[find(t)] = find(present[0])
    return {t: find(t) for t in parent}


def expected(tables: Sequence[Sequence[Row]], listed: set[int]) -> list[Counter[int]]:
    """Per table, the row numbers kept."""
    comp = components(tables)
    gone = {comp[t] for t in listed if t in comp}
    kept = []
    for rows in tables:
        keep: Counter[int] = Counter()
        for n, row in enumerate(rows):
            present = [t for t in row if t is not None]
            if comp[present[0]] in gone or set(present) & listed:
                continue
            keep[n] += 1
        kept.append(keep)
    return kept


def build(
    tables: Sequence[Sequence[Row]], listed: set[int] | None
) -> tuple[duckdb.DuckDBPyConnection, list[Counter[int]]]:
    con = duckdb.connect()
    sources: list[TokenSource] = [
        make_table(con, f"p{i}", WIDTH, rows) for i, rows in enumerate(tables)
    ]
    resolve(DuckDBTables(con), sources, person_map="persons")
    excluded = None
    if listed is not None:
        con.from_arrow(
            pa.table({"token": pa.array([tok(t) for t in sorted(listed)], pa.binary())})
        ).create("list_a")
        excluded = "temp.main.suppressed"
        suppressed_tokens(DuckDBTables(con), ["list_a"], "persons", excluded)
    out = []
    for i, source in enumerate(sources):
        person_table(
            DuckDBTables(con),
            source,
            person_map="persons",
            keep_columns=["n"],
            out=f"out{i}",
            suppressed=excluded,
        )
        out.append(Counter(n for (n,) in con.execute(f"SELECT n FROM out{i}").fetchall()))
    return con, out


@settings(max_examples=60, deadline=None)
@given(st.lists(rows_of, min_size=1, max_size=3), st.sets(st.integers(0, 30), max_size=6))
def test_every_row_a_listed_token_touches_is_left_out(
    tables: list[list[Row]], listed: set[int]
) -> None:
    _, kept = build(tables, listed)
    assert kept == expected(tables, listed)


def test_a_person_listed_at_one_party_leaves_every_party() -> None:
    # Token 1 (a phone) with token 2 (an e-mail) at party 0; token 2 alone at party 1;
    # token 1 with 3 at party 2: one person at three parties. Party 1 lists token 1 only.
    tables: list[list[Row]] = [[(1, 2), (4, None)], [(2, None), (5, 6)], [(3, 1), (7, None)]]
    _, kept = build(tables, {1})
    assert kept == [Counter({1: 1}), Counter({1: 1}), Counter({1: 1})]
    _, unlisted = build(tables, None)
    assert unlisted == [Counter({0: 1, 1: 1})] * 3


def test_a_listed_token_no_one_holds_removes_no_one() -> None:
    tables: list[list[Row]] = [[(1, 2), (3, None)]]
    _, kept = build(tables, {99})
    assert kept == [Counter({0: 1, 1: 1})]


def test_an_uploaded_list_never_says_how_many_it_holds() -> None:
    entry = SuppressionList("beta", 2, "b" * 32, "s_beta__v2", "k" * 32, 2, "u", "t", "live")
    shown = entry.public()
    assert shown["kind"] == "suppression"
    assert not {"rows", "tokens", "count", "persons", "table_name"} & set(shown)
