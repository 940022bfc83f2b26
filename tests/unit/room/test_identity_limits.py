"""Identity poisoning: per-type limits, hub links and over-limit groups in identity resolution.

The SQL rule is checked against a plain-Python statement of the same rule on
random typed graphs, and on the audit's attack: one party re-uploads rows
tying many of another party's phones to a single e-mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.errors import InternalError
from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.identity import TokenSource, Withheld, person_table, resolve
from tests.unit.room.test_identity import Row, make_table, partition, tok

LIMITS = {"phone": 3, "email": 3, "card": 4}
KINDS = ("phone", "email", "card")


@dataclass(frozen=True)
class Table:
    """A party's rows over typed token columns; a token's type is ``KINDS[i % 3]``."""

    party: str
    width: int
    rows: list[Row]


def kind_of(token: int) -> str:
    return KINDS[token % 3]


def load(con: duckdb.DuckDBPyConnection, name: str, table: Table) -> TokenSource:
    """The table, its columns typed by the tokens they hold (a column holds one type)."""
    source = make_table(con, name, table.width, table.rows)
    kinds = {}
    for j in range(table.width):
        seen = {kind_of(r[j]) for r in table.rows if r[j] is not None}
        assert len(seen) <= 1, "a test column holds one identifier type"
        kinds[f"t{j}"] = seen.pop() if seen else "phone"
    return TokenSource(source.table, source.token_columns, kinds, table.party)


def expected(tables: Sequence[Table], limits: dict[str, int]) -> tuple[set[frozenset[bytes]], int]:
    """The rule in plain Python: drop hubs' links, join, dissolve groups over a limit."""
    tokens: set[int] = set()
    links: set[tuple[int, int]] = set()
    for table in tables:
        for row in table.rows:
            present = [t for t in row if t is not None]
            tokens.update(present)
            links.update((min(present[0], t), max(present[0], t)) for t in present[1:])
    links = {(a, b) for a, b in links if a != b}
    neighbours: dict[int, set[int]] = {t: set() for t in tokens}
    for a, b in links:
        neighbours[a].add(b)
        neighbours[b].add(a)
    hubs = {
        t
        for t in tokens
        if any(
            sum(kind_of(n) == kind for n in neighbours[t]) > most for kind, most in limits.items()
        )
    }
    parent = {t: t for t in tokens}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        if a not in hubs and b not in hubs:
            parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for t in tokens:
        groups.setdefault(find(t), set()).add(t)
    out: set[frozenset[bytes]] = set()
    for group in groups.values():
        over = any(sum(kind_of(t) == k for t in group) > most for k, most in limits.items())
        members = [{t} for t in group] if over else [group]
        out.update(frozenset(tok(t) for t in m) for m in members)
    return out, len(hubs)


def resolve_tables(
    tables: Sequence[Table], limits: dict[str, int] | None = LIMITS
) -> tuple[duckdb.DuckDBPyConnection, list[TokenSource], set[frozenset[bytes]], Withheld]:
    con = duckdb.connect()
    sources = [load(con, f"p{i}", t) for i, t in enumerate(tables)]
    stats = resolve(DuckDBTables(con), sources, person_map="pm", limits=limits)
    return con, sources, partition(con, "pm"), stats.withheld


def persons_of(con: duckdb.DuckDBPyConnection, source: TokenSource, out: str) -> tuple[int, int]:
    """A party's persons and rows in its analysis table (what its analyst would count)."""
    person_table(DuckDBTables(con), source, person_map="pm", keep_columns=["n"], out=out)
    row = con.execute(f"SELECT count(DISTINCT person), count(*) FROM {out}").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def typed_column(kind: int, pool: int) -> st.SearchStrategy[int | None]:
    """Tokens of one type: i % 3 == kind."""
    return st.one_of(st.none(), st.integers(0, pool).map(lambda i: 3 * i + kind))


