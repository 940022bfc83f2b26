"""Tokens: keyed hashes of normalized identifiers.

``token = HMAC-SHA256(match key, id_type ‖ 0x00 ‖ normalized id)``. The key
makes tokens impossible to brute-force without it (Iranian mobiles are only
~10^9 values, an unkeyed hash falls in minutes); the type prefix separates the
domains, so a phone and an e-mail that happen to be equal strings never collide.
"""

from __future__ import annotations

import pyarrow as pa

from cleanroom.keyed_hash import KeyedHash, hmac_sha256
from cleanroom.keys import SymmetricKey
from cleanroom.spec import IdType


def domain(id_type: IdType) -> bytes:
    """The prefix that separates one identifier type's tokens from another's."""
    return id_type.value.encode() + b"\x00"


def token(match_key: SymmetricKey, id_type: IdType, normalized: str) -> bytes:
    """One token, the reference for the column path."""
    return hmac_sha256(match_key.secret, domain(id_type) + normalized.encode())


class Tokenizer:
    """Tokens for whole columns of normalized identifiers, on every core."""

    def __init__(self, match_key: SymmetricKey, *, workers: int | None = None) -> None:
        self._hash = KeyedHash(match_key.secret, workers=workers)

    def __call__(self, id_type: IdType, values: pa.Array) -> pa.Array:
        """NULL (an unusable identifier) stays NULL."""
        return self._hash(values, domain(id_type))

    def close(self) -> None:
        """Stop worker processes."""
        self._hash.close()
