"""Identity resolution: one room-internal ``person`` per connected set of tokens.

Two tokens belong to the same person when they appear in one row of any
party's table, directly or through a chain of such rows (a phone seen with an
e-mail at one party and with a card at another joins all three). That is the
connected-components problem on a graph of up to ~10^8 nodes, so it runs
set-based inside DuckDB; Python only drives a logarithmic number of rounds.

Steps:

1. A dictionary (``token_ids.py``) gives every distinct token a dense BIGINT
   id once, and rows find their tokens' ids by an 8-byte key, so no join of
   the match compares 32-byte blobs; the tokens come back only in the person
   map, from the dictionary, at the end. Edges are built in id space, one
   star per row (first token to each other token), deduplicated.
2. The components of that graph, by randomised contraction in SQL
   (``components.py``: a logarithmic number of rounds, each a few joins).
3. Every token gets the id of a representative of its component.
4. Persons are numbered 1..N by a fresh random permutation of the
   components, so ids are dense, collision-free, carry nothing derivable from
   tokens and change on every re-match.

Identity poisoning: a party holds the match key, so it can tokenize anyone's
phone and tie it to anything in its rows. With ``limits`` (the policy's
maximum identifiers of each type one person may hold, SECURITY.md), two
steps keep one party's rows from merging other parties' persons; both are
decided by counts only, so the same input always gives the same persons:

* *hubs*, before step 2: a token seen (by all parties together) with more
  distinct identifiers of one type than a person may hold cannot belong to
  one person with all of them, so none of its links is followed (the token
  stays a person of its own);
* *over-limit groups*, after step 3: a component that still holds more
  identifiers of a type than the limit (a chain of modest links) is not
  formed; each of its tokens stays a person of its own.

With ``foreign`` (the policy's ``max_foreign_merges``), a step before both
bounds how many of one party's *own persons* (components of its own rows'
links) another party's rows may join; a party over it has none of its links
that join them followed (``identity_foreign.py``). The per-type limits bound
what one forged identifier can do; this bounds how many a party can forge.

A link not followed is *withheld*; how many, and per supplying party how
many of its links, is returned (:class:`Withheld`, counts only).

Every step is one SELECT whose result becomes the table the next step reads,
written once in DuckDB SQL with ``?`` parameters and run by the backend's
:class:`~cleanroom.room.backends.Tables`: the warehouse's (``backends/duckdb.py``,
temporary tables), or Spark's (``backends/spark_identity.py``: each result a
checkpointed temporary view, the SQL transpiled by ``backends/dialect.py``).
Both compute the same components; only the random labels (and the salted
hashes choosing them) differ.

Table and column names come from the room, never from a request, but they are
still validated and quoted; data values only ever travel as bound parameters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cleanroom.errors import InternalError
from cleanroom.room import selection, token_ids
from cleanroom.room.components import Scratch, compose, contract, count_rows
from cleanroom.room.identity_foreign import LINKED, ForeignLimit, foreign_cut, party_bits
from cleanroom.room.token_ids import HKEY, key_sql
from cleanroom.sql import bigint, name_sql, quote_column, quote_table, statement

if TYPE_CHECKING:  # the backends implement it and import this module
    from cleanroom.room.backends import Tables

RANK = "_rank"  # per-person random row order in every analysis table (see person_table)


@dataclass(frozen=True)
class TokenSource:
    """A stored party table and the columns of it that hold room tokens.

    ``kinds`` gives a token column's identifier type (``phone``, ...), which
    the per-type limits count; a column without one is never limited.
    ``party`` names who supplied the rows, to count its withheld links.
    """

    table: str
    token_columns: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    party: str = ""


@dataclass(frozen=True)
class Withheld:
    """Links a match did not follow because of the limits: counts only, never tokens.

    ``hubs``: tokens seen with more identifiers of one type than a person may
    hold; ``split_groups`` / ``split_tokens``: components over a per-type
    limit that were not formed, and the tokens in them; ``links``: distinct
    token pairs seen in one row that did not end up in one person;
    ``by_party``: the same, per party that supplied them in its rows;
    ``foreign_merges``: merges of other parties' persons not made because
    their supplier went over the foreign-merge limit for that party.
    """

    hubs: int = 0
    split_groups: int = 0
    split_tokens: int = 0
    links: int = 0
    by_party: dict[str, int] = field(default_factory=dict)
    foreign_merges: int = 0

    def as_dict(self) -> dict[str, object]:
        """Plain JSON data, for the match record and the audit trail."""
        return {
            "hubs": self.hubs,
            "split_groups": self.split_groups,
            "split_tokens": self.split_tokens,
            "links": self.links,
            "by_party": dict(sorted(self.by_party.items())),
            "foreign_merges": self.foreign_merges,
        }


@dataclass(frozen=True)
class IdentityStats:
    """What a match did, for the audit log, progress display and benchmarks."""

    tokens: int
    edges: int
    persons: int
    iterations: int
    seconds: dict[str, float]
    withheld: Withheld = field(default_factory=Withheld)


def _refuse_existing(engine: Tables, name: str) -> None:
    """Refuse up front to overwrite: a match must never replace a table in place."""
    if engine.exists(name):
        raise InternalError(f"table {name!r} already exists")


def _check_source(engine: Tables, source: TokenSource) -> None:
    """Fail before any work if a source is not what the room thinks it stored."""
    if not source.token_columns:
        raise InternalError(f"source {source.table!r} declares no token column")
    lowered = [c.lower() for c in source.token_columns]
    if len(set(lowered)) != len(lowered):
        raise InternalError(f"source {source.table!r} repeats a token column")
    types = engine.column_types(source.table)
    for column in source.token_columns:
        quote_column(column)
        kind = types.get(column.lower())
        if kind is None:
            raise InternalError(f"source {source.table!r} has no column {column!r}")
        if kind != "BLOB":
            raise InternalError(f"token column {source.table}.{column} is {kind}, not BLOB")


def kind_code(kind: str, limits: Mapping[str, int]) -> int:
    """The small integer the match carries for identifier type ``kind``.

    Only limited types need telling apart, so they are numbered 1, 2, … in
    name order and every other type is 0. An integer, not the name: grouping
    150M token occurrences with a text column beside them took 48 s at 5 ×
    20M rows, with this code 34 s, and the limits' own groupings gain alike.
    """
    return sorted(limits).index(kind) + 1 if kind in limits else 0


def _occurrences(
    source: TokenSource, bits: Mapping[str, int], limits: Mapping[str, int]
) -> list[str]:
    """Every token of a source's rows, its kind's code and its party's bit (``party_bits``).

    The bit carries :data:`~cleanroom.room.identity_foreign.LINKED` too when the
    row holds another token (the token is in one of its party's links): the
    foreign-merge bound looks only at tokens some party links.
    """
    table = quote_table(source.table)
    bit = 1 << bits[source.party]
    selects = []
    for c in source.token_columns:
        others = [quote_column(o) for o in source.token_columns if o != c]
        flagged = (
            f"CASE WHEN coalesce({', '.join(others)}) IS NOT NULL "
            f"THEN CAST({bit | LINKED} AS INTEGER) ELSE CAST({bit} AS INTEGER) END"
            if others
            else f"CAST({bit} AS INTEGER)"
        )
        selects.append(
            f"SELECT {quote_column(c)} AS tok, "  # noqa: S608
            f"CAST({kind_code(source.kinds.get(c, ''), limits)} AS SMALLINT) AS kind, "
            f"{flagged} AS bit FROM {table} WHERE {quote_column(c)} IS NOT NULL"
        )
    return selects


def _star_pairs(source: TokenSource, numbers: Mapping[str, int]) -> list[str]:
    """Token pairs of each row: its first token joined to each later one.

    A star spans exactly the row's tokens, so it links them all with k-1
    edges instead of k(k-1)/2.
    """
    table = quote_table(source.table)
    columns = [quote_column(c) for c in source.token_columns]
    party = f"CAST({numbers[source.party]} AS SMALLINT)"  # its number (``party_bits``)
    selects = []
    for j in range(1, len(columns)):
        anchor = f"coalesce({', '.join(columns[:j])})"
        selects.append(
            f"SELECT {anchor} AS a, {columns[j]} AS b, {party} AS party FROM {table} "  # noqa: S608
            f"WHERE {columns[j]} IS NOT NULL AND {anchor} IS NOT NULL"
        )
    return selects


def _limit_of(kind: str, limits: Mapping[str, int]) -> str:
    """SQL for the limit of the type coded in column ``kind``; NULL (no limit) for others."""
    arms = []
    for name, most in sorted(limits.items()):
        if isinstance(most, bool) or not isinstance(most, int) or most < 1:
            raise InternalError(f"invalid identifier limit {name}={most!r}")
        name_sql(name)  # a type is named as the room names things, or refused here
        arms.append(f"WHEN {kind_code(name, limits)} THEN {most}")
    return f"CASE {kind} {' '.join(arms)} END"


def hubs_sql(edges: str, limits: Mapping[str, int]) -> str:
    """Tokens with more distinct neighbours of some type than a person may hold of it.

    ``edges`` (u, v, ku, kv): distinct links with their tokens' kinds, so no
    join with the 10^8-token dictionary is needed to learn a neighbour's kind.
    """
    return f"""
        SELECT DISTINCT x AS id FROM (
            SELECT x, kind, count(*) AS n
            FROM (SELECT u AS x, kv AS kind FROM {edges}
                  UNION ALL SELECT v AS x, ku AS kind FROM {edges}) a
            GROUP BY x, kind
        ) d
        WHERE n > {_limit_of("kind", limits)}
        """  # noqa: S608


def over_limit_sql(labelled: str, limits: Mapping[str, int]) -> str:
    """Component labels holding more tokens of some type than a person may hold."""
    return f"""
        SELECT DISTINCT label FROM (
            SELECT label, kind, count(*) AS n FROM {labelled} WHERE NOT alone GROUP BY label, kind
        ) c
        WHERE n > {_limit_of("kind", limits)}
        """  # noqa: S608


def resolve(
    engine: Tables,
    sources: Sequence[TokenSource],
    *,
    person_map: str,
    limits: Mapping[str, int] | None = None,
    foreign: ForeignLimit | None = None,
    keep_tokens: bool = True,
) -> IdentityStats:
    """Create table ``person_map`` (token BLOB, person BIGINT NOT NULL, hkey).

    ``hkey`` is the token's 8-byte lookup key (``cleanroom.room.token_ids``),
    NULL in every row when two of the match's tokens share a key; then
    :func:`person_table` finds rows' persons by the token itself. The tokens
    are mapped back from their ids only where needed: with ``keep_tokens=False``
    the map is (person, hkey) — enough for :func:`person_table` — unless the
    keys were shared, when the tokens are kept after all.

    ``engine`` runs the statements (the backend's :class:`Tables`). ``limits``
    maps an identifier type to the most tokens of it one person may hold
    (module docstring); without it every co-occurrence links. ``foreign``
    bounds how many of one party's persons another party's rows may merge
    (``identity_foreign.py``); without it any party may merge any. ``token`` is
    unique by construction (it comes from a GROUP BY); no index is declared
    because an ART index over 10^8 32-byte keys costs gigabytes and the hash
    joins that read this table would not use it. The table is filled by one
    statement at the end and dropped on any failure, so no partial map
    survives an error.
    """
    quote_table(person_map)
    if not sources:
        raise InternalError("identity resolution needs at least one source")
    for source in sources:
        _check_source(engine, source)
    _refuse_existing(engine, person_map)
    limits = dict(limits or {})
    _limit_of("kind", limits)  # validate before any work
    seconds: dict[str, float] = {}
    scratch = Scratch(engine)
    created = False
    try:
        with engine.bulk():
            started = time.perf_counter()
            parties = party_bits(s.party for s in sources)
            occurrences = " UNION ALL ".join(
                q for s in sources for q in _occurrences(s, parties, limits)
            )
            ids = token_ids.build(
                engine,
                scratch.name("tokens"),
                occurrences,
                with_parties=foreign is not None,
                with_tokens=keep_tokens,
            )
            tokens, token_count = ids.table, ids.tokens
            seconds["tokens"] = time.perf_counter() - started

            started = time.perf_counter()
            # (u, v, party, ku, kv): who (by number) supplied which link, and its tokens' kinds
            links = scratch.name("links")
            edges = scratch.name("edges0")
            pairs = [q for s in sources for q in _star_pairs(s, parties)]
            if pairs:
                engine.materialize(
                    links,
                    statement(f"""
                    SELECT DISTINCT least(ta.id, tb.id) AS u, greatest(ta.id, tb.id) AS v,
                           p.party,
                           CASE WHEN ta.id < tb.id THEN ta.kind ELSE tb.kind END AS ku,
                           CASE WHEN ta.id < tb.id THEN tb.kind ELSE ta.kind END AS kv
                    FROM (
                        SELECT {ids.lookup("a")} AS a, {ids.lookup("b")} AS b, party
                        FROM ({" UNION ALL ".join(pairs)}) r
                    ) p
                    JOIN {tokens} ta ON ta.{ids.column} = p.a
                    JOIN {tokens} tb ON tb.{ids.column} = p.b
                    WHERE ta.id <> tb.id
                    """),  # noqa: S608
                )
            else:
                engine.materialize(
                    links,
                    statement(
                        "SELECT id AS u, id AS v, CAST(NULL AS SMALLINT) AS party, "  # noqa: S608
                        "kind AS ku, kind AS kv "
                        f"FROM {tokens} WHERE id <> id"
                    ),
                )
            hubs = foreign_merges = 0
            kept = links
            if foreign is not None:
                at = time.perf_counter()
                cut, foreign_merges = foreign_cut(engine, scratch, parties, ids, links, foreign)
                seconds["foreign_merges"] = time.perf_counter() - at  # part of "edges"
                if count_rows(engine, cut):
                    kept = scratch.name("kept")
                    engine.materialize(
                        kept,
                        statement(f"""
                        SELECT k.u, k.v, k.party FROM {links} k
                        LEFT JOIN {cut} c ON c.u = k.u AND c.v = k.v AND c.party = k.party
                        WHERE c.u IS NULL
                        """),  # noqa: S608
                    )
                scratch.drop(cut)
            if limits:
                seen = scratch.name("seen")
                engine.materialize(
                    seen,
                    statement(f"SELECT DISTINCT u, v, ku, kv FROM {links}"),  # noqa: S608
                )
                hub_table = scratch.name("hubs")
                engine.materialize(hub_table, statement(hubs_sql(seen, limits)))
                hubs = count_rows(engine, hub_table)
                # Nothing cut: the links' distinct pairs are ``seen``'s (a token has one
                # kind), so no second DISTINCT over every party's links.
                pairs_of = (
                    f"SELECT u, v FROM {seen}"  # noqa: S608
                    if kept == links
                    else f"SELECT DISTINCT u, v FROM {kept}"  # noqa: S608
                )
                engine.materialize(
                    edges,
                    statement(f"""
                    SELECT e.u, e.v FROM ({pairs_of}) e
                    LEFT JOIN {hub_table} hu ON hu.id = e.u
                    LEFT JOIN {hub_table} hv ON hv.id = e.v
                    WHERE hu.id IS NULL AND hv.id IS NULL
                    """),  # noqa: S608
                )
                scratch.drop(seen)
                scratch.drop(hub_table)
            else:
                engine.materialize(edges, statement(f"SELECT DISTINCT u, v FROM {kept}"))  # noqa: S608
            if kept != links:
                scratch.drop(kept)
            edge_count = count_rows(engine, edges)
            seconds["edges"] = time.perf_counter() - started

            started = time.perf_counter()
            maps, rounds = contract(engine, scratch, edges)
            resolved = compose(engine, scratch, maps)
            seconds["components"] = time.perf_counter() - started

            started = time.perf_counter()
            # Ids and keys only from here on: the tokens come back from the dictionary
            # at the end, if at all.
            labelled = scratch.name("labelled")
            if resolved is None:
                engine.materialize(
                    labelled,
                    statement(f"SELECT id, kind, {HKEY}, id AS label, true AS alone FROM {tokens}"),  # noqa: S608
                )
            else:
                engine.materialize(
                    labelled,
                    statement(
                        f"SELECT t.id, t.kind, t.{HKEY}, coalesce(f.rep, t.id) AS label, "  # noqa: S608
                        f"f.v IS NULL AS alone FROM {tokens} t LEFT JOIN {resolved} f ON f.v = t.id"
                    ),
                )
                scratch.drop(resolved)
            with_tokens = keep_tokens or not ids.by_key
            if not with_tokens:
                scratch.drop(tokens)
            split_groups = split_tokens = 0
            if limits and resolved is not None:
                over = scratch.name("over")
                engine.materialize(over, statement(over_limit_sql(labelled, limits)))
                split_groups = count_rows(engine, over)
                if split_groups:
                    split_tokens = engine.scalar(
                        statement(
                            f"SELECT count(*) FROM {labelled} l JOIN {over} o ON o.label = l.label"  # noqa: S608
                        )
                    )
                    # A token of a group not formed is its own component; its id is
                    # never another component's label (labels are members' ids).
                    final = scratch.name("final")
                    engine.materialize(
                        final,
                        statement(f"""
                        SELECT l.id, l.kind, l.{HKEY},
                               CASE WHEN o.label IS NULL THEN l.label ELSE l.id END AS label,
                               (l.alone OR o.label IS NOT NULL) AS alone
                        FROM {labelled} l LEFT JOIN {over} o ON o.label = l.label
                        """),  # noqa: S608
                    )
                    scratch.drop(labelled)
                    labelled = final
                scratch.drop(over)
            withheld = Withheld(
                hubs=hubs,
                split_groups=split_groups,
                split_tokens=split_tokens,
                foreign_merges=foreign_merges,
            )
            if hubs or split_groups or foreign_merges:
                withheld = _withheld_links(engine, scratch, links, labelled, parties, withheld)
            scratch.drop(links)
            seconds["limits"] = time.perf_counter() - started

            started = time.perf_counter()
            # Components are numbered 1..N in the order of their labels' salted hash:
            # a dense rank over the tokens, so no DISTINCT of the labels and no join
            # back to them (at 5 x 20M rows 8.5-10.5 s against 11.4-11.9 s). Ties on
            # the hash fall back to the label: still a permutation.
            created = True
            engine.create(
                person_map,
                statement(
                    f"""
                SELECT {"t.tok AS token, " if with_tokens else ""}
                       dense_rank() OVER (ORDER BY hash(l.label, $salt), l.label) AS person,
                       CASE WHEN $by_key THEN l.{HKEY} END AS {HKEY}
                FROM {labelled} l
                {f"JOIN {tokens} t ON t.id = l.id" if with_tokens else ""}
                """,  # noqa: S608
                    salt=bigint(selection.salt()),  # drawn once per match
                    by_key=ids.by_key,
                ),
                # Random blobs do not compress; DuckDB would still spend most of the
                # write trying FSST on them (3x slower here), so say so up front.
                schema=("token BLOB USING COMPRESSION uncompressed, " if with_tokens else "")
                + f"person BIGINT NOT NULL, {HKEY} UBIGINT",
            )
            persons = engine.scalar(statement(f"SELECT max(person) FROM {quote_table(person_map)}"))  # noqa: S608
            seconds["person_map"] = time.perf_counter() - started
    except BaseException:
        if created:
            engine.drop(person_map)
        raise
    finally:
        scratch.drop_all()
    return IdentityStats(
        tokens=token_count,
        edges=edge_count,
        persons=persons,
        iterations=rounds,
        seconds=seconds,
        withheld=withheld,
    )


def _withheld_links(
    engine: Tables,
    scratch: Scratch,
    links: str,
    labelled: str,
    parties: Mapping[str, int],
    found: Withheld,
) -> Withheld:
    """Count the links whose two tokens did not end up in one person, per supplier.

    ``parties``: each supplier's number, as the links carry it (``party_bits``).
    """
    cut = scratch.name("withheld")
    engine.materialize(
        cut,
        statement(f"""
        SELECT k.u, k.v, k.party FROM {links} k
        JOIN {labelled} a ON a.id = k.u
        JOIN {labelled} b ON b.id = k.v
        WHERE a.label <> b.label
        """),  # noqa: S608
    )
    total = engine.scalar(statement(f"SELECT count(*) FROM (SELECT DISTINCT u, v FROM {cut}) d"))  # noqa: S608
    by_party: dict[str, int] = {}
    for party, number in sorted(parties.items()):
        count = engine.scalar(
            statement(f"SELECT count(*) FROM {cut} WHERE party = $number", number=number)  # noqa: S608
        )
        if count:
            by_party[party] = count
    scratch.drop(cut)
    return Withheld(
        hubs=found.hubs,
        split_groups=found.split_groups,
        split_tokens=found.split_tokens,
        links=total,
        by_party=by_party,
        foreign_merges=found.foreign_merges,
    )


def person_table(
    engine: Tables,
    source: TokenSource,
    *,
    person_map: str,
    keep_columns: Sequence[str],
    out: str,
    suppressed: str | None = None,
) -> int:
    """Create table ``out`` (person, *keep_columns*, ``_rank``); return its rows.

    ``suppressed``: a table (token, person) of opted-out customers
    (``cleanroom.room.suppression``); their persons' rows, and every row
    holding one of their tokens, are left out.

    This is what analysts see, so no token may reach it: token columns and
    any BLOB column are refused as keep columns. The tokens of a row belong
    to one person unless a limit withheld one of its links; either way the
    row's first token decides its person; a row with no token has no person
    and is left out.

    ``source`` must be one of the sources ``person_map`` was resolved from:
    rows find their person by the 8-byte key of their first token, which is
    unique among the map's tokens (``cleanroom.room.token_ids``), so every
    token the map holds is found exactly — a token it never saw could meet
    another's key. When the map's keys are NULL (two tokens shared a key),
    rows are joined on the token itself (the map then always holds it).

    ``_rank`` numbers each person's rows 1, 2, … in a random order drawn once
    here, so the query engine bounds rows per person with ``_rank <= k``, a
    filter, instead of a window over every row at every query. Which rows a
    person keeps depends only on that person's rows and fresh randomness, so
    the bound's sensitivity argument is unchanged. Dataset columns cannot be
    called ``_rank`` (names start with a letter).
    """
    _check_source(engine, source)
    _refuse_existing(engine, out)
    table = quote_table(source.table)
    quote_table(out)
    mapping = quote_table(person_map)
    types = engine.column_types(source.table)
    tokens = {c.lower() for c in source.token_columns}
    seen: set[str] = set()
    for column in keep_columns:
        quote_column(column)
        key = column.lower()
        if key in seen:
            raise InternalError(f"keep column {column!r} repeated")
        seen.add(key)
        if key in ("person", RANK):
            raise InternalError(f"keep column {column!r} would shadow an engine column")
        if key in tokens:
            raise InternalError(f"keep column {column!r} is a token column")
        kind = types.get(key)
        if kind is None:
            raise InternalError(f"source {source.table!r} has no column {column!r}")
        if kind == "BLOB":
            raise InternalError(f"keep column {column!r} is a BLOB and may hold tokens")
    anchor = f"coalesce({', '.join('s.' + quote_column(c) for c in source.token_columns)})"
    by_token = "token" in engine.column_types(person_map) and engine.scalar(
        statement(f"SELECT count(*) FROM (SELECT 1 FROM {mapping} WHERE {HKEY} IS NULL LIMIT 1) n")  # noqa: S608
    )
    found = f"m.token = {anchor}" if by_token else f"m.{HKEY} = {key_sql(engine.key_hash, anchor)}"
    kept = "".join(f", s.{quote_column(c)}" for c in keep_columns)
    excluded = ""
    if suppressed is not None:
        from cleanroom.room.suppression import exclusion_sql

        excluded = exclusion_sql(suppressed, "s", "m.person", list(source.token_columns))
    created = False
    try:
        with engine.bulk():
            created = True
            engine.create(
                out,
                statement(f"""
                SELECT m.person{kept},
                       row_number() OVER (PARTITION BY m.person ORDER BY random()) AS {RANK}
                FROM {table} s JOIN {mapping} m ON {found}
                {excluded}
                """),  # noqa: S608
                not_null="person",
            )
            return count_rows(engine, quote_table(out))
    except BaseException:
        if created:
            engine.drop(out)
        raise