typed_tables = st.lists(
    st.tuples(
        st.sampled_from(["alpha", "beta", "gamma"]),
        st.lists(st.integers(0, 2), min_size=1, max_size=4),
        st.integers(1, 12),
    ).flatmap(
        lambda spec: st.builds(
            Table,
            st.just(spec[0]),
            st.just(len(spec[1])),
            st.lists(st.tuples(*[typed_column(k, spec[2]) for k in spec[1]]), max_size=30),
        )
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(typed_tables, st.dictionaries(st.sampled_from(KINDS), st.integers(1, 4), min_size=1))
def test_random_typed_graphs_follow_the_rule(tables: list[Table], limits: dict[str, int]) -> None:
    _, _, found, withheld = resolve_tables(tables, limits)
    want, hubs = expected(tables, limits)
    assert found == want
    assert withheld.hubs == hubs
    for group in found:  # the invariant the rule exists for
        for kind, most in limits.items():
            assert sum(kind_of(int(t)) == kind for t in map(_index, group)) <= most


def _index(token: bytes) -> int:
    return TOKENS[token]


TOKENS = {tok(i): i for i in range(0, 3 * 20)}


def beta_persons(n: int) -> Table:
    """n beta persons: phone 3i (all), e-mail 3i+1 (every other one), several rows each."""
    rows: list[Row] = []
    for i in range(n):
        phone, email = 3 * (10 + i), 3 * (10 + i) + 1
        rows.append((phone, email if i % 2 == 0 else None))
        rows.extend([(phone, None)] * (1 + i % 4))
    return Table("beta", 2, rows)


def test_one_email_tied_to_many_of_anothers_phones_leaves_them_apart() -> None:
    n = 200
    honest = [beta_persons(n), Table("alpha", 2, [(3 * (10 + i), 3 * 900 + 1) for i in (0,)])]
    poisoned = 3 * 5000 + 1  # the attacker's one e-mail
    attack = Table("alpha", 2, [(poisoned, 3 * (10 + i)) for i in range(n)])

    con, sources, _, _ = resolve_tables(honest)
    before = persons_of(con, sources[0], "beta_before")
    con, sources, found, withheld = resolve_tables([honest[0], attack])
    after = persons_of(con, sources[0], "beta_after")

    assert after == before == (n, len(honest[0].rows))
    assert frozenset({tok(poisoned)}) in found
    assert withheld.hubs == 1
    assert withheld.links == n and withheld.by_party == {"alpha": n}
    assert (withheld.split_groups, withheld.split_tokens) == (0, 0)


def test_a_chain_of_modest_links_is_not_formed() -> None:
    # Each attacker e-mail ties two of beta's phones (under every per-token limit),
    # but together they chain 30 phones into one group: over the phone limit.
    beta = beta_persons(30)
    chain = Table(
        "alpha", 2, [(3 * (6000 + i) + 1, 3 * (10 + i + d)) for i in range(29) for d in (0, 1)]
    )
    con, sources, found, withheld = resolve_tables([beta, chain])
    assert withheld.hubs == 0
    assert withheld.split_groups == 1 and withheld.split_tokens == 30 + 15 + 29
    assert all(len(group) == 1 for group in found)
    # beta's own rows were linked too (phone + e-mail): they are withheld with the rest
    assert withheld.by_party == {"alpha": 58, "beta": 15}
    # every beta row starts with its phone, so beta's persons are what beta alone sees
    assert persons_of(con, sources[0], "beta_after") == (30, len(beta.rows))


def test_honest_multi_identifier_persons_link_exactly() -> None:
    # phone + e-mail + card at one party, a second and third phone and a second
    # card elsewhere, an e-mail-only record at a third: one person.
    person = [0, 1, 2, 3, 6, 5]  # phones 0, 3, 6; e-mail 1; cards 2, 5
    tables = [
        Table("alpha", 3, [(0, 1, 2), (0, None, None)]),
        Table("beta", 2, [(3, 1), (6, 1)]),
        Table("gamma", 3, [(None, 1, None), (0, None, 5), (9, None, None)]),
    ]
    _, _, found, withheld = resolve_tables(tables)
    assert found == {frozenset(tok(t) for t in person), frozenset({tok(9)})}
    assert withheld == Withheld()


def test_without_limits_everything_links() -> None:
    attack = Table("alpha", 2, [(3 * 5000 + 1, 3 * i) for i in range(10)])
    _, _, found, withheld = resolve_tables([attack], None)
    assert len(found) == 1 and withheld == Withheld()


@pytest.mark.parametrize("limits", [{"phone": 0}, {"phone": True}, {"no good": 2}])
def test_bad_limits_are_refused_before_any_work(limits: dict[str, int]) -> None:
    with pytest.raises(InternalError):
        resolve_tables([Table("alpha", 1, [(0,)])], limits)
