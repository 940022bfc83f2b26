"""The outside audit's robustness findings, against a live room over HTTP.

- epsilon = 1e-30 or 5e-324 gave a 500 and left the query ``running``;
- an unauthenticated 200 MB JSON body was read whole before authentication;
- twelve identical queries in flight were charged twelve times, twelve answers;
- the room's files were world-readable.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from cleanroom.demo.scenario import Group, LiveServer, build_group, open_room
from cleanroom.room import logs
from cleanroom.room.budget import Ledger
from cleanroom.room.query import engine as engine_module
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.state import Room
from tests.system.world import load_and_match

LIMIT = 64 * 1024
SQL = "SELECT COUNT(*) AS n FROM okala.orders"
REPORTS = {
    "overlap-now": {
        "title": "overlap",
        "recipients": ["okala", "reviewers"],
        "sections": [{"template": "overlap", "epsilon": 0.1}],
    }
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Group:
    return build_group(tmp_path_factory.mktemp("robust"), persons=600, seed=71, reports=REPORTS)


@pytest.fixture(scope="module")
def live(world: Group) -> Iterator[tuple[LiveServer, Room]]:
    logs.configure(world.room_dir / "logs" / "service.log", "json")
    room = open_room(world.room_dir)
    room.settings = room.settings.model_copy(
        update={"scheduler": False, "max_request_bytes": LIMIT}
    )
    load_and_match(room, world)
    try:
        with LiveServer(room) as server:
            yield server, room
    finally:
        room.close()
        logs.reset()


def call(server: LiveServer, token: str | None, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(server.url + "/api/v1/queries", headers=headers, timeout=120, **kw)  # type: ignore[arg-type]


def statuses(room: Room) -> dict[str, int]:
    rows = room.store.connection().execute("SELECT status, count(*) FROM queries GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


@pytest.mark.parametrize("epsilon", [1e-30, 5e-324, 1e-7, 0, -1])
def test_an_epsilon_out_of_bounds_is_a_4xx_and_leaves_nothing_running(
    world: Group, live: tuple[LiveServer, Room], epsilon: float
) -> None:
    server, room = live
    before = statuses(room)
    r = call(server, world.tokens["okala_analyst"], json={"sql": SQL, "epsilon": epsilon})
    assert r.status_code == 422 and "epsilon" in r.json()["error"]["message"], r.text
    assert statuses(room) == before and "running" not in statuses(room)


@pytest.mark.parametrize("epsilon", ["1e-30", "5e-324", "1/3000000", "1234567890123456789/10"])
def test_the_engine_refuses_such_epsilons_itself(
    world: Group, live: tuple[LiveServer, Room], epsilon: str
) -> None:
    """Behind the edge too (the web console, reports, scripts reach the engine directly)."""
    _, room = live
    user = room.users.get("okala-analyst")
    with pytest.raises(QueryRejected) as refused:
        Engine(room).run(QueryRequest(sql=SQL, epsilon=Fraction(epsilon)), user)
    assert refused.value.rule in {"epsilon_too_small", "epsilon_invalid", "epsilon_over_cap"}
    assert "running" not in statuses(room)


def test_a_failure_while_charging_settles_the_query(
    live: tuple[LiveServer, Room], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, room = live

    def broken(*_: object, **__: object) -> int:
        raise RuntimeError("the ledger broke")

    monkeypatch.setattr(Ledger, "charge", broken)
    with pytest.raises(RuntimeError):
        Engine(room).run(
            QueryRequest(sql=SQL, epsilon=Fraction(1, 7)), room.users.get("okala-analyst")
        )
    assert "running" not in statuses(room)
    assert statuses(room).get("failed", 0) >= 1


def test_identical_queries_in_flight_share_one_charge_and_one_answer(
    world: Group, live: tuple[LiveServer, Room], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, room = live
    real_pause = engine_module.faults.pause

    def slow(point: str) -> None:  # the first answer takes a while: the others arrive meanwhile
        if point == "query.release":
            time.sleep(1.5)
        real_pause(point)

    monkeypatch.setattr(engine_module.faults, "pause", slow)
    db = room.store.connection()
    charges_before = int(db.execute("SELECT count(*) FROM budget_charges").fetchone()[0])
    body = {"sql": SQL, "epsilon": 0.123}
    token = world.tokens["okala_analyst"]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: call(server, token, json=body), range(12)))
    assert all(a.status_code == 200 for a in answers), [a.text[:200] for a in answers]
    results = [a.json() for a in answers]
    assert len({json.dumps(r["rows"], sort_keys=True) for r in results}) == 1
    assert sum(not r["cached"] for r in results) == 1
    charged = int(db.execute("SELECT count(*) FROM budget_charges").fetchone()[0])
    assert charged - charges_before == 1
    assert "running" not in statuses(room)


def test_a_large_body_is_refused_before_it_is_read(
    world: Group, live: tuple[LiveServer, Room]
) -> None:
    server, _ = live
    declared = httpx.post(
        server.url + "/api/v1/queries",
        content=b"{" + b" " * (200 * LIMIT) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"
    sent = 0

    def stream() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        nonlocal sent
        for _ in range(2_000):
            sent += LIMIT // 8
            yield b" " * (LIMIT // 8)

    token = world.tokens["okala_analyst"]
    try:
        streamed = call(server, token, content=stream())
        assert streamed.status_code == 413
    except httpx.HTTPError:  # the server answered and closed before the client finished
        pass
    assert sent < 2_000 * (LIMIT // 8)  # the server stopped listening long before the end
    form = httpx.post(
        server.url + "/ui/signin", data={"token": "x" * (2 * LIMIT)}, timeout=60
    )  # a web form: the same limit, answered as a page
    assert form.status_code == 413 and "text/html" in form.headers["content-type"]
    upload = httpx.post(
        server.url + "/api/v1/datasets",
        content=world.bundles[("okala", "orders")].read_bytes(),
        headers={"Authorization": f"Bearer {world.tokens['okala_admin']}"},
        timeout=120,
    )
    assert upload.status_code == 409, upload.text  # its own limit: read, then a replay refused


def test_every_room_file_is_private(world: Group, live: tuple[LiveServer, Room]) -> None:
    _, room = live
    engine = Engine(room)
    run = ReportRunner(engine).run("overlap-now", user=room.users.get("room-admin"))
    assert run.status == "done", run.error
    logging_done = world.room_dir / "logs" / "service.log"
    assert logging_done.exists()
    seen = 0
    wrong = []
    for directory, subdirectories, files in os.walk(world.room_dir):
        for name in (*subdirectories, *files, ""):
            path = Path(directory) / name
            if path.is_symlink() or not path.exists():
                continue
            wanted = 0o700 if path.is_dir() else 0o600
            seen += 1
            if stat.S_IMODE(path.stat().st_mode) != wanted:
                wrong.append(f"{path}: {oct(stat.S_IMODE(path.stat().st_mode))}")
    assert seen > 10 and not wrong, wrong
    assert any(p.name == "report.html" for p in (world.room_dir / "reports").rglob("*"))
