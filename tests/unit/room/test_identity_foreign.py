"""The foreign-merge limit: how many of one party's persons another party's rows may merge.

The SQL rule is checked against a plain-Python statement of it on random
multi-party graphs, and on the disjoint-pairs attack the per-type limits do
not catch: many forged e-mails, each tied to its own two of another party's
phones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.errors import InternalError
from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.identity import TokenSource, Withheld, resolve
from cleanroom.room.identity_foreign import MAX_PARTIES, ForeignLimit, party_bits
from tests.unit.room.test_identity import make_table, partition, tok
from tests.unit.room.test_identity_limits import Table, beta_persons, persons_of

STRICT = ForeignLimit(fraction=0.0, at_least=0)
Link = tuple[int, int]


class _Sets:
    """Union-find over ints."""

    def __init__(self, items: Iterable[int]) -> None:
        self.parent = {t: t for t in items}

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _links(table: Table) -> set[Link]:
    out = set()
    for row in table.rows:
        present = [t for t in row if t is not None]
        out.update((min(present[0], t), max(present[0], t)) for t in present[1:] if t != present[0])
    return out


def expected(tables: Sequence[Table], limit: ForeignLimit) -> tuple[set[frozenset[bytes]], int]:
    """The rule in plain Python (no per-type limits): partition and merges withheld."""
    held: dict[str, set[int]] = {}
    links: dict[str, set[Link]] = {}
    for table in tables:
        held.setdefault(table.party, set()).update(
            t for r in table.rows for t in r if t is not None
        )
        links.setdefault(table.party, set()).update(_links(table))
    own = {}
    for party, tokens in held.items():
        sets = _Sets(tokens)
        for a, b in links[party]:
            sets.join(a, b)
        own[party] = sets
    merges: dict[tuple[str, str], int] = {}
    merging_groups: dict[tuple[str, str], set[int]] = {}
    for x, x_tokens in held.items():
        groups: dict[int, set[int]] = {}
        for t in x_tokens:
            groups.setdefault(own[x].find(t), set()).add(t)
        for v, v_tokens in held.items():
            if v == x:
                continue
            for root, members in groups.items():
                n = len({own[v].find(t) for t in members if t in v_tokens})
                if n > 1:
                    merges[(x, v)] = merges.get((x, v), 0) + n - 1
                    merging_groups.setdefault((x, v), set()).add(root)
    persons = {p: len({own[p].find(t) for t in held[p]}) for p in held}
    raw = {
        pair: m
        for pair, m in merges.items()
        if m > max(limit.at_least, math.floor(limit.fraction * persons[pair[1]]))
    }
    over = {
        (x, v)
        for (x, v), m in raw.items()
        if (v, x) not in raw or raw[(v, x)] * persons[v] <= m * persons[x]
    }
    cut = {
        (party, link)
        for party, party_links in links.items()
        for link in party_links
        if any(x == party and own[x].find(link[0]) in merging_groups[(x, v)] for x, v in over)
    }
    everything = set().union(*held.values())
    sets = _Sets(everything)
    for party, party_links in links.items():
        for link in party_links:
            if (party, link) not in cut:
                sets.join(*link)
    found: dict[int, set[int]] = {}
    for t in everything:
        found.setdefault(sets.find(t), set()).add(t)
    return {frozenset(tok(t) for t in g) for g in found.values()}, sum(raw[p] for p in over)


def load(con: duckdb.DuckDBPyConnection, name: str, table: Table) -> TokenSource:
    """The table as a party's source (types do not matter to this rule)."""
    source = make_table(con, name, table.width, table.rows)
    return TokenSource(source.table, source.token_columns, {}, table.party)


def resolve_tables(
    tables: Sequence[Table], limit: ForeignLimit | None
) -> tuple[duckdb.DuckDBPyConnection, list[TokenSource], set[frozenset[bytes]], Withheld]:
    con = duckdb.connect()
    sources = [load(con, f"p{i}", t) for i, t in enumerate(tables)]
    stats = resolve(DuckDBTables(con), sources, person_map="pm", foreign=limit)
    return con, sources, partition(con, "pm"), stats.withheld


party_tables = st.lists(
    st.tuples(st.sampled_from(["alpha", "beta", "gamma"]), st.integers(1, 3)).flatmap(
        lambda spec: st.builds(
            Table,
            st.just(spec[0]),
            st.just(spec[1]),
            st.lists(st.tuples(*[st.one_of(st.none(), st.integers(0, 40))] * spec[1]), max_size=25),
        )
    ),
    min_size=1,
    max_size=5,
)
limits = st.builds(ForeignLimit, st.sampled_from([0.0, 0.05, 0.2, 1.0]), st.integers(0, 3))


