"""A tampered audit chain, on the real service: writes stop with a clear answer; the room lives.

A rogue operator edits ``meta.sqlite`` by hand while the service runs — deletes
the newest audit row, rewrites a budget charge's epsilon in the middle, or
deletes the head record. Each time the room keeps serving what needs no
record (health, the audit trail, budgets, datasets, past results), refuses
everything that must be recorded with 503 ``audit_chain_broken`` naming the
entry (API, web UI, CLI), leaves no ``running`` row and no charge behind, and
starts again after a restart. Two people re-anchor the chain with
``cleanroom audit reanchor``; the room records again, and ``audit verify``
still names the break, with who resumed and why.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cleanroom.demo.scenario import Group, build_group, open_room
from cleanroom.errors import AuditChainBroken
from cleanroom.room import faults
from cleanroom.room.auth import Role
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.recovery import check_ledger, recover
from cleanroom.room.reports.runner import ReportRunner
from tests.security.test_faults import REPORT, REPORTS, SQL, Service, consistent, meta, standing
from tests.system.test_web import Visitor

FRESH_SQL = "SELECT channel, COUNT(*) AS n FROM okala.orders GROUP BY channel"
REFUSED = "nothing more is recorded until an operator investigates"


def newest(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT max(seq) FROM audit").fetchone()[0])


def delete_newest(db: sqlite3.Connection) -> int:
    seq = newest(db)
    db.execute("DELETE FROM audit WHERE seq = ?", (seq,))
    return seq


def edit_middle(db: sqlite3.Connection) -> int:
    """A budget charge's epsilon rewritten (entries follow it, so it is in the middle)."""
    (seq,) = db.execute(
        "SELECT max(seq) FROM audit WHERE action = 'budget.charge' AND outcome = 'ok'"
    ).fetchone()
    assert seq < newest(db)
    db.execute(
        "UPDATE audit SET details = json_set(details, '$.epsilon', '1/1000') WHERE seq = ?", (seq,)
    )
    return int(seq)


def delete_head(db: sqlite3.Connection) -> int:
    db.execute("DELETE FROM audit_head")
    return newest(db)


DAMAGE: dict[str, Callable[[sqlite3.Connection], int]] = {
    "newest-row-deleted": delete_newest,
    "middle-row-edited": edit_middle,
    "head-record-deleted": delete_head,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Group:
    group = build_group(tmp_path_factory.mktemp("tamper"), persons=300, seed=31, reports=REPORTS)
    room = open_room(group.room_dir)
    try:
        for (party, _), bundle in sorted(group.bundles.items()):
            ingest(room, bundle, room.users.get(f"{party}-admin"))
        run_match(room, room.users.get("room-admin"))
        room.users.add("reviewer-2", Role.reviewer)
    finally:
        room.close()
    return group


@pytest.fixture
def group(prepared: Group, tmp_path: Path) -> Group:
    """A copy of the prepared room for each test: tampering is for good."""
    copy = tmp_path / "room"
    shutil.copytree(prepared.room_dir, copy)
    return dataclasses.replace(prepared, room_dir=copy, tokens=dict(prepared.tokens))


@pytest.fixture
def services() -> list[Service]:
    return []


@pytest.fixture(autouse=True)
def _stop_services(services: list[Service]) -> object:
    yield None
    for svc in services:
        if svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(timeout=30)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cleanroom", *args],
        env={**os.environ, "CLEANROOM_ENVIRONMENT": "development"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tamper(group: Group, damage: Callable[[sqlite3.Connection], int]) -> int:
    db = sqlite3.connect(group.room_dir / "meta.sqlite", isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN IMMEDIATE")
        entry = damage(db)
        db.execute("COMMIT")
        return entry
    finally:
        db.close()


def running_rows(group: Group) -> dict[str, int]:
    with meta(group) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table} WHERE status = 'running'").fetchone()[
                0
            ]
            for table in ("queries", "report_runs", "matches")
        }


