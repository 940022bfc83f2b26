"""The authorization matrix: every API operation x every role (and no token), on another
party's resources.

The contract below is written by hand from DESIGN.md §6 and the routes' documented
audiences, not read from the code, so a route that starts admitting a role it
should not (or a new route nobody placed in the matrix) fails here. Every cell is
a real request to a live server: no token is a 401, a role outside the contract a
403 naming the role needed, and both are audited (``auth.denied``); a role inside
it gets past the role check (a domain refusal may follow). The resources are
tapsi's — its dataset, its query, its bundle, a report only tapsi and the
reviewers receive — asked for by okala's users and the group-wide roles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cleanroom.demo.scenario import Group, LiveServer, build_group, open_room
from cleanroom.room.http.app import create_app
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.state import Room
from tests.system.world import load_and_match

PARTY_ADMIN, ANALYST, REVIEWER, ROOM_ADMIN, REPORTER = (
    "party_admin",
    "analyst",
    "reviewer",
    "room_admin",
    "reporter",
)
EVERYONE = {PARTY_ADMIN, ANALYST, REVIEWER, ROOM_ADMIN, REPORTER}
PUBLIC = {"anonymous", *EVERYONE}
READERS = {ANALYST, REPORTER, REVIEWER, ROOM_ADMIN}
OVERSIGHT = {REVIEWER, ROOM_ADMIN}
CONTRACT: dict[str, set[str]] = {
    "GET /api/v1/health": PUBLIC,
    "GET /api/v1/ready": PUBLIC,
    "POST /api/v1/datasets": {PARTY_ADMIN},
    "GET /api/v1/datasets": EVERYONE,
    "GET /api/v1/datasets/{party}/{dataset}": EVERYONE,
    "POST /api/v1/matches": {ROOM_ADMIN},
    "GET /api/v1/matches/latest": EVERYONE,
    "POST /api/v1/queries": {ANALYST, REPORTER},
    "GET /api/v1/queries": READERS,
    "GET /api/v1/queries/{query_id}": READERS,
    "GET /api/v1/budget": EVERYONE,
    "GET /api/v1/policies": OVERSIGHT,
    "POST /api/v1/policies": {REVIEWER},
    "GET /api/v1/policies/active": EVERYONE,
    "GET /api/v1/policies/diff": OVERSIGHT,
    "GET /api/v1/policies/{version}": OVERSIGHT,
    "POST /api/v1/policies/{version}/approve": {REVIEWER},
    "POST /api/v1/policies/{version}/reject": {REVIEWER},
    "POST /api/v1/policies/{version}/rollback": {REVIEWER},
    "GET /api/v1/reports": READERS,
    "GET /api/v1/reports/{name}/runs": READERS,
    "POST /api/v1/reports/{name}/run": {REPORTER, ROOM_ADMIN},
    "GET /api/v1/reports/{name}/runs/{run_id}": READERS,
    "GET /api/v1/reports/{name}/runs/{run_id}/files/{file}": READERS,
    "GET /api/v1/reports/{name}/runs/{run_id}/archive": READERS,
    "GET /api/v1/audit": OVERSIGHT,
    "GET /api/v1/audit/verify": OVERSIGHT,
    "GET /api/v1/me": EVERYONE,
    "POST /api/v1/room/expire": {ROOM_ADMIN},
    "GET /api/v1/room/backup": {ROOM_ADMIN},
}
IDENTITIES = {  # who asks: okala's users, the group-wide roles, and no one
    "anonymous": None,
    PARTY_ADMIN: "okala_admin",
    ANALYST: "okala_analyst",
    REVIEWER: "reviewer",
    ROOM_ADMIN: "room_admin",
    REPORTER: "reporter",
}
REPORT = "tapsi-only"
REPORTS = {
    REPORT: {
        "title": "tapsi and the reviewers only",
        "schedule": "0 6 1 1 *",
        "recipients": ["tapsi", "reviewers"],
        "sections": [{"template": "overlap", "params": {"parties": "okala,tapsi"}, "epsilon": 0.1}],
    }
}
ROLE_REFUSAL = "this needs the role"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Group:
    return build_group(tmp_path_factory.mktemp("authz"), persons=800, seed=43, reports=REPORTS)


@pytest.fixture(scope="module")
def live(world: Group) -> Iterator[tuple[LiveServer, Room, dict[str, str]]]:
    room = open_room(world.room_dir)
    room.settings = room.settings.model_copy(update={"scheduler": False})
    load_and_match(room, world)
    engine = Engine(room)
    theirs = engine.run(
        QueryRequest(sql="SELECT COUNT(*) AS n FROM tapsi.rides"), room.users.get("tapsi-analyst")
    )
    run = ReportRunner(engine).run(REPORT, user=room.users.get("room-admin"))
    assert run.status == "done", run.error
    values = {
        "party": "tapsi",
        "dataset": "rides",
        "query_id": str(theirs["query_id"]),
        "version": "1",
        "name": REPORT,
        "run_id": run.id,
        "file": run.files[0],
    }
    with LiveServer(room) as server:
        yield server, room, values
    room.close()


def denials(room: Room) -> int:
    db = room.store.connection()
    return int(db.execute("SELECT count(*) FROM audit WHERE action = 'auth.denied'").fetchone()[0])


def request_for(operation: str, values: dict[str, str], world: Group) -> tuple[str, str, Any]:
    method, path = operation.split(" ", 1)
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    body: dict[str, Any] = {
        "POST /api/v1/datasets": {"content": world.bundles[("tapsi", "rides")].read_bytes()},
        "POST /api/v1/queries": {"json": {"sql": "SELECT COUNT(*) AS n FROM tapsi.rides"}},
        "POST /api/v1/policies": {"json": {"yaml": "collaboration: not-a-policy"}},
        "POST /api/v1/policies/{version}/reject": {"json": {"comment": "no"}},
        "GET /api/v1/policies/diff": {"params": {"to": "1"}},
    }.get(operation, {})
    return method, path, body


def test_every_operation_admits_exactly_the_roles_of_the_contract(
    world: Group, live: tuple[LiveServer, Room, dict[str, str]]
) -> None:
    server, room, values = live
    document = create_app(room).openapi()
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert operations == set(CONTRACT), operations ^ set(CONTRACT)  # every route in the matrix
    denied_before = denials(room)
    cells: Counter[str] = Counter()
    wrong = []
    for operation, admitted in sorted(CONTRACT.items()):
        method, path, body = request_for(operation, values, world)
        for role, who in IDENTITIES.items():
            headers = {"Authorization": f"Bearer {world.tokens[who]}"} if who else {}
            r = httpx.request(method, server.url + path, headers=headers, timeout=120, **body)
            role_refused = r.status_code == 403 and ROLE_REFUSAL in r.text
            if role in admitted:
                ok = r.status_code not in (401, 500) and not role_refused
                cells["admitted"] += 1
            elif role == "anonymous":
                ok = r.status_code == 401
                cells["401 without a token"] += 1
            else:
                ok = role_refused
                cells["403 for the role"] += 1
            if not ok:
                wrong.append(f"{operation} as {role}: {r.status_code} {r.text[:120]}")
    assert not wrong, wrong
    denied = denials(room) - denied_before
    assert denied == cells["401 without a token"] + cells["403 for the role"]
    print(
        f"authorization matrix: {len(CONTRACT)} operations x {len(IDENTITIES)} identities = "
        f"{sum(cells.values())} requests: {dict(cells)}; every refusal audited"
    )


def test_another_partys_resources_stay_out_of_reach(
    world: Group, live: tuple[LiveServer, Room, dict[str, str]]
) -> None:
    """okala's users, admitted by role, still get nothing of tapsi's."""
    server, _, v = live

    def call(method: str, path: str, who: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {world.tokens[who]}"}
        return httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)

    their_query = call("GET", f"/api/v1/queries/{v['query_id']}", "okala_analyst")
    assert their_query.status_code == 404  # not even its existence
    assert call("GET", f"/api/v1/queries/{v['query_id']}", "tapsi_analyst").status_code == 200
    upload = call(
        "POST",
        "/api/v1/datasets",
        "okala_admin",
        content=world.bundles[("tapsi", "rides")].read_bytes(),
    )
    assert upload.status_code == 403 and "tapsi" in upload.text
    report = f"/api/v1/reports/{REPORT}/runs/{v['run_id']}"
    for path in (report, f"{report}/files/{v['file']}", f"/api/v1/reports/{REPORT}/runs"):
        assert call("GET", path, "okala_analyst").status_code in (403, 404), path
        assert call("GET", path, "tapsi_analyst").status_code == 200, path
    listed = call("GET", "/api/v1/reports", "okala_analyst").json()
    assert REPORT not in {r["name"] for r in listed}
    budget = call("GET", "/api/v1/budget", "okala_analyst").json()
    assert [p["party"] for p in budget["parties"]] == ["okala"]  # its own balance only
