import hashlib
import hmac

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom import keyed_hash
from cleanroom.keyed_hash import KeyedHash, digest_array


@settings(max_examples=150, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=100),
    prefix=st.binary(max_size=10),
    messages=st.lists(st.one_of(st.text(max_size=40), st.none()), max_size=20),
    offset=st.integers(0, 3),
)
def test_column_hmac_matches_python_byte_for_byte(
    key: bytes, prefix: bytes, messages: list[str | None], offset: int
) -> None:
    column = pa.array(["pad"] * offset + messages, pa.string()).slice(offset)  # sliced input
    got = digest_array(key, prefix, column)
    assert got.type == pa.binary(32)
    want = [
        None if m is None else hmac.digest(key, prefix + m.encode(), hashlib.sha256)
        for m in messages
    ]
    assert got.to_pylist() == want


@settings(max_examples=50, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32), messages=st.lists(st.binary(max_size=80), max_size=10)
)
def test_binary_messages(key: bytes, messages: list[bytes]) -> None:
    got = digest_array(key, b"", pa.array(messages, pa.binary())).to_pylist()
    assert got == [hmac.digest(key, m, hashlib.sha256) for m in messages]


def test_worker_processes_give_the_same_column(monkeypatch) -> None:
    monkeypatch.setattr(keyed_hash, "PARALLEL_FROM", 10)
    values = pa.array([None if i % 7 == 0 else f"+98912{i:07d}" for i in range(1001)])
    with KeyedHash(b"k" * 32, workers=2) as parallel:
        got = parallel(values, b"phone\x00")
    assert got.equals(digest_array(b"k" * 32, b"phone\x00", values))
    assert got.null_count == 143
