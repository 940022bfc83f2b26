import hashlib
import hmac

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanroom.contract.keyed_hash import TOKEN_TYPE, KeyedHash, hmac_key, hmac_sha256, to_tokens


def expected(secret: bytes, message: bytes) -> bytes:
    """The documented definition, spelled out independently of the module."""
    return hmac.new(secret.hex().encode("ascii"), message, hashlib.sha256).digest()


def test_the_hmac_key_is_the_secrets_lower_case_hex_text() -> None:
    secret = bytes(range(0xE0, 0x100))
    assert hmac_key(secret) == b"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
    assert hmac_sha256(secret, b"phone\x00+989123456789") == expected(
        secret, b"phone\x00+989123456789"
    )
    # Version 1 keyed HMAC with the raw bytes; version 2 tokens differ from those.
    assert hmac_sha256(secret, b"m") != hmac.digest(secret, b"m", hashlib.sha256)


@settings(max_examples=150, deadline=None)
@given(
    secret=st.binary(min_size=1, max_size=64),
    prefix=st.text(st.characters(codec="ascii"), max_size=10),
    messages=st.lists(st.one_of(st.text(max_size=40), st.none()), max_size=20),
    offset=st.integers(0, 3),
)
def test_native_column_hmac_matches_python_byte_for_byte(
    secret: bytes, prefix: str, messages: list[str | None], offset: int
) -> None:
    column = pa.array(["pad"] * offset + messages, pa.string()).slice(offset)  # sliced input
    got = KeyedHash(secret)(column, prefix.encode())
    assert got.type == TOKEN_TYPE
    want = [None if m is None else expected(secret, (prefix + m).encode()) for m in messages]
    assert got.to_pylist() == want


@settings(max_examples=50, deadline=None)
@given(
    secret=st.binary(min_size=32, max_size=32),
    messages=st.lists(st.one_of(st.binary(min_size=32, max_size=32), st.none()), max_size=10),
)
def test_tokens_rekeyed_as_fixed_size_binary(secret: bytes, messages: list[bytes | None]) -> None:
    got = KeyedHash(secret)(pa.array(messages, TOKEN_TYPE)).to_pylist()
    assert got == [None if m is None else expected(secret, m) for m in messages]


def test_a_large_chunked_column_is_hashed_whole_and_in_order() -> None:
    values = [None if i % 7 == 0 else f"+98912{i:07d}" for i in range(300_001)]
    chunked = pa.chunked_array([values[:100_000], values[100_000:]], pa.string())
    got = KeyedHash(b"k" * 32)(chunked.combine_chunks(), b"phone\x00")
    assert got.null_count == sum(v is None for v in values)
    for i in (1, 2, 99_999, 100_000, 300_000):
        assert got[i].as_py() == expected(b"k" * 32, b"phone\x00" + str(values[i]).encode())


@settings(max_examples=100, deadline=None)
@given(
    digests=st.lists(st.one_of(st.binary(min_size=32, max_size=32), st.none()), max_size=30),
    offset=st.integers(0, 3),
    chunks=st.integers(1, 3),
)
def test_hex_digests_decode_to_their_tokens_at_their_rows(
    digests: list[bytes | None], offset: int, chunks: int
) -> None:
    text = ["0" * 64] * offset + [None if d is None else d.hex() for d in digests]
    column = pa.array(text, pa.string()).slice(offset)  # an offset into the buffers
    cut = len(digests) // chunks
    parts = [column.slice(i * cut, cut) for i in range(chunks - 1)]
    chunked = pa.chunked_array([*parts, column.slice((chunks - 1) * cut)], pa.string())
    got = to_tokens(chunked)
    assert got.type == TOKEN_TYPE
    assert got.to_pylist() == digests
    assert got.null_count == digests.count(None)


@pytest.mark.parametrize(
    "text",
    [
        ["ab" * 32, "ab" * 31],  # a value too short
        ["ab" * 33],  # too long
        ["zz" * 32],  # not hex
        ["ab" * 16, "cd" * 48],  # right total, wrong widths
    ],
)
def test_anything_but_64_character_hex_digests_is_refused(text: list[str]) -> None:
    with pytest.raises(ValueError):
        to_tokens(pa.array(text, pa.string()))


def test_null_slots_holding_text_do_not_shift_the_values() -> None:
    # Arrow allows a null slot whose offsets span text; that text is no digest.
    values = pa.array(["ab" * 32, "cd" * 32, "ef" * 32], pa.large_string())
    validity = pa.array([True, False, True]).buffers()[1]
    holed = pa.Array.from_buffers(pa.large_string(), 3, [validity, *values.buffers()[1:]], 1)
    assert to_tokens(holed).to_pylist() == [bytes([0xAB] * 32), None, bytes([0xEF] * 32)]
