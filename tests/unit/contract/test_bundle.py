"""Bundles: round trips, and every way a bundle can be damaged or misdirected."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.contract.bundle import MAGIC, BundleWriter, open_bundle, read_bundle
from cleanroom.errors import BundleError, SignatureError
from tests.conftest import Keys, leftovers


def seal(path: Path, keys: Keys, payload: bytes, *, chunk_size: int = 64) -> Path:
    with BundleWriter(
        path,
        party="okala",
        dataset="orders",
        metadata={"note": "test"},
        room_key=keys.room.public_key(),
        signing_key=keys.party,
        chunk_size=chunk_size,
    ) as writer:
        for i in range(0, len(payload), 50):
            writer.write(payload[i : i + 50])
        writer.finish({"rows": 1})
    return path


def unseal(path: Path, keys: Keys, signer: Ed25519PrivateKey | None = None) -> bytes:
    out = io.BytesIO()
    open_bundle(path, keys.room, out, expected_signer=(signer or keys.party).public_key())
    return out.getvalue()


def resign(path: Path, body: bytes, key: Ed25519PrivateKey) -> None:
    """What a party (or a bug) holding the signing key could produce."""
    sig = key.sign(b"cleanroom-bundle-v1\x00" + hashlib.sha256(body).digest())
    path.write_bytes(body + sig)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.binary(max_size=700), chunk_size=st.integers(min_value=1, max_value=300))
def test_round_trip(tmp_path: Path, keys: Keys, payload: bytes, chunk_size: int) -> None:
    path = seal(tmp_path / "b.bundle", keys, payload, chunk_size=chunk_size)
    assert unseal(path, keys) == payload
    info = read_bundle(path)
    assert info.manifest["payload_bytes"] == len(payload)
    assert info.header["party"] == "okala"


def test_bundle_ids_are_unique(tmp_path: Path, keys: Keys) -> None:
    ids = {read_bundle(seal(tmp_path / f"{i}.bundle", keys, b"x")).bundle_id for i in range(5)}
    assert len(ids) == 5


def test_payload_is_not_in_the_file(tmp_path: Path, keys: Keys) -> None:
    payload = b"+989123456789," * 200
    data = seal(tmp_path / "b.bundle", keys, payload).read_bytes()
    assert b"+98912" not in data and b"9123456789" not in data


def test_every_flipped_byte_is_detected(tmp_path: Path, keys: Keys) -> None:
    path = seal(tmp_path / "b.bundle", keys, bytes(range(256)) * 2)
    good = path.read_bytes()
    for position in range(0, len(good), 7):
        damaged = bytearray(good)
        damaged[position] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(BundleError):
            unseal(path, keys)
        with pytest.raises(BundleError):
            read_bundle(path)  # even checking against the embedded key


def test_every_truncation_is_detected(tmp_path: Path, keys: Keys) -> None:
    path = seal(tmp_path / "b.bundle", keys, bytes(500))
    good = path.read_bytes()
    for length in [0, 5, len(MAGIC), 40, *range(100, len(good), 13), len(good) - 1]:
        path.write_bytes(good[:length])
        with pytest.raises(BundleError) as err:
            unseal(path, keys)
        assert str(path) in str(err.value)


def _frames(path: Path, keys: Keys) -> tuple[bytes, list[bytes], bytes]:
    """Split a bundle into (prefix up to first chunk, chunk frames, manifest frame)."""
    info = read_bundle(path, expected_signer=keys.party.public_key())
    data = path.read_bytes()
    frames = [data[offset - 5 : offset + length] for offset, length, _ in info.chunk_offsets]
    start = info.chunk_offsets[0][0] - 5
    end = info.chunk_offsets[-1][0] + info.chunk_offsets[-1][1]
    return data[:start], frames, data[end:-64]


def test_reordered_chunks_fail_even_when_re_signed(tmp_path: Path, keys: Keys) -> None:
    path = seal(tmp_path / "b.bundle", keys, bytes(range(200)) * 2, chunk_size=64)
    prefix, frames, manifest = _frames(path, keys)
    frames[0], frames[1] = frames[1], frames[0]
    resign(path, prefix + b"".join(frames) + manifest, keys.party)
    with pytest.raises(BundleError, match="chunk 0 fails authentication"):
        unseal(path, keys)


def test_dropped_tail_fails_even_when_re_signed(tmp_path: Path, keys: Keys) -> None:
    path = seal(tmp_path / "b.bundle", keys, bytes(300), chunk_size=64)
    prefix, frames, manifest = _frames(path, keys)
    cut = [*frames[:-2], bytes([2]) + frames[-2][1:]]  # promote a middle chunk to "last"
    manifest = manifest.replace(b'"chunks":5', b'"chunks":4')
    resign(
        path,
        prefix + b"".join(cut) + struct.pack(">I", len(manifest) - 4) + manifest[4:],
        keys.party,
    )
    with pytest.raises(BundleError, match="fails authentication"):
        unseal(path, keys)


def test_wrong_room_key(tmp_path: Path, keys: Keys) -> None:
    path = seal(tmp_path / "b.bundle", keys, b"payload")
    other = X25519PrivateKey.generate()
    with pytest.raises(BundleError, match="sealed to another room key"):
        open_bundle(path, other, io.BytesIO(), expected_signer=keys.party.public_key())


def test_signature_by_another_party(tmp_path: Path, keys: Keys) -> None:
    path = seal(tmp_path / "b.bundle", keys, b"payload")
    with pytest.raises(SignatureError, match="not signed by party 'okala'"):
        unseal(path, keys, signer=keys.other_party)
    # Someone re-signing the body with their own key cannot pass as the party either.
    resign(path, path.read_bytes()[:-64], keys.other_party)
    with pytest.raises(SignatureError):
        unseal(path, keys)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PK\x03\x04 a zip file",
        MAGIC + struct.pack(">I", 50 * 1024 * 1024),
        MAGIC + b"\x00\x00\x00\x02{}",
    ],
)
def test_not_a_bundle(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.bundle"
    path.write_bytes(data)
    with pytest.raises(BundleError):
        read_bundle(path)


def test_failed_write_leaves_nothing(tmp_path: Path, keys: Keys) -> None:
    with (
        pytest.raises(RuntimeError),
        BundleWriter(
            tmp_path / "b.bundle",
            party="okala",
            dataset="orders",
            metadata={},
            room_key=keys.room.public_key(),
            signing_key=keys.party,
        ) as writer,
    ):
        writer.write(b"x" * 1000)
        raise RuntimeError("boom")
    assert leftovers(tmp_path) == []
