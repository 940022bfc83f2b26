"""In-flight state held by the room: readers' pins, the drops waiting for them, one-at-a-time work.

The pins and the busy flags used to be module globals (a match's lock, the
generation readers' counter, the uploads in progress) beside the warehouse's
own table pins; now each room holds one :class:`Pins` and one :class:`Busy`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cleanroom.demo.scenario import Group, build_group, open_room
from cleanroom.errors import ConflictError
from cleanroom.room import inflight, matching
from cleanroom.room.inflight import Busy, Pins
from cleanroom.room.ingest import Ingest, ingest
from cleanroom.room.state import Room

T1, G1 = inflight.table("d_okala__orders__v1"), inflight.generation(1)


def test_a_drop_waits_for_the_last_reader_of_its_key_only() -> None:
    pins, dropped = Pins(), []
    with pins.lock:
        first = pins.hold([T1, G1])
        second = pins.hold([T1])
    pins.when_unread(T1, lambda: dropped.append("t1"))
    pins.when_unread(G1, lambda: dropped.append("g1"))
    pins.when_unread(inflight.generation(2), lambda: dropped.append("g2"))  # no reader
    assert dropped == ["g2"]
    first()
    assert dropped == ["g2", "g1"]  # the generation's one reader is gone, the table has one
    assert not pins.idle
    second()
    assert dropped == ["g2", "g1", "t1"] and pins.idle


def test_a_drop_failing_now_is_the_callers_and_later_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pins = Pins()

    def broken() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        pins.when_unread(T1, broken)
    with pins.lock:
        release = pins.hold([T1])
    pins.when_unread(T1, broken)
    with caplog.at_level(logging.WARNING, logger="cleanroom.inflight"):
        release()  # the reader finishes its own work whatever the drop does
    assert "next start retries it" in caplog.text and pins.idle


def test_busy_refuses_a_second_start_of_one_key_and_frees_it_after() -> None:
    busy = Busy()
    refusal = ConflictError("already")
    with busy.only_one(("upload", "okala", "orders"), refusal):
        with pytest.raises(ConflictError), busy.only_one(("upload", "okala", "orders"), refusal):
            pass
        with busy.only_one(("upload", "okala", "visits"), refusal):  # another key runs
            pass
    with pytest.raises(RuntimeError), busy.only_one("match", refusal):
        raise RuntimeError("the work failed")
    with busy.only_one("match", refusal):  # a failure frees the key too
        pass


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Group:
    return build_group(tmp_path_factory.mktemp("inflight"), persons=100, seed=11)


@pytest.fixture
def rooms(group: Group) -> Iterator[tuple[Room, Room]]:
    """The same room opened twice in one process: its state is per Room object."""
    first, second = open_room(group.room_dir), open_room(group.room_dir, warehouse=False)
    yield first, second
    first.close()
    second.close()


def blocked_in(target: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make ``target.name`` wait until the returned event is set; ``entered`` on the event."""
    release, entered = threading.Event(), threading.Event()
    real = getattr(target, name)

    def waiting(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, waiting)
    release.entered = entered  # type: ignore[attr-defined]
    return release


def test_a_second_match_in_one_room_is_refused_while_the_first_runs(
    group: Group, rooms: tuple[Room, Room], monkeypatch: pytest.MonkeyPatch
) -> None:
    room, other = rooms
    admin = room.users.get("room-admin")
    release = blocked_in(matching, "_run", monkeypatch)
    outcome: list[BaseException | None] = []

    def first() -> None:
        try:
            matching.run_match(room, admin)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    worker = threading.Thread(target=first)
    worker.start()
    assert release.entered.wait(30)  # type: ignore[attr-defined]
    try:
        with pytest.raises(ConflictError, match="a match is already running"):
            matching.run_match(room, admin)
        with other.busy.only_one("match", ConflictError("no")):  # another Room: its own flags
            pass
    finally:
        release.set()
        worker.join(30)
    assert len(outcome) == 1  # the first went on (it found no dataset: nothing to match)


def test_a_second_upload_of_one_dataset_is_refused_while_the_first_loads(
    group: Group, rooms: tuple[Room, Room], monkeypatch: pytest.MonkeyPatch
) -> None:
    room, _ = rooms
    (party, dataset), bundle = sorted(group.bundles.items())[0]
    admin = room.users.get(f"{party}-admin")
    release = blocked_in(Ingest, "_load_and_swap", monkeypatch)
    worker = threading.Thread(target=ingest, args=(room, bundle, admin))
    worker.start()
    assert release.entered.wait(30)  # type: ignore[attr-defined]
    try:
        with pytest.raises(ConflictError, match=f"{party}.{dataset} is already in progress"):
            ingest(room, bundle, admin)
    finally:
        release.set()
        worker.join(30)
    assert room.wh.tables()  # the first upload went on and stored its table
