"""Expiry in a real room: what is due is deleted everywhere it was written, audited, refused.

A small generated group (300 persons, five brands) is built once; each test
gets a fresh copy of its room, uploads every bundle and matches, then moves
the room's clock.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cleanroom import clock
from cleanroom.demo.scenario import Group, build_group, open_room
from cleanroom.errors import DataExpired
from cleanroom.room import inflight
from cleanroom.room.expiry import expire
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import reading, run_match
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.state import Room

REPORTS = {
    "overlap": {
        "title": "Overlap",
        "schedule": "0 6 1 1 *",
        "recipients": ["reviewers"],
        "sections": [{"template": "overlap", "epsilon": 0.1}],
    }
}


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Group:
    return build_group(
        tmp_path_factory.mktemp("expiry"),
        persons=300,
        seed=3,
        reports=REPORTS,
        retention={"dataset_days": 30, "generation_days": 10},
    )


@pytest.fixture
def room(group: Group, tmp_path: Path) -> Iterator[Room]:
    copy = tmp_path / "room"
    shutil.copytree(group.room_dir, copy)
    opened = open_room(copy)
    opened.settings = opened.settings.model_copy(update={"scheduler": False})
    for (party, _), bundle in sorted(group.bundles.items()):
        ingest(opened, bundle, opened.users.get(f"{party}-admin"))
    run_match(opened, opened.users.get("room-admin"))
    yield opened
    opened.close()


def ask(room: Room) -> dict[str, object]:
    return Engine(room).run(QueryRequest(template="overlap"), room.users.get("okala-analyst"))


def audited(room: Room, action: str) -> list[dict[str, object]]:
    return [e.details for e in room.audit.entries(action=action, limit=100)]


def test_nothing_due_is_nothing_done(room: Room) -> None:
    before = room.wh.tables()
    done = expire(room, actor="test")
    assert (done.datasets, done.generations, done.deleted) == ([], [], 0)
    assert room.wh.tables() == before and audited(room, "data.expired") == []
    assert ask(room)["generation"] == 1


def test_an_expired_generation_is_deleted_audited_and_refused(room: Room) -> None:
    answered = ask(room)
    tables = room.wh.tables()
    generation = {t for t in tables if t.startswith("g1__")}
    datasets = tables - generation
    assert generation and datasets
    with clock.use(clock.SetClock(clock.now() + timedelta(days=10, seconds=5))):
        done = expire(room, actor="test")
        assert done.generations == [1] and done.datasets == []  # datasets live 30 days
        assert room.wh.tables() == datasets  # the generation's tables are gone, files and all
        with pytest.raises(DataExpired) as refused:
            ask(room)
        assert refused.value.status == 410 and refused.value.details["generation"] == 1
        assert "retention" in str(refused.value)
        with pytest.raises(DataExpired):  # a report is refused too, before any charge
            ReportRunner(Engine(room)).run("overlap", user=room.users.get("room-admin"))
        [entry] = audited(room, "data.expired")
        assert entry["generations"] == [1] and entry["generation_days"] == 10
        status = room.store.connection().execute("SELECT status, expired_at FROM matches")
        assert [tuple(r) for r in status] == [("expired", clock.stamp())]
        # A new match over the still-live datasets answers again (a fresh question).
        run_match(room, room.users.get("room-admin"))
        again = ask(room)
        assert again["generation"] == 2 and not again["cached"]
    assert answered["generation"] == 1
    assert room.audit.verify().ok


def test_an_expired_dataset_version_takes_its_generation_with_it(room: Room) -> None:
    with clock.use(clock.SetClock(clock.now() + timedelta(days=30, seconds=5))):
        done = expire(room, actor="test")
        assert len(done.datasets) == 6 and done.generations == [1]
        assert room.wh.tables() == set()
        rows = room.store.connection().execute("SELECT DISTINCT status FROM datasets")
        assert [r[0] for r in rows] == ["expired"]
        with pytest.raises(DataExpired):
            ask(room)
        with pytest.raises(Exception, match="no dataset has been uploaded"):
            run_match(room, room.users.get("room-admin"))  # nothing live is left to match
        # A second pass finds nothing new: one audit entry per expiry, not per pass.
        assert expire(room, actor="test").generations == []
        assert len(audited(room, "data.expired")) == 1


def test_a_due_generation_is_refused_before_the_pass_that_deletes_it(room: Room) -> None:
    with clock.use(clock.SetClock(clock.now() + timedelta(days=11))):
        with pytest.raises(DataExpired, match="kept 10 days after its match"):
            ask(room)
        assert any(t.startswith("g1__") for t in room.wh.tables())  # not yet deleted


def test_a_generation_being_read_is_deleted_when_its_reader_ends(room: Room) -> None:
    with reading(room) as generation:  # a query (or report) reading generation 1 now
        assert generation is not None
        with clock.use(clock.SetClock(clock.now() + timedelta(days=10, seconds=5))):
            assert expire(room, actor="test").generations == [1]
            assert {t for t in room.wh.tables() if t.startswith("g1__")} == set(
                generation.tables.values()
            )  # never under the reader
    assert not any(t.startswith("g1__") for t in room.wh.tables())


def test_a_dataset_table_a_match_reads_is_deleted_when_the_match_ends(room: Room) -> None:
    table = "d_okala__orders__v1"
    with room.pins.lock:
        release = room.pins.hold([inflight.table(table)])  # as a running match pins its inputs
    with clock.use(clock.SetClock(clock.now() + timedelta(days=31))):
        expire(room, actor="test")
        assert room.wh.tables() == {table}
    release()
    assert room.wh.tables() == set()


def test_a_match_expires_what_is_due_first(room: Room) -> None:
    with clock.use(clock.SetClock(clock.now() + timedelta(days=10, seconds=5))):
        generation = run_match(room, room.users.get("room-admin"))
        assert generation.generation == 2
        statuses = room.store.connection().execute("SELECT status FROM matches ORDER BY 1")
        assert [r[0] for r in statuses] == ["expired", "live"]
