"""HMAC-SHA256 over Arrow columns: the hot loop of tokenizing and re-keying.

HMAC is computed from precomputed key-pad states (RFC 2104): per message one
``copy``/``update``/``digest`` of the inner state and one of the outer, which
is about 1M messages per second per core with OpenSSL's SHA-256 here, twice
what DuckDB's SQL ``sha256`` reaches (see BENCHMARKS.md). Large columns are
split across worker processes. Every result is checked against Python's
``hmac`` in the tests, byte for byte; keys never leave this machine's
processes and never appear in a message, log or query string.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

TOKEN_TYPE = pa.binary(32)
PARALLEL_FROM = 200_000  # below this, starting workers costs more than it saves


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The reference implementation."""
    return hmac.digest(key, message, hashlib.sha256)


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def digest_array(key: bytes, prefix: bytes, messages: pa.Array) -> pa.Array:
    """HMAC(key, prefix ‖ m) for each m (bytes, or text as UTF-8); NULL stays NULL."""
    ipad, opad = _pads(key)
    inner0 = hashlib.sha256(ipad)
    inner0.update(prefix)
    inner_copy, outer_copy = inner0.copy, hashlib.sha256(opad).copy
    if not pa.types.is_binary(messages.type) and not pa.types.is_fixed_size_binary(messages.type):
        messages = messages.cast(pa.binary())
    zero = bytes(32)
    digests: list[bytes] = []
    append = digests.append
    for value in messages.to_pylist():
        if value is None:
            append(zero)
            continue
        inner = inner_copy()
        inner.update(value)
        outer = outer_copy()
        outer.update(inner.digest())
        append(outer.digest())
    validity = pc.is_valid(messages).buffers()[1] if messages.null_count else None
    return pa.Array.from_buffers(
        TOKEN_TYPE, len(messages), [validity, pa.py_buffer(b"".join(digests))]
    )


class KeyedHash:
    """HMAC-SHA256 under one key, over Arrow columns, on every core for large columns."""

    def __init__(self, key: bytes, *, workers: int | None = None) -> None:
        self._key = key
        self._workers = workers or os.cpu_count() or 1
        self._pool: Executor | None = None

    def __repr__(self) -> str:
        return f"KeyedHash(workers={self._workers})"

    def __call__(self, messages: pa.Array, prefix: bytes = b"") -> pa.Array:
        """HMAC(key, prefix ‖ m) for each m; NULL stays NULL."""
        n = len(messages)
        if self._workers == 1 or n < PARALLEL_FROM:
            return digest_array(self._key, prefix, messages)
        if self._pool is None:
            # spawn, not fork: the parent runs DuckDB and Arrow threads.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        step = -(-n // self._workers)
        parts = [pa.concat_arrays([messages.slice(i, step)]) for i in range(0, n, step)]
        futures = [self._pool.submit(digest_array, self._key, prefix, p) for p in parts]
        return pa.concat_arrays([f.result() for f in futures])

    def close(self) -> None:
        """Stop the workers, if any were started."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> KeyedHash:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
