"""The foreign-merge bound: how many of one party's persons another party's rows may merge.

Identity resolution (``identity.py``) runs it before its other limits when
the policy sets ``identity.max_foreign_merges`` (SECURITY.md, "Foreign
merges"): the links it returns are not followed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleanroom.errors import InternalError
from cleanroom.room.components import Scratch, compose, contract
from cleanroom.room.token_ids import TokenIds
from cleanroom.sql import statement

if TYPE_CHECKING:  # the backends implement it and import identity resolution
    from cleanroom.room.backends import Tables

# A party is a bit of an INTEGER bitmask (the sign bit left alone) and a party-token
# vertex is id * PARTY_SLOTS + party, an arithmetic id rather than a joined one.
MAX_PARTIES = 31
PARTY_SLOTS = 32
# The sign bit of an occurrence's party bit, and so of the dictionary's ``parties``:
# the token is in a row with another token (its party links it).
LINKED = -(2**31)
HOLDERS = 2**31 - 1  # the party bits of ``parties``


def party_bits(parties: Iterable[str]) -> dict[str, int]:
    """Each party's number, 0..n-1 in name order: its bit in the dictionary's ``parties``.

    The policy refuses more than MAX_PARTIES parties at load; this guards the callers
    that build a room without one (the benchmarks).
    """
    names = sorted(set(parties))
    if len(names) > MAX_PARTIES:
        raise InternalError(
            f"the foreign-merge bound tells at most {MAX_PARTIES} parties apart, not {len(names)}"
        )
    return {name: i for i, name in enumerate(names)}


@dataclass(frozen=True)
class ForeignLimit:
    """How many of party V's persons another party's rows may merge (SECURITY.md).

    V's persons here are the components of V's own links. A party whose rows
    join more than ``max(at_least, fraction × V's persons)`` of them has none
    of its links that join V's persons followed.
    """

    fraction: float
    at_least: int

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1 or self.at_least < 0:
            raise InternalError(f"invalid foreign-merge limit {self!r}")


def foreign_cut(
    engine: Tables,
    scratch: Scratch,
    parties: Mapping[str, int],
    ids: TokenIds,
    links: str,
    foreign: ForeignLimit,
) -> tuple[str, int]:
    """The links of parties that merge too many of another party's persons.

    For each party, its *own persons* are the components over its own links
    only (one contraction over (party, token) vertices, so parties never
    mix). A component of party X's links that holds tokens of k > 1 of party
    V's own persons merges k - 1 of them: a merge of V by X. When X's merges
    of V exceed ``max(at_least, floor(fraction × V's own persons))``, every
    link of X in a component that merges V's persons is cut. ``links`` are
    (u, v, party), the party by its number in ``parties``; returns the table
    of cut links, alike, and the merges they would have made.

    Nothing here joins a party's rows again: which parties hold a token is the
    dictionary's ``parties`` bitmask (from the GROUP BY that built it), and
    party P's vertex of token ``id`` is ``id * PARTY_SLOTS + P``, computed.
    Every token of a link is its supplier's, so a party's own edges are its
    links renumbered; a token in none of them is a person of its own there.
    """
    bits = ", ".join(f"({i}, CAST({1 << i} AS INTEGER))" for i in parties.values())
    slots = PARTY_SLOTS
    own_edges = scratch.name("own_edges0")  # links are distinct (u < v, party) already
    engine.materialize(
        own_edges,
        statement(
            f"SELECT u * {slots} + k.party AS u, v * {slots} + k.party AS v FROM {links} k"  # noqa: S608
        ),
    )
    maps, _ = contract(engine, scratch, own_edges)
    resolved = compose(engine, scratch, maps)
    if resolved is None:  # no party links two tokens: nobody merges anyone
        cut = scratch.name("foreign_cut")
        engine.materialize(cut, statement(f"SELECT u, v, party FROM {links} WHERE false"))  # noqa: S608
        return cut, 0
    # (party, id, label, grouped) of every token two parties or more hold and one of them
    # links (``LINKED``: it is in a row with another token there): only these can tie one
    # party's group to another's persons. ``grouped``: in one of the party's multi-token
    # persons; a token in none of its party's links is a person of its own there,
    # labelled by its vertex.
    shared = scratch.name("shared")
    engine.materialize(
        shared,
        statement(f"""
        SELECT p.party, t.id, coalesce(f.rep, t.id * {slots} + p.party) AS label,
               f.v IS NOT NULL AS grouped
        FROM (
            SELECT id, parties FROM {ids.table}
            WHERE bit_count(parties & {HOLDERS}) > 1 AND parties < 0
        ) t
        JOIN (VALUES {bits}) p(party, bit) ON (t.parties & p.bit) <> 0
        LEFT JOIN {resolved} f ON f.v = t.id * {slots} + p.party
        """),  # noqa: S608
    )
    # Only a group of X's with two tokens or more can reach two of V's persons (V holds
    # a token once, under one label), and nearly every such group reaches one: so the
    # join starts from X's multi-token groups only, a cheap min < max finds the few
    # that reach more, and only those count V's persons exactly.
    spans = scratch.name("spans")  # (supplier, victim, grp): X's group reaches > 1 of V's
    engine.materialize(
        spans,
        statement(f"""
        SELECT x.party AS supplier, v.party AS victim, x.label AS grp
        FROM {shared} x JOIN {shared} v ON v.id = x.id AND v.party <> x.party
        WHERE x.grouped
        GROUP BY x.party, v.party, x.label
        HAVING min(v.label) < max(v.label)
        """),  # noqa: S608
    )
    merging = scratch.name("merging")  # (supplier, victim, grp, n): X's group joins n of V's
    engine.materialize(
        merging,
        statement(f"""
        SELECT s.supplier, s.victim, s.grp, count(DISTINCT v.label) AS n
        FROM {spans} s
        JOIN {shared} x ON x.party = s.supplier AND x.label = s.grp
        JOIN {shared} v ON v.id = x.id AND v.party = s.victim
        GROUP BY s.supplier, s.victim, s.grp
        """),  # noqa: S608
    )
    scratch.drop(spans)
    scratch.drop(shared)
    # A party's persons: the tokens it holds (counted per set of holders, at most 2^n
    # groups), less those in its multi-token persons, plus those persons.
    raw = scratch.name("foreign_raw")  # (supplier, victim, merges, persons) over the limit
    engine.materialize(
        raw,
        statement(
            f"""
        SELECT supplier, victim, merges, persons FROM (
            SELECT m.supplier, m.victim, m.merges,
                   h.tokens - coalesce(g.tokens, 0) + coalesce(g.persons, 0) AS persons
            FROM (
                SELECT supplier, victim, sum(n - 1) AS merges FROM {merging}
                GROUP BY supplier, victim
            ) m JOIN (
                SELECT p.party, sum(c.tokens) AS tokens
                FROM (SELECT parties, count(*) AS tokens FROM {ids.table} GROUP BY parties) c
                JOIN (VALUES {bits}) p(party, bit) ON (c.parties & p.bit) <> 0
                GROUP BY p.party
            ) h ON h.party = m.victim LEFT JOIN (
                SELECT v % {slots} AS party, count(*) AS tokens, count(DISTINCT rep) AS persons
                FROM {resolved} GROUP BY v % {slots}
            ) g ON g.party = m.victim
        ) r
        WHERE merges > greatest($at_least, CAST(floor($fraction * persons) AS BIGINT))
        """,  # noqa: S608
            at_least=int(foreign.at_least),
            fraction=float(foreign.fraction),
        ),
    )
    # X's forged rows also make V's honest rows look like merges of X's (forged)
    # persons; of two parties over the limit for each other, only the one merging
    # the larger share of the other's persons is cut (both on a tie).
    over = scratch.name("foreign_over")
    engine.materialize(
        over,
        statement(f"""
        SELECT a.supplier, a.victim, a.merges FROM {raw} a
        LEFT JOIN {raw} b ON b.supplier = a.victim AND b.victim = a.supplier
        WHERE b.supplier IS NULL OR b.merges * a.persons <= a.merges * b.persons
        """),  # noqa: S608
    )
    scratch.drop(raw)
    merges = engine.scalar(statement(f"SELECT sum(merges) FROM {over}"))  # noqa: S608
    # A link's group is its first token's own person; a label is a vertex of its
    # party, so it names the supplier too.
    cut = scratch.name("foreign_cut")
    engine.materialize(
        cut,
        statement(f"""
        SELECT DISTINCT k.u, k.v, k.party FROM {links} k
        JOIN {resolved} f ON f.v = k.u * {slots} + k.party
        JOIN (
            SELECT DISTINCT g.grp FROM {merging} g
            JOIN {over} o ON o.supplier = g.supplier AND o.victim = g.victim
        ) c ON c.grp = f.rep
        """),  # noqa: S608
    )
    for table in (over, merging, resolved):
        scratch.drop(table)
    return cut, merges
