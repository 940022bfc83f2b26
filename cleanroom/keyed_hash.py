"""HMAC-SHA256, both one value at a time and set-based in DuckDB.

DuckDB has no ``hmac()``; HMAC is two SHA-256 calls over the key pads
(RFC 2104), which DuckDB runs on every core and which matches Python's
``hmac`` byte for byte (tested). The pads travel as bound parameters, never as
SQL text, so a key never appears in a query string or a log.
"""

from __future__ import annotations

import hashlib
import hmac

import duckdb
import pyarrow as pa

TOKEN_TYPE = pa.binary(32)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The reference implementation."""
    return hmac.digest(key, message, hashlib.sha256)


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sql(expr: str) -> str:
    """SQL for HMAC(key, $prefix ‖ expr); bind :func:`hmac_params` alongside."""
    return f"unhex(sha256($opad || unhex(sha256($ipad || $prefix || {expr}))))"


def hmac_params(key: bytes, prefix: bytes = b"") -> dict[str, bytes]:
    """The bound parameters :func:`hmac_sql` expects."""
    ipad, opad = _pads(key)
    return {"ipad": ipad, "opad": opad, "prefix": prefix}


def hmac_column(
    con: duckdb.DuckDBPyConnection, key: bytes, messages: pa.Array, *, prefix: bytes = b""
) -> pa.Array:
    """HMAC(key, prefix ‖ m) for every non-null m (bytes or UTF-8 text); NULL stays NULL."""
    text = pa.types.is_string(messages.type) or pa.types.is_large_string(messages.type)
    t = pa.table({"m": messages})  # noqa: F841 - read by DuckDB's replacement scan
    result = con.sql(
        f"SELECT {hmac_sql('encode(m)' if text else 'm')} AS h FROM t",
        params=hmac_params(key, prefix),
    ).to_arrow_table()
    return result.column("h").combine_chunks().cast(TOKEN_TYPE)
