"""Backups: an archive restores to the same room, and nothing else restores at all.

One small group's room (300 persons) is built, loaded and matched once per
module; the tests archive it in-process (``backup.archive``) and restore the
archive into fresh directories.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.contract.keys import generate_backup_keys, generate_room_keys, load_backup_public_key
from cleanroom.demo.scenario import Group, build_group, open_room
from cleanroom.errors import KeyFileError, UserError
from cleanroom.room.backup import ArchiveError, RestoreRefused, archive, write_archive
from cleanroom.room.ingest import ingest
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.restore import _columns, restore
from cleanroom.room.state import Room
from cleanroom.room.warehouse import UNCOMPRESSED_BLOB
from cleanroom.sql import quote_column
from tests.system.world import load_and_match


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Group:
    root = tmp_path_factory.mktemp("backup")
    made = build_group(root, persons=300, seed=9)
    generate_backup_keys(root / "backup-keys")
    generate_backup_keys(root / "other-backup-keys")
    generate_room_keys(root / "other-room-keys")
    room = open_room(made.room_dir)
    try:
        load_and_match(room, made)
        ask(room)
    finally:
        room.close()
    return made


@pytest.fixture
def room(group: Group, tmp_path: Path) -> Iterator[Room]:
    copy = tmp_path / "room"
    shutil.copytree(group.room_dir, copy)
    opened = open_room(copy)
    yield opened
    opened.close()


def ask(room: Room) -> dict[str, object]:
    return Engine(room).run(QueryRequest(template="overlap"), room.users.get("okala-analyst"))


def backup(group: Group, room: Room, out: Path) -> Path:
    key = load_backup_public_key(group.root / "backup-keys" / "backup.pub")
    write_archive(archive(room, key), out)
    return out


def restore_of(group: Group, archive_path: Path, into: Path, **keys: Path) -> Room:
    restore(
        archive_path,
        into,
        keys=keys.get("keys", group.room_dir / "keys"),
        backup_key=keys.get("backup_key", group.root / "backup-keys" / "backup.key"),
    )
    return open_room(into)


def contents(room: Room) -> dict[str, str]:
    """Each warehouse table's rows, hashed in a fixed order (the data, not the file)."""
    out = {}
    cursor = room.wh.cursor()
    for name in sorted(room.wh.tables()):
        rows = cursor.execute(f'SELECT * FROM wh."{name}" ORDER BY ALL').fetchall()
        out[name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    cursor.close()
    return out


def stored_blobs(room: Room) -> set[str]:
    """The codecs of every BLOB segment of the warehouse: tokens are stored uncompressed."""
    cursor = room.wh.cursor()
    found: set[str] = set()
    for name in room.wh.tables():
        found |= {
            codec
            for (codec,) in cursor.execute(
                "SELECT DISTINCT compression FROM pragma_storage_info(?) "
                "WHERE segment_type = 'BLOB'",
                [f"wh.{name}"],
            ).fetchall()
        }
    cursor.close()
    return found


def test_a_restored_room_has_the_same_data_chain_and_cached_answers(
    group: Group, room: Room, tmp_path: Path
) -> None:
    first = ask(room)
    assert first["cached"]  # asked when the group was built
    path = backup(group, room, tmp_path / "room.backup")
    assert not (tmp_path / ".room.backup.partial").exists()
    restored = restore_of(group, path, tmp_path / "restored")
    try:
        assert contents(restored) == contents(room)
        assert stored_blobs(restored) == stored_blobs(room) == {"Uncompressed"}
        assert restored.audit.verify().ok
        assert restored.audit.verify().entries == room.audit.verify().entries
        again = ask(restored)
        assert again["cached"] and again["rows"] == first["rows"]
        assert again["cached_from"] == first["cached_from"]
    finally:
        restored.close()


def test_the_archive_holds_no_key_and_no_clear_data(
    group: Group, room: Room, tmp_path: Path
) -> None:
    data = backup(group, room, tmp_path / "room.backup").read_bytes()
    for name in ("room.key", "room.secret"):
        assert (room.paths.keys / name).read_bytes() not in data
    assert b"SQLite format" not in data and b"okala" not in data.split(b"}", 1)[1]


@pytest.mark.parametrize("where", ["header", "middle", "end"])
def test_an_edited_or_truncated_archive_restores_nothing(
    group: Group, room: Room, tmp_path: Path, where: str
) -> None:
    data = bytearray(backup(group, room, tmp_path / "room.backup").read_bytes())
    if where == "header":
        data[20] ^= 1
    elif where == "middle":
        data[len(data) // 2] ^= 1
    else:
        del data[-100:]
    bad = tmp_path / "bad.backup"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError):
        restore_of(group, bad, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
    assert not (tmp_path / ".restored.restoring").exists()


def test_the_wrong_keys_open_nothing(group: Group, room: Room, tmp_path: Path) -> None:
    path = backup(group, room, tmp_path / "room.backup")
    with pytest.raises(ArchiveError, match="sealed to backup key"):
        restore_of(
            group, path, tmp_path / "r1", backup_key=group.root / "other-backup-keys/backup.key"
        )
    with pytest.raises(ArchiveError, match="keys given are of room"):
        restore_of(group, path, tmp_path / "r2", keys=group.root / "other-room-keys")
    with pytest.raises(KeyFileError):  # the public half is not what opens an archive
        restore_of(group, path, tmp_path / "r3", backup_key=group.root / "backup-keys/backup.pub")
    assert not any(p.name.startswith(("r1", "r2", "r3", ".r")) for p in tmp_path.iterdir())


def test_a_room_whose_chain_was_edited_is_not_restored(
    group: Group, room: Room, tmp_path: Path
) -> None:
    with sqlite3.connect(room.paths.meta) as db:
        db.execute("UPDATE audit SET details = '{}' WHERE seq = 3")
    path = backup(group, room, tmp_path / "room.backup")
    with pytest.raises(RestoreRefused, match="audit chain does not verify: broken at entry 3"):
        restore_of(group, path, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_room_whose_ledger_disagrees_is_not_restored(
    group: Group, room: Room, tmp_path: Path
) -> None:
    with sqlite3.connect(room.paths.meta) as db:  # a charge no query or report stands for
        db.execute(
            "INSERT INTO budget_charges (party, period, epsilon_num, epsilon_den, query_id, "
            "charged_at) VALUES ('okala', '2026-11', 1, 2, 'nobody', '2026-11-25T10:00:00+00:00')"
        )
    path = backup(group, room, tmp_path / "room.backup")
    with pytest.raises(RestoreRefused, match="budget ledger does not agree"):
        restore_of(group, path, tmp_path / "restored")


def test_a_restore_never_overwrites(group: Group, room: Room, tmp_path: Path) -> None:
    path = backup(group, room, tmp_path / "room.backup")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("kept")
    with pytest.raises(UserError, match="not empty"):
        restore_of(group, path, tmp_path / "busy")
    assert (tmp_path / "busy" / "x").read_text() == "kept"
    with pytest.raises(UserError, match="never overwritten"):  # nor does a backup
        write_archive(iter([b"x"]), path)


def test_an_upload_during_a_backup_waits_for_it(group: Group, room: Room, tmp_path: Path) -> None:
    """The snapshot's tables stay until the archive is written, whatever is uploaded meanwhile."""
    key = load_backup_public_key(group.root / "backup-keys" / "backup.pub")
    stream = archive(room, key)
    first = next(stream)  # the snapshot is taken and its tables pinned
    newer = tmp_path / "okala.orders.bundle"
    group.seal("okala", "orders", newer)
    ingest(room, newer, room.users.get("okala-admin"))  # v2 live; v1 is in the snapshot
    assert "d_okala__orders__v1" in room.wh.tables()  # kept for the backup
    path = tmp_path / "room.backup"
    write_archive(iter([first, *stream]), path)
    assert "d_okala__orders__v1" not in room.wh.tables()  # dropped once the archive is whole
    restored = restore_of(group, path, tmp_path / "restored")
    try:
        versions = restored.store.connection().execute(
            "SELECT version FROM datasets WHERE party = 'okala' AND dataset = 'orders'"
        )
        assert [r[0] for r in versions] == [1]  # the snapshot's state, consistent
        assert "d_okala__orders__v1" in restored.wh.tables()
        assert ask(restored)["cached"]
    finally:
        restored.close()


@pytest.mark.parametrize("kind", ["INTEGER); DROP TABLE x; --", "STRUCT(a INTEGER)", "VARCHAR[]"])
def test_an_archived_column_type_becomes_sql_only_as_a_plain_name(kind: str) -> None:
    with pytest.raises(ArchiveError):
        _columns([("amount", kind)])
    plain = _columns([("mobile", "BLOB"), ("amount", "DECIMAL(18,3)")])
    mobile, amount = quote_column("mobile"), quote_column("amount")
    assert plain == f"{mobile} {UNCOMPRESSED_BLOB}, {amount} DECIMAL(18,3)"