def refused(response: httpx.Response, entry: int) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    error = response.json()["error"]
    assert error["code"] == "audit_chain_broken"
    assert error["details"]["entry"] == entry
    assert f"audit chain broken at entry {entry}: {REFUSED}" in error["message"]
    assert "Traceback" not in response.text and response.headers["Retry-After"].isdigit()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_tampered_chain_stops_writes_and_never_bricks_the_room(
    group: Group, services: list[Service], damage: str
) -> None:
    room_arg = ("--room", str(group.room_dir))
    # The middle edit is below the tip appends check: the periodic full pass finds it.
    svc = Service(group, audit_verify_interval="1" if damage == "middle-row-edited" else "600")
    services.append(svc)
    answered = svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL})
    assert answered.status_code == 200, answered.text
    query_id = answered.json()["query_id"]
    before = standing(group, "okala")
    entry = tamper(group, DAMAGE[damage])
    with meta(group) as db:
        entries = db.execute("SELECT count(*) FROM audit").fetchone()[0]

    if damage == "middle-row-edited":  # wait for the periodic re-verification
        deadline = time.monotonic() + 30
        while svc.call("GET", "/api/v1/ready", None).json()["recording"]:
            assert time.monotonic() < deadline, "the edit was never found"
            time.sleep(0.2)

    # Refused, naming the break: everything that must be recorded.
    bundle = group.seal("ozone", "payments", group.root / f"{damage}.bundle")
    refused(svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": FRESH_SQL}), entry)
    refused(svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL}), entry)
    refused(svc.call("POST", "/api/v1/datasets", "ozone_admin", content=bundle.read_bytes()), entry)
    refused(svc.call("POST", "/api/v1/matches", "room_admin"), entry)
    refused(svc.call("POST", f"/api/v1/reports/{REPORT}/run", "room_admin"), entry)
    # Served: what needs no record, and what an operator needs to investigate.
    assert svc.call("GET", "/api/v1/health", None).status_code == 200
    assert svc.call("GET", "/api/v1/ready", None).json()["recording"] is False
    verdict = svc.call("GET", "/api/v1/audit/verify", "reviewer").json()
    assert (verdict["recording"], verdict["broken_at"]) == (False, entry)
    assert svc.call("GET", "/api/v1/audit?limit=5", "reviewer").status_code == 200
    assert svc.call("GET", "/api/v1/budget", "okala_analyst").status_code == 200
    assert svc.call("GET", "/api/v1/datasets", "okala_analyst").status_code == 200
    past = svc.call("GET", f"/api/v1/queries/{query_id}", "okala_analyst")
    assert past.status_code == 200 and past.json()["status"] == "done"
    anonymous = httpx.get(svc.url + "/api/v1/budget", headers={"Authorization": "Bearer x"})
    assert anonymous.status_code == 401  # a refusal keeps its own answer
    # The web UI: the same error, as a page.
    page = Visitor(svc.url).sign_in(group.tokens["reviewer"])
    assert page.status_code == 503 and f"audit chain broken at entry {entry}" in page.text
    # The CLI: a one-line error.
    added = cli("users", "add", *room_arg, "newcomer", "--role", "reviewer")
    assert added.returncode == 1
    assert added.stderr.strip().splitlines() == [
        f"error: audit chain broken at entry {entry}: {REFUSED} ({verdict['open_problems'][0]})"
    ]
    # Nothing half-done: no running row, no new charge, no entry written past the break.
    assert running_rows(group) == {"queries": 0, "report_runs": 0, "matches": 0}
    assert standing(group, "okala") == before
    with meta(group) as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == entries
    svc.stop()

    # The room starts again, still refusing, and says why in its log.
    svc = Service(group)
    services.append(svc)
    refused(svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": FRESH_SQL}), entry)
    assert "audit chain broken" in svc.log.read_text()
    assert running_rows(group) == {"queries": 0, "report_runs": 0, "matches": 0}

    # Two people re-anchor (the policy asks for two approvals); the service resumes at once.
    alone = cli("audit", "reanchor", *room_arg, "--reason", "x", "--by", "reviewer")
    assert alone.returncode == 1 and "two people" in alone.stderr
    reason = f"INC-21: {damage} by hand; copy of meta.sqlite kept for the reviewers"
    done = cli(
        "audit", "reanchor", *room_arg, "--reason", reason,
        "--by", "reviewer", "--second", "reviewer-2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"break at entry {entry}" in done.stdout
    again = svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": FRESH_SQL})
    assert again.status_code == 200, again.text
    uploaded = svc.call("POST", "/api/v1/datasets", "ozone_admin", content=bundle.read_bytes())
    assert uploaded.status_code == 201, uploaded.text
    reviewer = Visitor(svc.url)
    assert reviewer.sign_in(group.tokens["reviewer"]).status_code == 303  # recorded again
    trail = reviewer.get("/ui/audit").text
    assert "re-anchored by an operator" in trail and "reviewer, reviewer-2" in trail
    assert verdict["open_problems"][0] in trail  # the break, named on the page too
    verified = cli("audit", "verify", *room_arg)
    assert verified.returncode == 0, verified.stderr
    assert verdict["open_problems"][0] in verified.stdout  # the break, named forever
    assert "by reviewer and reviewer-2" in verified.stdout and reason in verified.stdout
    svc.stop()
    svc = Service(group)  # and after a restart
    services.append(svc)
    assert svc.call("GET", "/api/v1/ready", None).json()["recording"] is True
    svc.stop()
    consistent(group)


def test_a_query_killed_before_the_tampering_is_left_for_the_operator(
    group: Group, services: list[Service]
) -> None:
    """The issue's own story: the restart after a kill and a deleted row must still start."""
    svc = Service(group, fault_pause="query.release")
    services.append(svc)
    before = standing(group, "okala")
    asking = svc.in_background("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL})
    svc.wait_for_fault("query.release")
    svc.kill()
    asking.join(timeout=30)
    entry = tamper(group, delete_newest)  # the query's own charge entry

    svc = Service(group)  # starts: recovery cannot record, so it leaves the query as it is
    services.append(svc)
    assert svc.call("GET", "/api/v1/health", None).status_code == 200
    log = svc.log.read_text()
    assert "start-up recovery left for the operator" in log
    assert running_rows(group)["queries"] == 1  # left, said so, charge standing (safe side)
    assert standing(group, "okala") > before
    refused(svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL}), entry)

    done = cli(
        "audit", "reanchor", "--room", str(group.room_dir),
        "--reason", "charge entry deleted by hand", "--by", "room-admin", "--second", "reviewer",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "left for start-up recovery: 1 queries" in done.stdout
    svc.stop()
    svc = Service(group)  # the next start settles it, audited
    services.append(svc)
    assert running_rows(group)["queries"] == 0
    assert standing(group, "okala") == before
    recovered = svc.call("GET", "/api/v1/audit?action=query.recovered", "reviewer").json()
    assert len(recovered) == 1
    svc.stop()
    consistent(group)


# -- the chain breaking in the middle of an action: closed like any other failure ------


def test_a_break_between_the_check_and_the_charge_leaves_no_running_query(
    group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = open_room(group.room_dir)
    try:
        analyst = room.users.get("okala-analyst")
        engine = Engine(room)
        before = standing(group, "okala")
        tamper(group, delete_newest)
        monkeypatch.setattr(room.audit, "require_intact", lambda: None)  # the race, forced
        with pytest.raises(AuditChainBroken):
            engine.run(QueryRequest(sql=FRESH_SQL), analyst)
        assert running_rows(group)["queries"] == 0
        with meta(group) as db:
            assert db.execute("SELECT status FROM queries").fetchall()[-1][0] == "failed"
        assert standing(group, "okala") == before  # the charge rolled back with its entry
    finally:
        room.close()


def test_a_break_after_the_charge_fails_the_query_and_keeps_the_charge_until_reanchored(
    group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Computed but not stored: failed at once; the refund waits until it can be recorded."""
    room = open_room(group.room_dir)
    try:
        analyst = room.users.get("okala-analyst")
        before = standing(group, "okala")

        def break_the_chain(point: str) -> None:
            if point == "query.release":
                tamper(group, delete_head)

        monkeypatch.setattr(faults, "pause", break_the_chain)
        with pytest.raises(AuditChainBroken):
            Engine(room).run(QueryRequest(sql=FRESH_SQL), analyst)
        assert running_rows(group)["queries"] == 0
        assert standing(group, "okala") > before  # the safe side: never less accounted
        room.audit.reanchor(by=["reviewer"], reason="head deleted during a query")
        recovered = recover(room, ReportRunner(Engine(room)))
        assert len(recovered.refunds) == 1 and recovered.reason is None
        assert standing(group, "okala") == before
        assert check_ledger(room).ok
    finally:
        room.close()
