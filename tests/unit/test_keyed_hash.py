import hashlib
import hmac

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.keyed_hash import hmac_column

CON = duckdb.connect()


@settings(max_examples=150, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=100),
    prefix=st.binary(max_size=10),
    messages=st.lists(st.one_of(st.text(max_size=40), st.none()), max_size=20),
)
def test_sql_hmac_matches_python_byte_for_byte(
    key: bytes, prefix: bytes, messages: list[str | None]
) -> None:
    got = hmac_column(CON, key, pa.array(messages, pa.string()), prefix=prefix).to_pylist()
    want = [
        None if m is None else hmac.digest(key, prefix + m.encode(), hashlib.sha256)
        for m in messages
    ]
    assert got == want


@settings(max_examples=50, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32), messages=st.lists(st.binary(max_size=80), max_size=10)
)
def test_sql_hmac_on_binary_messages(key: bytes, messages: list[bytes]) -> None:
    got = hmac_column(CON, key, pa.array(messages, pa.binary())).to_pylist()
    assert got == [hmac.digest(key, m, hashlib.sha256) for m in messages]
