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
reference it is tested against, byte for byte. The plugin answers in hex
text; :func:`to_tokens` decodes a whole column in one C call (``binascii``),
because Polars' own ``str.decode("hex")`` cost more than the hashing itself.
Keys never leave this process and never appear in a message, log or query
string.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac

import numpy as np
import polars as pl
import polars_hash
import pyarrow as pa
import pyarrow.compute as pc

TOKEN_TYPE = pa.binary(32)
TOKEN_VERSION = 2  # the bytes of a token changed: 1 = raw-byte HMAC key, 2 = hex-text key


def hmac_key(secret: bytes) -> bytes:
    """The HMAC key of a secret: its lower-case hex text, as ASCII bytes."""
    return secret.hex().encode("ascii")


def hmac_sha256(secret: bytes, message: bytes) -> bytes:
    """The reference implementation of the definition above."""
    return hmac.digest(hmac_key(secret), message, hashlib.sha256)


def digest_expr(secret: bytes, expr: pl.Expr, prefix: str = "") -> pl.Expr:
    """Polars expression: HMAC(secret, prefix ‖ m) as hex text for each m; NULL stays NULL.

    ``m`` may be text (hashed as its UTF-8 bytes) or binary; a prefix needs text.
    :func:`to_tokens` turns the collected column into tokens.
    """
    if prefix:
        expr = pl.concat_str([pl.lit(prefix), expr])
    return polars_hash.CryptographicHashingNameSpace(expr).hmac_sha256(key=secret.hex())


_HEX = 2 * TOKEN_TYPE.byte_width  # characters of one digest in hex


def to_tokens(hexed: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`digest_expr`'s hex text as the Arrow token type (32 bytes, fixed width).

    Every digest is 64 characters, so the column's non-null values, laid end to end
    in its data buffer, are one hex string: ``binascii`` decodes it in one call
    and the bytes are placed back at the rows that have a value.
    """
    if isinstance(hexed, pa.ChunkedArray):
        hexed = hexed.combine_chunks()
    hexed = hexed.cast(pa.large_string())
    rows = len(hexed)
    if not rows:
        return pa.array([], TOKEN_TYPE)
    raw = _decoded(hexed)
    if not hexed.null_count:
        return pa.Array.from_buffers(TOKEN_TYPE, rows, [None, pa.py_buffer(raw)])
    valid = pc.is_valid(hexed)
    token = np.dtype((np.void, TOKEN_TYPE.byte_width))  # numpy moves each token whole
    full = np.zeros(rows, token)
    full[pc.indices_nonzero(valid).to_numpy()] = np.frombuffer(raw, token)
    bitmap = valid.buffers()[1]
    return pa.Array.from_buffers(
        TOKEN_TYPE, rows, [bitmap, pa.py_buffer(full)], null_count=hexed.null_count
    )


def _decoded(hexed: pa.LargeStringArray) -> bytes:
    """The non-null values' hex text, laid end to end, decoded (refuses other widths).

    With every value 64 characters, the offsets span 64 per value unless a null
    slot holds text (Arrow allows it); then the values are copied out first.
    """
    width = pc.min_max(pc.binary_length(hexed)).as_py()
    if width["min"] is not None and width != {"min": _HEX, "max": _HEX}:
        raise ValueError("not a column of HMAC-SHA256 hex digests")
    rows = len(hexed)
    offsets = np.frombuffer(hexed.buffers()[1], np.int64, rows + 1, 8 * hexed.offset)
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start != _HEX * (rows - hexed.null_count):
        return _decoded(pc.drop_null(hexed))
    text = hexed.buffers()[2]
    return binascii.a2b_hex(memoryview(text)[start:end] if text is not None else b"")


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
