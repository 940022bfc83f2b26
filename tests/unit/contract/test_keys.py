import stat
from pathlib import Path

import pytest

from cleanroom.contract.keys import (
    generate_match_key,
    generate_party_keys,
    generate_room_keys,
    load_room_private_key,
    load_room_public_key,
    load_signing_key,
    load_symmetric_key,
    load_verify_key,
    public_key_id,
)
from cleanroom.errors import KeyFileError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_room_keys_roundtrip_with_owner_only_private_files(tmp_path: Path) -> None:
    written = generate_room_keys(tmp_path)
    private = load_room_private_key(tmp_path / "room.key")
    public = load_room_public_key(tmp_path / "room.pub")
    assert public_key_id(private.public_key()) == public_key_id(public)
    assert written.key_ids["room_key_id"] == public_key_id(public)
    secret = load_symmetric_key(tmp_path / "room.secret", "room-secret")
    assert written.key_ids["room_secret_id"] == secret.key_id
    assert mode(tmp_path / "room.key") == 0o600
    assert mode(tmp_path / "room.secret") == 0o600


def test_party_keys_and_ids_differ_between_parties(tmp_path: Path) -> None:
    a = generate_party_keys("okala", tmp_path)
    b = generate_party_keys("ofogh", tmp_path)
    assert a.key_ids != b.key_ids
    signing = load_signing_key(tmp_path / "okala.key")
    assert public_key_id(signing.public_key()) == public_key_id(
        load_verify_key(tmp_path / "okala.pub")
    )
    assert mode(tmp_path / "okala.key") == 0o600


def test_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    generate_match_key(tmp_path / "match.key")
    before = (tmp_path / "match.key").read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_match_key(tmp_path / "match.key")
    assert (tmp_path / "match.key").read_bytes() == before


def test_match_key_id_is_stable_and_reveals_no_key(tmp_path: Path) -> None:
    written = generate_match_key(tmp_path / "m.key")
    key = load_symmetric_key(tmp_path / "m.key", "match-key")
    assert key.key_id == written.key_ids["match_key_id"]
    assert key.secret.hex() not in key.key_id
    assert key.secret.hex() not in repr(key)


def test_passphrase_protection(tmp_path: Path) -> None:
    generate_match_key(tmp_path / "m.key", passphrase=b"correct horse")
    generate_party_keys("tapsi", tmp_path, passphrase=b"correct horse")
    assert b'"key"' not in (tmp_path / "m.key").read_bytes()
    assert load_symmetric_key(tmp_path / "m.key", "match-key", passphrase=b"correct horse")
    assert load_signing_key(tmp_path / "tapsi.key", b"correct horse")
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        load_symmetric_key(tmp_path / "m.key", "match-key")
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        load_signing_key(tmp_path / "tapsi.key")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_symmetric_key(tmp_path / "m.key", "match-key", passphrase=b"wrong")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_signing_key(tmp_path / "tapsi.key", b"wrong")


def test_truncated_and_wrong_key_files(tmp_path: Path) -> None:
    generate_room_keys(tmp_path / "room")
    generate_party_keys("filimo", tmp_path)
    generate_match_key(tmp_path / "m.key")
    for name in ("room/room.key", "room/room.pub", "m.key"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut-{name.replace('/', '-')}").write_bytes(data[: len(data) // 2])
    with pytest.raises(KeyFileError, match=r"cut-room-room\.key"):
        load_room_private_key(tmp_path / "cut-room-room.key")
    with pytest.raises(KeyFileError, match="not a readable public key"):
        load_room_public_key(tmp_path / "cut-room-room.pub")
    with pytest.raises(KeyFileError, match="not a cleanroom key file"):
        load_symmetric_key(tmp_path / "cut-m.key", "match-key")
    with pytest.raises(KeyFileError, match="is not a room"):
        load_room_public_key(tmp_path / "filimo.pub")
    with pytest.raises(KeyFileError, match="is not a party"):
        load_signing_key(tmp_path / "room" / "room.key")
    with pytest.raises(KeyFileError, match="holds a room-secret, expected a match-key"):
        load_symmetric_key(tmp_path / "room" / "room.secret", "match-key")
    with pytest.raises(KeyFileError, match="no such key file"):
        load_verify_key(tmp_path / "missing.pub")


def test_tampered_symmetric_key_detected(tmp_path: Path) -> None:
    generate_match_key(tmp_path / "m.key")
    text = (tmp_path / "m.key").read_text()
    key_line = next(line for line in text.splitlines() if '"key"' in line)
    value = key_line.split('"')[3]
    swapped = ("B" if value[0] != "B" else "C") + value[1:]
    (tmp_path / "m.key").write_text(text.replace(value, swapped))
    with pytest.raises(KeyFileError, match="does not match its key id"):
        load_symmetric_key(tmp_path / "m.key", "match-key")
