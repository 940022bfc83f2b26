"""One entry into the engine: analysts' queries and report sections, one settle path.

``Engine.run`` answers both. An analyst's query is charged before it runs and
refunded if its answer cannot be stored; a report section (``prepaid``) is
recorded the same way but charges nothing, and a failure leaves the run's
charge to the run. One small group's room (300 persons) is built and matched
once per module; each test works on a fresh copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.demo.scenario import Group, build_group, open_room
from cleanroom.room.matching import reading
from cleanroom.room.query import records
from cleanroom.room.query.engine import Engine, Prepaid, QueryRequest
from cleanroom.room.reports.runner import REPORTER_SHARE, reporter_identity
from cleanroom.room.state import Room
from tests.system.world import load_and_match

OVERLAP = QueryRequest(template="overlap")


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Group:
    made = build_group(tmp_path_factory.mktemp("entry"), persons=300, seed=5)
    room = open_room(made.room_dir)
    try:
        load_and_match(room, made)
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


def charges(room: Room) -> list[tuple[str, bool]]:
    """Every budget charge: its query id and whether it was refunded."""
    rows = room.store.connection().execute(
        "SELECT query_id, refunded_at IS NOT NULL FROM budget_charges ORDER BY id"
    )
    return [(str(r[0]), bool(r[1])) for r in rows]


def status(room: Room, query_id: str) -> str:
    row = room.store.connection().execute("SELECT status FROM queries WHERE id = ?", (query_id,))
    return str(row.fetchone()[0])


def section(engine: Engine, report_run: str) -> Prepaid:
    """A report section as the runner hands it over: checked, on a pinned generation."""
    active = engine.room.active_policy()
    query = engine.prepare(OVERLAP, REPORTER_SHARE, active.policy)
    with reading(engine.room) as generation:
        assert generation is not None
        return Prepaid(query, active, generation, report_run)


def test_an_analysts_query_is_charged_once_and_asked_again_is_cached(room: Room) -> None:
    engine = Engine(room)
    analyst = room.users.get("okala-analyst")
    first = engine.run(OVERLAP, analyst)
    again = engine.run(OVERLAP, analyst)
    assert charges(room) == [(first["query_id"], False)]
    assert again["cached"] and again["cached_from"] == first["query_id"]


def test_a_prepaid_section_is_recorded_like_any_query_and_charges_nothing(room: Room) -> None:
    engine = Engine(room)
    result = engine.run(OVERLAP, reporter_identity(None), prepaid=section(engine, "r1"))
    assert charges(room) == []
    assert status(room, result["query_id"]) == "done" and not result["cached"]
    (entry,) = room.audit.entries(action="query.run", limit=10)
    assert entry.details["query_id"] == result["query_id"]
    assert entry.details["report_run"] == "r1"
    stored = records.get(room.store.connection(), result["query_id"])
    assert stored is not None and stored.report_run == "r1"
    assert entry.details["result_sha256"]
    # paid for a fresh answer: a second section never reads the first one's from the cache
    second = engine.run(OVERLAP, reporter_identity(None), prepaid=section(engine, "r2"))
    assert not second["cached"] and second["query_id"] != result["query_id"]


def test_an_answer_that_cannot_be_stored_is_refunded_unless_prepaid(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(room)

    def broken(*_: object, **__: object) -> dict[str, object]:
        raise OSError("disk gone")

    monkeypatch.setattr(engine, "_store", broken)
    with pytest.raises(OSError, match="disk gone"):
        engine.run(OVERLAP, room.users.get("okala-analyst"))
    ((charged, refunded),) = charges(room)
    assert refunded and status(room, charged) == "failed"
    with pytest.raises(OSError, match="disk gone"):
        engine.run(OVERLAP, reporter_identity(None), prepaid=section(engine, "r3"))
    assert charges(room) == [(charged, True)]  # nothing charged, nothing refunded here
    statuses = room.store.connection().execute("SELECT status FROM queries").fetchall()
    assert sorted(str(r[0]) for r in statuses) == ["failed", "failed"]
