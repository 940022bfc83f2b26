"""Environment failures as clear errors, the crash tests' fault points, and pinned generations."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest

from cleanroom.errors import DiskFullError, StoreBusyError, UserError
from cleanroom.room import faults, matching
from cleanroom.room.config import Settings
from cleanroom.room.inflight import Pins
from cleanroom.room.policy.retention import RetentionPolicy
from cleanroom.room.store import MetaStore


def test_a_locked_store_is_store_busy_and_nothing_is_written(tmp_path: Path) -> None:
    store = MetaStore(tmp_path / "meta.db", busy_timeout=0.1)
    holder = sqlite3.connect(tmp_path / "meta.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreBusyError, match="locked by another process"), store.transaction():
            pytest.fail("the transaction must not start")
        with pytest.raises(sqlite3.OperationalError) as raw:  # an autocommit write, untranslated
            store.connection().execute("CREATE TABLE t (x)")
        assert isinstance(faults.unavailable(raw.value), StoreBusyError)
    finally:
        holder.execute("ROLLBACK")
    with store.transaction() as db:  # the lock gone, the connection is usable again
        db.execute("CREATE TABLE t (x)")
    store.close()


@pytest.mark.parametrize(
    "err",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EFBIG, "File too large"),
        duckdb.IOException('IO Error: Could not write file "x": File too large'),
        duckdb.IOException('IO Error: Could not write file "x": No space left on device'),
    ],
)
def test_a_full_disk_is_disk_full(err: BaseException) -> None:
    found = faults.unavailable(err)
    assert isinstance(found, DiskFullError)
    assert found.status == 507 and "nothing was stored" in str(found)


@pytest.mark.parametrize(
    "err",
    [
        OSError(errno.ENOENT, "No such file"),
        duckdb.IOException("IO Error: Cannot open file"),
        sqlite3.OperationalError("no such table: x"),
        ValueError("x"),
    ],
)
def test_other_failures_stay_what_they_are(err: BaseException) -> None:
    assert faults.unavailable(err) is None


@pytest.fixture
def armed() -> Iterator[None]:
    yield
    faults._armed.clear()
    faults._passes.clear()


def test_fault_pause_is_refused_outside_development(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only with environment: development"):
        Settings(room=tmp_path, fault_pause="query.release")
    with pytest.raises(ValueError, match="fault_pause"):
        Settings(room=tmp_path, environment="development", fault_pause="query; rm -rf")


def test_an_unknown_point_is_refused(tmp_path: Path, armed: None) -> None:
    settings = Settings(room=tmp_path, environment="development", fault_pause="query.nowhere")
    with pytest.raises(UserError, match=r"no fault point 'query\.nowhere'"):
        faults.arm(settings)


def test_a_point_pauses_only_when_armed_and_at_its_passage(
    tmp_path: Path, armed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    faults.pause("report.section")  # not armed: inert
    faults.arm(Settings(room=tmp_path))  # production settings arm nothing
    faults.pause("report.section")
    assert slept == []
    faults.arm(Settings(room=tmp_path, environment="development", fault_pause="report.section#2"))
    faults.pause("report.section")
    faults.pause("query.release")  # another point
    assert slept == []
    faults.pause("report.section")
    assert slept == [faults.PAUSE_SECONDS]


def fake_room(tmp_path: Path, store: MetaStore) -> Any:
    kept = SimpleNamespace(policy=SimpleNamespace(retention=RetentionPolicy()))  # no expiry
    # The room secret: live generations derive their selection salt from it.
    return SimpleNamespace(
        paths=SimpleNamespace(root=tmp_path),
        store=store,
        active_policy=lambda: kept,
        rekey_secret=b"s" * 32,
        pins=Pins(),
    )


def go_live(store: MetaStore, generation: int) -> None:
    with store.transaction() as db:
        db.execute("UPDATE matches SET status = 'replaced' WHERE status = 'live'")
        db.execute(
            "INSERT INTO matches (generation, started_at, status, inputs, tables)"
            " VALUES (?, 'now', 'live', '{}', '{}')",
            (generation,),
        )


def test_a_replaced_generation_is_dropped_after_its_last_reader(
    tmp_path: Path, store: MetaStore
) -> None:
    room = fake_room(tmp_path, store)
    dropped: list[int] = []
    go_live(store, 1)
    with matching.reading(room) as first, matching.reading(room) as second:
        assert first is not None and second is not None and first.generation == 1
        go_live(store, 2)
        matching._retire_when_unread(room, 1, lambda: dropped.append(1))
        assert dropped == []  # two readers still on generation 1
        with matching.reading(room) as third:
            assert third is not None and third.generation == 2  # new readers see the new one
    assert dropped == [1]  # the last reader of 1 dropped it
    matching._retire_when_unread(room, 2, lambda: dropped.append(2))
    assert dropped == [1, 2]  # no reader: at once
    assert room.pins.idle
