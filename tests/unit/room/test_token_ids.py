"""The token dictionary: the 8-byte key path gives every record the token path's person.

The token path is forced with an engine whose key function gives every token
the same key: the dictionary then finds its keys shared and every lookup
joins on the token itself, as matching did before the keys. Both paths run
the same resolution (limits and the foreign-merge bound included) over the
same generated tables; the partitions of the *records* (each table's rows)
into persons must be equal, and so must the withheld-link counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.identity import IdentityStats, TokenSource, _occurrences, person_table, resolve
from cleanroom.room.identity_foreign import LINKED, ForeignLimit
from cleanroom.room.token_ids import HKEY, build
from tests.unit.room.test_identity import make_table, tok
from tests.unit.room.test_identity_limits import KINDS, Table, load, typed_tables

Records = set[frozenset[tuple[int, int]]]


class OneKeyEngine(DuckDBTables):
    """Every token gets key 7: the dictionary must notice and look tokens up by themselves."""

    key_hash = "one_key"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__(con)
        con.execute("CREATE OR REPLACE MACRO one_key(b) AS 7::UBIGINT")


class PairKeyEngine(DuckDBTables):
    """Tokens 3 and 150 share a key; every other token has its own."""

    key_hash = "pair_key"

    def __init__(self, con: duckdb.DuckDBPyConnection, *, one_place: bool) -> None:
        super().__init__(con)
        self.one_place = one_place
        three, other = tok(3).hex(), tok(150).hex()
        con.execute(
            "CREATE OR REPLACE MACRO pair_key(b) AS "
            f"CASE WHEN b = unhex('{three}') THEN hash(unhex('{other}')) ELSE hash(b) END"
        )


def records(
    engine: DuckDBTables,
    sources: Sequence[TokenSource],
    limits: dict[str, int] | None,
    foreign: ForeignLimit | None,
    keep_tokens: bool = True,
) -> tuple[Records, IdentityStats]:
    """Resolve, build each table's person table; the records (table, row) of each person."""
    stats = resolve(
        engine, sources, person_map="pm", limits=limits, foreign=foreign, keep_tokens=keep_tokens
    )
    people: dict[int, set[tuple[int, int]]] = {}
    for i, source in enumerate(sources):
        person_table(engine, source, person_map="pm", keep_columns=["n"], out=f"out{i}")
        for person, n in engine.con.execute(f"SELECT person, n FROM out{i}").fetchall():
            people.setdefault(person, set()).add((i, n))
    return {frozenset(p) for p in people.values()}, stats


def both_paths(
    tables: list[Table],
    limits: dict[str, int] | None,
    foreign: ForeignLimit | None,
    keep_tokens: bool = True,
    slice_rows: int | None = None,
) -> tuple[Records, Records, IdentityStats, IdentityStats, duckdb.DuckDBPyConnection]:
    """The records of each person by key (the map with or without tokens) and by token.

    ``slice_rows``: the keyed path's dictionary grouped that many occurrences at a
    time (the token path's in one GROUP BY)."""
    keyed_con, token_con = duckdb.connect(), duckdb.connect()
    keyed_sources = [load(keyed_con, f"p{i}", t) for i, t in enumerate(tables)]
    token_sources = [load(token_con, f"p{i}", t) for i, t in enumerate(tables)]
    engine = DuckDBTables(keyed_con)
    engine.slice_rows = slice_rows
    keyed, keyed_stats = records(engine, keyed_sources, limits, foreign, keep_tokens)
    assert ("token" in engine.column_types("pm")) == keep_tokens
    token_engine = OneKeyEngine(token_con)
    token_engine.slice_rows = None
    by_token, token_stats = records(token_engine, token_sources, limits, foreign, keep_tokens=False)
    return keyed, by_token, keyed_stats, token_stats, token_con


limit_sets = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(KINDS), st.integers(1, 3), min_size=1)
)
foreign_limits = st.one_of(
    st.none(),
    st.builds(ForeignLimit, st.sampled_from([0.0, 0.1, 0.5]), st.integers(0, 2)),
)


@settings(max_examples=80, deadline=None)
@given(typed_tables, limit_sets, foreign_limits, st.booleans(), st.sampled_from([None, 1, 3]))
def test_key_path_gives_the_token_paths_persons(
    tables: list[Table],
    limits: dict[str, int] | None,
    foreign: ForeignLimit | None,
    keep_tokens: bool,
    slice_rows: int | None,
) -> None:
    """Whether the keyed path's dictionary was grouped at once or in slices."""
    keyed, by_token, keyed_stats, token_stats, token_con = both_paths(
        tables, limits, foreign, keep_tokens, slice_rows
    )
    assert keyed == by_token
    assert keyed_stats.withheld == token_stats.withheld
    assert (keyed_stats.tokens, keyed_stats.edges, keyed_stats.persons) == (
        token_stats.tokens,
        token_stats.edges,
        token_stats.persons,
    )
    if token_stats.tokens > 1:  # the shared key was seen: look up by token, kept in the map
        got = token_con.execute(f"SELECT count({HKEY}), count(token) FROM pm").fetchall()
        assert got == [(0, token_stats.tokens)]


