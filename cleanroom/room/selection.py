"""Which rows, groups and pairs a per-person bound keeps: fixed per match generation.

A per-person bound (``k`` rows, ``g`` groups, ``m`` transition pairs) keeps a
random subset of a person's contributions. Drawn afresh for every query, that
choice is a second source of spread the released bound leaves out: asking the
same question twice gives two different exact answers, so repeated answers
disagree by more than their noise (issue 15, "no per-query re-draw"). Like the
analysis tables' ``_rank`` (drawn once at match time), every such choice is a
function of the match generation: a salted hash whose salt is this module's
per-generation secret, so asking again changes only the noise, and a new
generation draws anew.

The salt is an HMAC of the generation number under a key derived from the
room secret: nothing to store (the metadata store holds no secrets), the same
for every reader of one generation, different for the next, and unknowable
without the room's key files, so an analyst cannot predict or steer which of a
person's contributions are kept. It is never in a result, log or audit detail.
Which contributions a person keeps still depends only on that person's rows
and the salt (drawn independently of the data), so the sensitivity arguments
are those of a fresh draw.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

from cleanroom.room.warehouse import derive_key

SALT_BITS = 62  # a non-negative BIGINT in both DuckDB and Spark


class GenerationTables(dict[str, str]):
    """A generation's analysis tables (``party.dataset`` → table) and its secret selection salt.

    A ``dict`` so every caller of ``Prepared.execute`` keeps its signature; the
    salt is an attribute, never an item, so printing or serializing the
    mapping never shows it.
    """

    def __init__(self, tables: Mapping[str, str], salt: int) -> None:
        super().__init__(tables)
        self.salt = salt


def generation_salt(secret: bytes, generation: int) -> int:
    """The selection salt of ``generation``: a keyed hash of its number (see the module)."""
    key = derive_key(secret, "selection salt")
    digest = hmac.digest(key, generation.to_bytes(8, "big"), "sha256")
    return int.from_bytes(digest[:8], "big") >> (64 - SALT_BITS)


def salt_of(tables: Mapping[str, str]) -> int:
    """The salt the bounds of a query on ``tables`` choose by.

    The engine always passes a generation's :class:`GenerationTables`; a plain
    mapping (a benchmark or a test building tables by hand) has no generation,
    so it gets a fresh secret draw: never a guessable constant.
    """
    if isinstance(tables, GenerationTables):
        return tables.salt
    return secrets.randbits(SALT_BITS)
