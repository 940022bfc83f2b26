"""Faults: the service SIGKILLed at its worst moments, its disk full, its metadata store locked.

Each test runs the real service (`python -m cleanroom serve`, a subprocess, as an
operator runs it), breaks it, starts it again and checks what the rules promise:
nothing lost, nothing half-written, the budget ledger consistent with the
released results (:func:`cleanroom.room.recovery.check_ledger`), the audit chain
intact. Ingest killed mid-way is ``tests/system/test_room_crash.py``.

Hitting "between the charge and the release" on purpose. A slow query on a big
table would leave the kill to a race between a timer and the machine's speed,
flaky on a loaded CI box and never sure to land inside the window. Instead the
code names its critical places with :func:`cleanroom.room.faults.pause`, and a
*development* room started with ``CLEANROOM_FAULT_PAUSE=<point>`` sleeps there
and says so in its log; the test waits for that line, checks from outside (the
metadata file) that it is where it wants to be, and kills. Production refuses
the setting, and unset it is one dictionary lookup.

A full disk without root. A size-limited tmpfs or loop device needs mount
rights; instead the server process gets RLIMIT_FSIZE (``prlimit`` on its pid):
a write past the limit fails with EFBIG (Python ignores SIGXFSZ), exactly as a
write to a full disk fails with ENOSPC — same failed ``write()``, same code path,
classified alike (``disk_full``, 507). The limit is chosen from the sizes on
disk so that the bundle is received but loading it into the warehouse is not.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from cleanroom.demo.scenario import Group, build_group, free_port, open_room
from cleanroom.room.auth import Role
from cleanroom.room.http.app import create_app
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.recovery import check_ledger
from cleanroom.synth import generate

SQL = "SELECT city, COUNT(*) AS n FROM okala.orders GROUP BY city"
REPORT = "overlap-twice"
REPORTS = {
    REPORT: {
        "title": "Overlap, two sections",
        "schedule": "0 6 1 1 *",
        "recipients": ["reviewers"],
        "sections": [
            {"template": "overlap", "params": {"parties": "ofogh,okala"}, "epsilon": 0.05},
            {"template": "overlap", "params": {"parties": "okala,tapsi"}, "epsilon": 0.05},
        ],
    }
}
FIGURES: list[str] = []
SERVE = [sys.executable, "-m", "cleanroom", "serve"]


class Service:
    """`cleanroom serve` in a subprocess of its own (so that it can be SIGKILLed)."""

    def __init__(self, group: Group, **env: str) -> None:
        self.group = group
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = group.room_dir / "logs" / "service.log"
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(
            [*SERVE, "--room", str(group.room_dir), "--port", str(self.port)],
            env={
                **os.environ,
                "CLEANROOM_ENVIRONMENT": "development",
                "CLEANROOM_LOG_FORMAT": "text",
                "CLEANROOM_SCHEDULER": "false",
                **{f"CLEANROOM_{k.upper()}": v for k, v in env.items()},
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 180  # a start-up on two loaded cores can take a minute
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/api/v1/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.kill()
        raise RuntimeError("the service did not become ready")

    def call(self, method: str, path: str, who: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.group.tokens[who]}"} if who else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=120, **kw)

    def in_background(self, method: str, path: str, who: str, **kw: Any) -> threading.Thread:
        """Send a request whose answer never comes (the service is killed meanwhile)."""
        outcome: dict[str, object] = {}

        def send() -> None:
            try:
                outcome["response"] = self.call(method, path, who, **kw)
            except httpx.HTTPError as err:
                outcome["error"] = err

        thread = threading.Thread(target=send, daemon=True)
        thread.outcome = outcome  # type: ignore[attr-defined]
        thread.start()
        return thread

    def wait_for_fault(self, point: str, timeout: float = 60) -> None:
        needle = f"fault point {point} reached"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists():
                with self.log.open(encoding="utf-8") as fh:
                    fh.seek(self.log_start)
                    if needle in fh.read():
                        return
            assert self.process.poll() is None, "the service died before the fault point"
            time.sleep(0.05)
        raise AssertionError(f"the service never reached fault point {point}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Group:
    group = build_group(tmp_path_factory.mktemp("faults"), persons=1_000, seed=23, reports=REPORTS)
    room = open_room(group.room_dir)
    try:
        for (party, _), bundle in sorted(group.bundles.items()):
            ingest(room, bundle, room.users.get(f"{party}-admin"))
        run_match(room, room.users.get("room-admin"))
        group.tokens["reviewer_2"] = room.users.add("reviewer-2", Role.reviewer)[1]
    finally:
        room.close()
    return group


@pytest.fixture
def service(group: Group) -> Iterator[list[Service]]:
    """Every service a test starts, stopped at its end whatever happened."""
    started: list[Service] = []
    yield started
    for svc in started:
        if svc.process.poll() is None:
            svc.process.kill()
            svc.process.wait(timeout=30)


def meta(group: Group) -> sqlite3.Connection:
    """The metadata store as another process sees it (read-only; WAL lets it read anytime)."""
    db = sqlite3.connect(f"file:{group.room_dir / 'meta.sqlite'}?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    return db


def standing(group: Group, party: str) -> Fraction:
    with meta(group) as db:
        rows = db.execute(
            "SELECT epsilon_num, epsilon_den FROM budget_charges "
            "WHERE party = ? AND refunded_at IS NULL",
            (party,),
        ).fetchall()
    return sum((Fraction(r[0], r[1]) for r in rows), Fraction(0))


def consistent(group: Group) -> dict[str, Any]:
    """The ledger rules and the audit chain, read from the store (the service stopped)."""
    room = open_room(group.room_dir)
    try:
        check = check_ledger(room)
        assert check.ok, check.problems
        tables = room.wh.tables()
        assert not [t for t in tables if t.startswith("stage_")], tables
        live = {
            r[0]
            for r in room.store.connection().execute(
                "SELECT table_name FROM datasets WHERE status = 'live'"
            )
        }
        datasets = {t for t in tables if t.startswith("d_")}
        assert datasets == live, (datasets, live)  # no orphan and no missing version
        assert not list(room.paths.uploads.glob("*"))
        return check.as_dict()
    finally:
        room.close()


def test_sigkill_between_the_budget_charge_and_the_release(
    group: Group, service: list[Service]
) -> None:
    """Charged, computed, not stored: at restart the query is failed and its charge refunded."""
    svc = Service(group, fault_pause="query.release")
    service.append(svc)
    before = standing(group, "okala")
    asking = svc.in_background("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL})
    svc.wait_for_fault("query.release")
    with meta(group) as db:  # where we are: a standing charge for a query still running
        (query_id, epsilon) = db.execute(
            "SELECT q.id, q.epsilon FROM queries q JOIN budget_charges c ON c.query_id = q.id "
            "WHERE q.status = 'running' AND c.refunded_at IS NULL"
        ).fetchone()
    assert standing(group, "okala") == before + Fraction(epsilon)
    svc.kill()
    asking.join(timeout=30)
    assert "response" not in asking.outcome  # type: ignore[attr-defined]

    svc = Service(group)
    service.append(svc)
    assert standing(group, "okala") == before  # refunded: nobody saw that answer
    shown = svc.call("GET", f"/api/v1/queries/{query_id}", "okala_analyst")
    assert shown.json() == {"query_id": query_id, "status": "failed"}
    recovered = svc.call("GET", "/api/v1/audit?action=query.recovered", "reviewer").json()
    assert [e["details"]["query_id"] for e in recovered] == [query_id]
    refunds = svc.call("GET", "/api/v1/audit?action=budget.refund", "reviewer").json()
    assert [e["actor"] for e in refunds if e["details"]["query_id"] == query_id] == ["recovery"]
    again = svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL})
    assert again.status_code == 200, again.text
    assert again.json()["cached"] is False  # the lost answer was never cached either
    assert standing(group, "okala") == before + Fraction(epsilon)
    svc.stop()
    consistent(group)
    FIGURES.append(f"SIGKILL between charge and release -> query failed, {epsilon} refunded")


def test_sigkill_inside_a_policy_activation(group: Group, service: list[Service]) -> None:
    """The activation is one transaction: killed inside it, version 1 stays active, whole."""
    svc = Service(group, fault_pause="policy.activate")
    service.append(svc)
    current = svc.call("GET", "/api/v1/policies/active", "reviewer").json()
    doc = yaml.safe_load(current["yaml"])
    doc["privacy"]["min_noisy_persons"] = doc["privacy"]["min_noisy_persons"] + 5  # tightens
    text = yaml.safe_dump(doc, sort_keys=False)
    proposed = svc.call("POST", "/api/v1/policies", "reviewer", json={"yaml": text})
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]
    first = svc.call("POST", f"/api/v1/policies/{version}/approve", "reviewer_2", json={})
    assert first.status_code == 200 and first.json()["status"] == "proposed", first.text
    # The third reviewer's approval reaches the bar: the activation starts and stops inside.
    group.tokens["reviewer_3"] = _add_user(group, "reviewer-3", Role.reviewer)
    activating = svc.in_background(
        "POST", f"/api/v1/policies/{version}/approve", "reviewer_3", json={}
    )
    svc.wait_for_fault("policy.activate")
    svc.kill()
    activating.join(timeout=30)
    assert "response" not in activating.outcome  # type: ignore[attr-defined]

    svc = Service(group)
    service.append(svc)
    active = svc.call("GET", "/api/v1/policies/active", "reviewer").json()
    assert active["version"] == current["version"]  # the old version, whole
    shown = svc.call("GET", f"/api/v1/policies/{version}", "reviewer").json()
    assert shown["status"] == "proposed"
    assert shown["approvals"] == ["reviewer-2"]  # the cut-off approval was never recorded
    retried = svc.call("POST", f"/api/v1/policies/{version}/approve", "reviewer_3", json={})
    assert retried.status_code == 200 and retried.json()["status"] == "active", retried.text
    svc.stop()
    consistent(group)
    FIGURES.append("SIGKILL inside a policy activation -> old version active, retry activates")


def _add_user(group: Group, name: str, role: Role) -> str:
    room = open_room(group.room_dir, warehouse=False)  # the metadata store is multi-process
    try:
        return room.users.add(name, role)[1]
    finally:
        room.close()


@pytest.mark.parametrize(("passage", "released"), [(1, 0), (2, 1)])
def test_sigkill_during_a_report_run(
    group: Group, service: list[Service], passage: int, released: int
) -> None:
    """Cut off before any section is stored: refunded. After one section: the charge stands."""
    svc = Service(group, fault_pause=f"report.section#{passage}")
    service.append(svc)
    before = standing(group, "reporter")
    running = svc.in_background("POST", f"/api/v1/reports/{REPORT}/run", "room_admin")
    svc.wait_for_fault("report.section")
    with meta(group) as db:
        (run_id,) = db.execute(
            "SELECT id FROM report_runs WHERE status = 'running' AND report = ?", (REPORT,)
        ).fetchone()
    assert standing(group, "reporter") == before + Fraction("0.1")  # charged once, up front
    svc.kill()
    running.join(timeout=30)

    svc = Service(group)
    service.append(svc)
    run = svc.call("GET", f"/api/v1/reports/{REPORT}/runs/{run_id}", "reviewer").json()
    assert run["status"] == "failed" and "interrupted" in run["error"]
    assert run["refunded"] is (released == 0)
    assert run["files"] == []  # nothing published
    expected = before if released == 0 else before + Fraction("0.1")
    assert standing(group, "reporter") == expected
    fresh = svc.call("POST", f"/api/v1/reports/{REPORT}/run", "room_admin")
    assert fresh.status_code == 201 and fresh.json()["status"] == "done", fresh.text
    svc.stop()
    consistent(group)
    outcome = "charge refunded" if released == 0 else "charge stands (1 section stored)"
    FIGURES.append(f"SIGKILL in a report run before section {passage} -> run failed, {outcome}")


def test_disk_full_during_ingest(group: Group, service: list[Service], tmp_path: Path) -> None:
    """The disk fills while a bundle arrives, then while it loads: 507, the old version stays."""
    big = generate(tmp_path / "big", persons=60_000, seed=29, parties=["okala"])
    group.data.files[("okala", "orders")] = big.files[("okala", "orders")]
    first = group.seal("okala", "orders", tmp_path / "first.bundle")
    second = group.seal("okala", "orders", tmp_path / "second.bundle")  # same data, new bundle
    svc = Service(group)
    service.append(svc)
    up = svc.call("POST", "/api/v1/datasets", "okala_admin", content=first.read_bytes())
    assert up.status_code == 201, up.text
    live = up.json()
    warehouse = group.room_dir / "warehouse.duckdb"

    def limit(size: int) -> None:
        resource.prlimit(svc.process.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    # 1. Full while receiving: the spool file cannot hold the bundle.
    limit(second.stat().st_size // 2)
    refused = svc.call("POST", "/api/v1/datasets", "okala_admin", content=second.read_bytes())
    assert refused.status_code == 507, refused.text
    assert refused.json()["error"]["code"] == "disk_full"
    assert not list((group.room_dir / "uploads").glob("*"))
    # 2. Full while loading: the bundle fits, the new table does not.
    limit(max(second.stat().st_size, warehouse.stat().st_size) + 512 * 1024)
    refused = svc.call("POST", "/api/v1/datasets", "okala_admin", content=second.read_bytes())
    assert refused.status_code == 507, refused.text
    body = refused.text
    assert "disk" in refused.json()["error"]["message"]
    assert "Traceback" not in body and "duckdb" not in body.lower()
    shown = svc.call("GET", "/api/v1/datasets/okala/orders", "okala_admin").json()
    assert shown["versions"][0] == live  # the old version is live, whole
    answered = svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": SQL})
    assert answered.status_code == 200, answered.text  # the service still works
    # Space freed: the same bundle goes through (no replay: it was never ingested).
    limit(resource.RLIM_INFINITY)
    retried = svc.call("POST", "/api/v1/datasets", "okala_admin", content=second.read_bytes())
    assert retried.status_code == 201, retried.text
    assert retried.json()["version"] == live["version"] + 1
    svc.stop()
    consistent(group)
    FIGURES.append("disk full while receiving and while loading -> 507 twice, old version live")


def test_a_locked_metadata_store_fails_requests_cleanly(
    group: Group, service: list[Service]
) -> None:
    """Another process holds BEGIN EXCLUSIVE: writes fail with 503 store_busy, reads go on."""
    svc = Service(group, store_busy_timeout="1")
    service.append(svc)
    fresh_sql = "SELECT channel, COUNT(*) AS n FROM okala.orders GROUP BY channel"
    before = standing(group, "okala")
    with meta(group) as db:
        (queries_before,) = db.execute("SELECT count(*) FROM queries").fetchone()
        (audit_before,) = db.execute("SELECT count(*) FROM audit").fetchone()
    bundle = group.seal("ofogh", "purchases", group.root / "ofogh-again.bundle")
    holder = sqlite3.connect(group.room_dir / "meta.sqlite", isolation_level=None, timeout=10)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        writes = [
            svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": fresh_sql}),
            svc.call("POST", "/api/v1/datasets", "ofogh_admin", content=bundle.read_bytes()),
            svc.call("POST", f"/api/v1/reports/{REPORT}/run", "room_admin"),
            svc.call("POST", "/api/v1/matches", "room_admin"),
        ]
        reads = [
            svc.call("GET", "/api/v1/budget", "okala_analyst"),
            svc.call("GET", "/api/v1/datasets", "okala_analyst"),
        ]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for r in writes:
        assert r.status_code == 503, (r.request.url, r.text)
        assert r.json()["error"]["code"] == "store_busy"
        assert "locked" in r.json()["error"]["message"] and "Traceback" not in r.text
        assert r.headers["Retry-After"].isdigit()
    assert [r.status_code for r in reads] == [200, 200]
    with meta(group) as db:  # nothing half-written: no query row, no charge, no entry
        assert db.execute("SELECT count(*) FROM queries").fetchone()[0] == queries_before
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == audit_before
    assert standing(group, "okala") == before
    # The lock released, the same requests go through.
    answered = svc.call("POST", "/api/v1/queries", "okala_analyst", json={"sql": fresh_sql})
    assert answered.status_code == 200, answered.text
    uploaded = svc.call("POST", "/api/v1/datasets", "ofogh_admin", content=bundle.read_bytes())
    assert uploaded.status_code == 201, uploaded.text
    svc.stop()
    figures = consistent(group)
    FIGURES.append(f"metadata store locked -> {len(writes)} writes 503, {len(reads)} reads 200")
    print("faults:", *FIGURES, sep="\n  ")
    print(f"faults: ledger after all faults: {figures}")


def locked_error(path: Path) -> sqlite3.OperationalError:
    """A real "database is locked" (with its SQLite error code), from a real lock."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        sqlite3.connect(path, timeout=0).execute("CREATE TABLE t (x)")
    except sqlite3.OperationalError as err:
        return err
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    raise AssertionError("the lock did not hold")