def test_shared_identifiers_conflicting_links_and_limits_hit_alike() -> None:
    """A person across three parties, a hub e-mail over the limit, a chain over it."""
    tables = [
        Table("alpha", 3, [(0, 1, 2), (0, None, None), (9, None, None)]),
        Table("beta", 2, [(3, 1), (6, 1), (12, None)]),
        Table("gamma", 2, [(3 * 500 + 1, 3 * i) for i in range(10, 16)]),  # a hub e-mail
        Table(
            "delta", 2, [(3 * (600 + i) + 1, 3 * (20 + i + d)) for i in range(5) for d in (0, 1)]
        ),
    ]
    limits = {"phone": 3, "email": 3, "card": 4}
    keyed, by_token, keyed_stats, token_stats, _ = both_paths(tables, limits, None)
    assert keyed == by_token
    assert keyed_stats.withheld == token_stats.withheld
    assert keyed_stats.withheld.hubs == 1 and keyed_stats.withheld.split_groups == 1
    # alpha's first two rows and beta's first two are one person
    assert frozenset({(0, 0), (0, 1), (1, 0), (1, 1)}) in keyed


@pytest.mark.parametrize("one_place", [True, False])
def test_a_key_two_of_many_tokens_share_is_found(one_place: bool) -> None:
    """On one machine the keys are sorted and neighbours compared, elsewhere grouped: either
    way one key shared by two of 199 tokens sends the match to look tokens up by themselves,
    and without it the keys are used."""
    con = duckdb.connect()
    make_table(con, "a", 1, [(i,) for i in range(1, 200)])
    occurrences = "SELECT t0 AS tok, 0 AS kind FROM a"
    shared = build(PairKeyEngine(con, one_place=one_place), "d1", occurrences)
    assert (shared.tokens, shared.by_key) == (199, False)
    plain = DuckDBTables(con)
    plain.one_place = one_place
    assert build(plain, "d2", occurrences).by_key


def test_dictionary_ids_are_dense_and_keys_checked() -> None:
    con = duckdb.connect()
    make_table(con, "a", 2, [(1, 2), (2, None), (None, 3), (1, 1)])
    occurrences = (
        "SELECT t0 AS tok, 'phone' AS kind FROM a WHERE t0 IS NOT NULL "
        "UNION ALL SELECT t1 AS tok, 'email' AS kind FROM a WHERE t1 IS NOT NULL"
    )
    keyed = build(DuckDBTables(con), "d1", occurrences)
    assert (keyed.tokens, keyed.by_key) == (3, True)
    rows = con.execute(f"SELECT tok, id, {HKEY} = hash(tok) FROM d1 ORDER BY id").fetchall()
    assert {bytes(t) for t, _, _ in rows} == {tok(1), tok(2), tok(3)}
    assert [i for _, i, _ in rows] == [1, 2, 3]
    assert all(same for _, _, same in rows)
    assert keyed.on("d", "x") == f"d.{HKEY} = CASE WHEN x IS NOT NULL THEN hash(x) END"
    shared = build(OneKeyEngine(con), "d2", occurrences)
    assert (shared.tokens, shared.by_key) == (3, False)
    assert shared.on("d", "x") == "d.tok = x"


def test_the_dictionary_knows_which_parties_hold_each_token() -> None:
    """``parties`` is the OR of the bits of every row a token occurs in, its sign bit set
    when one of those rows holds another token, from one GROUP BY over identity's
    occurrences."""
    con = duckdb.connect()
    make_table(con, "a", 2, [(1, 2), (2, None), (None, 4)])
    make_table(con, "b", 1, [(2,), (3,), (3,)])
    sources = [TokenSource("a", ["t0", "t1"], party="x"), TokenSource("b", ["t0"], party="y")]
    bits = {"x": 0, "y": 2}
    occurrences = " UNION ALL ".join(q for s in sources for q in _occurrences(s, bits, {}))
    build(DuckDBTables(con), "d", occurrences, with_parties=True)
    held = {bytes(t): p for t, p in con.execute("SELECT tok, parties FROM d").fetchall()}
    assert held == {tok(1): 1 | LINKED, tok(2): 5 | LINKED, tok(3): 4, tok(4): 1}


@pytest.mark.parametrize("slice_rows", [1, 4, 7, 1000])
def test_a_dictionary_grouped_in_slices_is_the_whole_one(slice_rows: int) -> None:
    """Slices by key hold each token once, with its kind, holders and key; the ids
    continue from slice to slice, so they stay 1..N."""
    con = duckdb.connect()
    make_table(con, "a", 2, [(1, 2), (2, None), (None, 4), (5, 6), (7, 1)])
    make_table(con, "b", 1, [(2,), (3,), (3,), (6,), (8,)])
    sources = [TokenSource("a", ["t0", "t1"], party="x"), TokenSource("b", ["t0"], party="y")]
    occurrences = " UNION ALL ".join(
        q for s in sources for q in _occurrences(s, {"x": 0, "y": 1}, {})
    )
    whole, sliced = DuckDBTables(con), DuckDBTables(con)
    whole.slice_rows, sliced.slice_rows = None, slice_rows
    ids = [build(e, n, occurrences, with_parties=True) for e, n in ((whole, "d1"), (sliced, "d2"))]
    assert ids[0].tokens == ids[1].tokens == 8
    assert ids[0].by_key and ids[1].by_key
    facts = "SELECT tok, kind, parties, hkey FROM {} ORDER BY tok"
    assert con.execute(facts.format("d1")).fetchall() == con.execute(facts.format("d2")).fetchall()
    assert sorted(i for (i,) in con.execute("SELECT id FROM d2").fetchall()) == list(range(1, 9))
