"""HMAC-SHA256 over columns: the one definition of keyed hashing in tokenizing and re-keying.

**The definition (token version 2).** A cleanroom secret is 32 random bytes;
its *HMAC key* is the ASCII text of those bytes in lower-case hexadecimal (64
bytes), and ``digest(secret, m) = HMAC-SHA256(hex(secret), m)`` (RFC 2104).
The hex text carries the same 256 bits as the raw bytes and, at 64 bytes, fits
SHA-256's block without being hashed first. Version 1 keyed HMAC with the raw
bytes; the text form lets the native kernel below (whose key is a UTF-8
string) compute exactly these bytes, so version 1 bundles are refused at
ingest (``TOKEN_VERSION`` travels in every bundle header).

**The kernel.** The Polars plugin ``polars-hash`` (Rust, vectorized, on
Polars' thread pool) computes ``chash.hmac_sha256`` several times faster than
a Python loop over ``hmac.digest`` (BENCHMARKS.md); :func:`hmac_sha256` is the
reference it is tested against, byte for byte. Keys never leave this
process and never appear in a message, log or query string.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
import polars_hash
import pyarrow as pa

TOKEN_TYPE = pa.binary(32)
TOKEN_VERSION = 2  # the bytes of a token changed: 1 = raw-byte HMAC key, 2 = hex-text key


def hmac_key(secret: bytes) -> bytes:
    """The HMAC key of a secret: its lower-case hex text, as ASCII bytes."""
    return secret.hex().encode("ascii")


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    """The reference implementation of the definition above."""
    return hmac.digest(hmac_key(secret), message, hashlib.sha256)


def digest_expr(secret: bytes, expr: pl.Expr, prefix: str = "") -> pl.Expr:
    """Polars expression: HMAC(secret, prefix ‖ m) as 32 bytes for each m; NULL stays NULL.

    ``m`` may be text (hashed as its UTF-8 bytes) or binary; a prefix needs text.
    """
    if prefix:
        expr = pl.concat_str([pl.lit(prefix), expr])
    # The plugin returns hex text; decoding it back to bytes is cheap and native too.
    hexed = polars_hash.CryptographicHashingNameSpace(expr).hmac_sha256(key=secret.hex())
    return hexed.str.decode("hex")


def to_tokens(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Polars' binary output as the Arrow token type (32 bytes, fixed width)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.cast(TOKEN_TYPE)


class KeyedHash:
    """HMAC-SHA256 under one secret, over Arrow columns, with the native kernel."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "KeyedHash()"

    def __call__(self, messages: pa.Array, prefix: bytes = b"") -> pa.Array:
        """HMAC(secret, prefix ‖ m) for each m; NULL stays NULL."""
        frame = pl.DataFrame({"m": pl.from_arrow(messages)})
        out = frame.select(digest_expr(self._secret, pl.col("m"), prefix.decode("utf-8")))
        return to_tokens(out.to_arrow().column(0))
