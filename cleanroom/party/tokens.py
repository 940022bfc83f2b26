"""Tokens: keyed hashes of normalized identifiers.

``token = HMAC-SHA256(hex(match key), id_type ‖ 0x00 ‖ normalized id)``, with
the HMAC key spelled as ``cleanroom.contract.keyed_hash`` defines it (token version 2). The key
makes tokens impossible to brute-force without it (Iranian mobiles are only
~10^9 values, an unkeyed hash falls in minutes); the type prefix separates the
domains, so a phone and an e-mail that happen to be equal strings never collide.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from cleanroom.contract.keyed_hash import KeyedHash, digest_expr, hmac_sha256
from cleanroom.contract.keys import SymmetricKey
from cleanroom.contract.spec import IdType


def domain(id_type: IdType) -> bytes:
    """The prefix that separates one identifier type's tokens from another's."""
    return id_type.value.encode() + b"\x00"


def token(match_key: SymmetricKey, id_type: IdType, normalized: str) -> bytes:
    """One token, the reference for the column path."""
    return hmac_sha256(match_key.secret, domain(id_type) + normalized.encode())


def token_expr(match_key: SymmetricKey, id_type: IdType, normalized: pl.Expr) -> pl.Expr:
    """Tokens of a column of normalized identifiers, as a native Polars expression."""
    return digest_expr(match_key.secret, normalized, domain(id_type).decode("ascii"))


class Tokenizer:
    """Tokens for whole columns of normalized identifiers, with the native kernel."""

    def __init__(self, match_key: SymmetricKey) -> None:
        self._hash = KeyedHash(match_key.secret)

    def __call__(self, id_type: IdType, values: pa.Array) -> pa.Array:
        """NULL (an unusable identifier) stays NULL."""
        return self._hash(values, domain(id_type))
