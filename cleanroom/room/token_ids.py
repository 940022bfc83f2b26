"""A match's token dictionary: every distinct token once, with a dense id and an 8-byte key.

Identity resolution works on integers: each distinct token of a match gets a
dense BIGINT ``id`` once (``row_number()`` over the distinct tokens; on Spark a
unique ``monotonically_increasing_id()``), and every join after that is on 8
bytes. What remains is finding a row's token in the dictionary. Joining the
rows to the dictionary on the 32-byte token is what made matching slow (the
hash table holds out-of-line strings and every probe compares 32 bytes: a
32-byte join measured ~3-5x an 8-byte one here), so the dictionary also keeps
``hkey``, a 64-bit hash of the token (the engine's ``key_hash`` function),
and rows find their token by its ``hkey``.

That is exact when no two distinct tokens of the dictionary share an ``hkey``,
which :func:`build` checks once per match. Room tokens are HMAC-SHA256
outputs, so two of 10^8 tokens share a 64-bit key with probability ~3·10^-4;
when they do, the whole match looks tokens up by the token itself (the
slower, equally exact path) — never a guess. Every row looked up is one the
dictionary was built from, so a row's token is always in it: a key that is
unique among the dictionary's tokens names that row's token and no other.

The dictionary is scratch of one match (dropped with the other intermediate
tables); the person map that :func:`cleanroom.room.identity.resolve` leaves
carries the same key, so the analysis tables are joined on it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cleanroom.sql import statement

if TYPE_CHECKING:
    from cleanroom.room.backends import Tables

HKEY = "hkey"  # `key` is a keyword in DuckDB's grammar


@dataclass(frozen=True)
class TokenIds:
    """A built dictionary: its table (tok, kind, hkey, id) and how rows find their token.

    ``tok`` is left out when the keys are unique and the caller needs no token back
    (:func:`build`'s ``with_tokens``).
    """

    table: str
    tokens: int
    by_key: bool  # every token's hkey is unique: look tokens up by hkey
    key_hash: str  # the engine's 64-bit hash function of a BLOB

    @property
    def column(self) -> str:
        """The dictionary column that :meth:`lookup` values are found in."""
        return HKEY if self.by_key else "tok"

    def lookup(self, token: str) -> str:
        """What SQL expression ``token`` is looked up by: its key, or itself if keys are shared.

        Computed where the rows are read, so only 8 bytes travel on to the joins.
        """
        return key_sql(self.key_hash, token) if self.by_key else token

    def on(self, alias: str, token: str) -> str:
        """Join condition: dictionary row ``alias`` is the token in SQL expression ``token``."""
        return f"{alias}.{self.column} = {self.lookup(token)}"


def key_sql(key_hash: str, token: str) -> str:
    """The lookup key of SQL expression ``token``: NULL for no token.

    Engines hash NULL to a number (DuckDB's ``hash(NULL)`` and Spark's
    ``xxhash64(NULL)`` are not NULL), which must never find a token.
    """
    return f"CASE WHEN {token} IS NOT NULL THEN {key_hash}({token}) END"


def build(
    engine: Tables,
    table: str,
    occurrences: str,
    *,
    with_parties: bool = False,
    with_tokens: bool = True,
) -> TokenIds:
    """Create ``table`` (tok, kind, hkey, id) from the (tok, kind, bit) rows of ``occurrences``.

    ``kind`` is a small integer (``identity.kind_code``: 0 for a type no limit
    names). Tokens are domain-separated by type, so a token has one kind;
    ``max()`` only makes the choice explicit should a column be declared with
    another type: then a limited type wins. The key is computed once per
    distinct token, after the GROUP BY.
    ``with_parties`` adds ``parties``, the OR of the token's rows' party bits:
    who holds it (and whether one links it, ``identity_foreign.LINKED``), from
    the same GROUP BY rather than a second pass: one more aggregate over 10^8
    occurrences costs 7 s, so both facts share one.

    Where the engine groups at most ``slice_rows`` occurrences at a time, the
    tokens are grouped in slices by their key (``key % slices``): a token's
    occurrences all fall in one slice, so each slice's groups are final. At
    5 × 20M rows (120M occurrences, 56M tokens) one GROUP BY spilled ~4 GB
    past a 6 GB memory limit and took 62 s; four slices, each a scan of the
    occurrences, fit in memory and took 45 s. Each slice's ids continue after
    the last slice's largest.

    ``with_tokens=False`` leaves ``tok`` out when the keys are unique, so the
    rest of the match runs on integers only: 56M tokens are ~2 GB the match's
    later tables would otherwise spill for. Should two tokens share a key, the
    dictionary is built again with them (every lookup then needs the token).
    """
    ids = _build(engine, table, occurrences, with_parties=with_parties, with_tokens=with_tokens)
    if ids.by_key or with_tokens:
        return ids
    engine.drop(table)
    return _build(engine, table, occurrences, with_parties=with_parties, with_tokens=True)


def _build(
    engine: Tables, table: str, occurrences: str, *, with_parties: bool, with_tokens: bool
) -> TokenIds:
    """One :func:`build` of the dictionary, with or without the tokens themselves."""
    key = engine.key_hash
    parties = ", bit_or(bit) AS parties" if with_parties else ""
    columns = ("tok, " if with_tokens else "") + ("kind, parties" if with_parties else "kind")
    slices = 1
    if engine.slice_rows is not None:
        rows = engine.scalar(statement(f"SELECT count(*) FROM ({occurrences}) o"))  # noqa: S608
        slices = max(1, -(-rows // engine.slice_rows))
    # The remainder taken twice: Spark's 64-bit hash is signed, and so is its ``%``.
    slice_of = f"({key}(tok) % {slices} + {slices}) % {slices}"
    for part in range(slices):
        chosen = f"WHERE {slice_of} = {part} " if slices > 1 else ""
        offset = engine.scalar(statement(f"SELECT max(id) FROM {table}")) if part else 0  # noqa: S608
        select = statement(
            f"SELECT {columns}, {key}(tok) AS {HKEY}, {offset} + {engine.row_id} AS id "  # noqa: S608
            f"FROM (SELECT tok, max(kind) AS kind{parties} FROM ({occurrences}) o "
            f"{chosen}GROUP BY tok) d"
        )
        if part:
            engine.append(table, select)
        else:
            engine.materialize(table, select)
    tokens = engine.scalar(statement(f"SELECT count(*) FROM {table}"))  # noqa: S608
    if engine.one_place:
        # Sorted, equal keys are neighbours: one sort of the 8-byte keys (3 s at 56M
        # tokens) instead of a GROUP BY of them (7-8 s), on one machine.
        check = (
            f"SELECT count(*) FROM (SELECT {HKEY}, lag({HKEY}) OVER (ORDER BY {HKEY}) "  # noqa: S608
            f"AS previous FROM {table}) d WHERE {HKEY} = previous"
        )
    else:
        check = (
            f"SELECT count(*) FROM (SELECT {HKEY} FROM {table} "  # noqa: S608
            f"GROUP BY {HKEY} HAVING count(*) > 1) c"
        )
    shared = engine.scalar(statement(check))
    return TokenIds(table, tokens, by_key=shared == 0, key_hash=key)