@settings(max_examples=80, deadline=None)
@given(party_tables, limits)
def test_random_party_graphs_follow_the_rule(tables: list[Table], limit: ForeignLimit) -> None:
    _, _, found, withheld = resolve_tables(tables, limit)
    want, merges = expected(tables, limit)
    assert found == want
    assert withheld.foreign_merges == merges


def test_disjoint_pairs_leave_the_victims_persons_apart() -> None:
    n = 60
    beta = beta_persons(n)  # beta's phones 3(10+i), e-mails 3(10+i)+1
    attack = Table(
        "alpha",
        2,
        [(3 * (7000 + i) + 1, 3 * (10 + 2 * i + d)) for i in range(n // 2) for d in (0, 1)],
    )
    con, sources, _, _ = resolve_tables([beta], ForeignLimit(0.01, 2))
    before = persons_of(con, sources[0], "beta_before")
    con, sources, found, withheld = resolve_tables([beta, attack], ForeignLimit(0.01, 2))
    assert persons_of(con, sources[0], "beta_after") == before == (n, len(beta.rows))
    assert withheld.foreign_merges == n // 2
    assert withheld.by_party == {"alpha": n} and withheld.links == n
    assert all(len(g) == 1 for g in found if tok(3 * 7000 + 1) in g)
    # without the rule the same rows merge beta's persons pairwise
    con, sources, _, _ = resolve_tables([beta, attack], None)
    assert persons_of(con, sources[0], "beta_open") == (n // 2, len(beta.rows))


def test_a_few_merges_under_the_limit_are_made() -> None:
    beta = beta_persons(10)
    attack = Table("alpha", 2, [(3 * 7000 + 1, 3 * 10), (3 * 7000 + 1, 3 * 11)])
    _, _, found, withheld = resolve_tables([beta, attack], ForeignLimit(0.0, 1))
    assert withheld == Withheld()
    assert frozenset({tok(3 * 7000 + 1), tok(30), tok(31), tok(33), tok(3 * 11 + 1)}) not in found
    assert any({tok(30), tok(33)} <= g for g in found)


def test_honest_persons_spread_over_parties_link_exactly() -> None:
    # Each party sees some of one customer's identifiers, always together in a
    # row: no party's rows join two persons another party keeps apart.
    tables = [
        Table("alpha", 3, [(0, 1, 2), (0, None, None), (9, 10, None)]),
        Table("beta", 2, [(3, 1), (0, 1), (9, None)]),
        Table("gamma", 3, [(3, 1, None), (0, 3, 5), (10, None, None)]),
    ]
    _, _, found, withheld = resolve_tables(tables, STRICT)
    assert found == {frozenset(tok(t) for t in (0, 1, 2, 3, 5)), frozenset({tok(9), tok(10)})}
    assert withheld == Withheld()


def test_the_victims_own_links_are_kept_when_forged_rows_make_them_look_foreign() -> None:
    # alpha holds beta's customers' e-mails honestly and ties their phones to
    # forged e-mails; beta's honest (phone, e-mail) rows then join two of
    # alpha's persons each. Alpha merges more of beta's than beta of alpha's:
    # only alpha is cut.
    n = 20
    beta = beta_persons(n)
    attack = Table(
        "alpha",
        2,
        [(3 * (7000 + i) + 1, 3 * (10 + 2 * i + d)) for i in range(n // 2) for d in (0, 1)]
        + [(3 * (10 + i) + 1, None) for i in range(0, n // 2, 2)],
    )
    _, _, _, withheld = resolve_tables([beta, attack], STRICT)
    assert set(withheld.by_party) == {"alpha"}  # beta merges 5 of alpha's 15; alpha 10 of 20
    assert withheld.foreign_merges == n // 2


def test_bad_limits_are_refused() -> None:
    with pytest.raises(InternalError):
        ForeignLimit(fraction=1.5, at_least=0)
    with pytest.raises(InternalError):
        ForeignLimit(fraction=0.1, at_least=-1)


def test_parties_are_numbered_by_name_and_at_most_31_told_apart() -> None:
    assert party_bits(["snapp", "okala", "snapp", "digikala"]) == {
        "digikala": 0,
        "okala": 1,
        "snapp": 2,
    }
    assert len(party_bits(f"brand{i}" for i in range(MAX_PARTIES))) == MAX_PARTIES
    with pytest.raises(InternalError, match=f"at most {MAX_PARTIES} parties"):
        party_bits(f"brand{i}" for i in range(MAX_PARTIES + 1))