def failing(err: Exception) -> Any:
    def fail() -> None:
        raise err

    return fail


async def ask(app: Any, paths: list[str]) -> dict[str, httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://room") as client:
        return {path: await client.get(path) for path in paths}


def test_environment_failures_are_named_and_bugs_stay_500(group: Group, tmp_path: Path) -> None:
    """The API's mapping, route by route: a full disk 507, a lock 503, anything else 500."""
    failures = {
        "/boom/disk": OSError(errno.ENOSPC, "No space left on device"),
        "/boom/duckdb-disk": duckdb.IOException('Could not write file "x": File too large'),
        "/boom/locked": locked_error(tmp_path / "locked.db"),
        "/boom/bug": duckdb.CatalogException("Table with name x does not exist!"),
    }
    room = open_room(group.room_dir)
    try:
        app = create_app(room)
        for path, err in failures.items():
            app.add_api_route(path, failing(err))
        answers = asyncio.run(ask(app, list(failures)))
    finally:
        room.close()
    assert answers["/boom/disk"].status_code == 507
    assert answers["/boom/duckdb-disk"].json()["error"]["code"] == "disk_full"
    assert answers["/boom/locked"].status_code == 503
    assert answers["/boom/locked"].json()["error"]["code"] == "store_busy"
    assert answers["/boom/bug"].status_code == 500
    assert answers["/boom/bug"].json()["error"]["message"] == "internal error; see the service log"
    for r in answers.values():
        assert "Traceback" not in r.text and "Table with name" not in r.text
