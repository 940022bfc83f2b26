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

    @classmethod
    def of(cls, tables: Mapping[str, str], secret: bytes, generation: int) -> GenerationTables:
        """Generation ``generation``'s tables with its salt: a keyed hash of its number."""
        key = derive_key(secret, "selection salt")
        digest = hmac.digest(key, generation.to_bytes(8, "big"), "sha256")
        return cls(tables, int.from_bytes(digest[:8], "big") >> (64 - SALT_BITS))


def salt(tables: Mapping[str, str] | None = None) -> int:
    """The room's one source of salts for random choices, each fixed per match generation.

    What the salt fixes: which of a person's rows, groups or transition pairs
    a per-person bound keeps (the query compiler, ``analyses/transitions``),
    and how identity resolution picks each round's representatives and numbers
    the persons (``identity.py``). Asked again on one generation, a query
    keeps the same contributions, so only the noise changes (issue 15, "no
    per-query re-draw"); a new generation draws anew.

    ``tables`` of a live generation (:class:`GenerationTables`) give that
    generation's salt. Without them it is a fresh secret draw from the OS:
    identity resolution draws once per round and once for the numbering,
    during the one match that makes a generation; a benchmark or a test
    building tables by hand has no generation. Never a guessable constant.
    """
    if isinstance(tables, GenerationTables):
        return tables.salt
    return secrets.randbits(SALT_BITS)
