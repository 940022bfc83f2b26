"""Reports end to end: scheduled and manual runs over real data, budget, access, files, CLI."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from threading import Barrier

import httpx
import pytest

from cleanroom import clock
from cleanroom.demo.scenario import build_group
from cleanroom.room.query.engine import Engine
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.reports.runs import ReportBusy, ReportRun, SlotTaken
from cleanroom.room.reports.schedule import latest_slot
from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, open_room, run_cli


def last_weekly_slot() -> datetime:
    """The weekly report's latest Monday slot before the room's clock."""
    return latest_slot(str(REPORTS["overlap-weekly"]["schedule"]), clock.now())


def overlap(epsilon: float) -> dict[str, object]:
    return {"template": "overlap", "params": {"parties": "ofogh,okala,tapsi"}, "epsilon": epsilon}


REPORTS = {
    "overlap-weekly": {
        "title": "Weekly overlap",
        "schedule": "0 6 * * mon",
        "recipients": ["okala", "reviewers"],
        "sections": [overlap(0.05), {"template": "overlap", "epsilon": 0.05}],
    },
    "overlap-minutely": {
        "title": "Overlap every minute",
        "schedule": "* * * * *",
        "recipients": ["reviewers"],
        "sections": [overlap(0.1)],
    },
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_group(tmp_path_factory.mktemp("reports"), persons=1_500, seed=3, reports=REPORTS)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[LiveServer, Room]]:
    room = open_room(world.room_dir)
    room.settings = room.settings.model_copy(update={"scheduler": False})
    with LiveServer(room) as server:
        for (party, _), bundle in sorted(world.bundles.items()):
            r = call(
                server,
                "POST",
                "/api/v1/datasets",
                world.tokens[f"{party}_admin"],
                content=bundle.read_bytes(),
            )
            assert r.status_code == 201, r.text
        r = call(server, "POST", "/api/v1/matches", world.tokens["room_admin"])
        assert r.status_code == 201, r.text
        yield server, room
    room.close()


def call(server: LiveServer, method: str, path: str, token: str, **kw: object) -> httpx.Response:
    return httpx.request(  # type: ignore[arg-type]
        method, server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=120, **kw
    )


def reporter_spent(room: Room) -> Fraction:
    privacy = room.active_policy().policy.privacy
    assert privacy is not None
    return Engine(room).ledger.status("reporter", privacy.budget).spent


def charges_of(room: Room, run_id: str) -> list[tuple[str | None, str, int]]:
    rows = room.store.connection().execute(
        "SELECT query_id, report_run, refunded_at IS NULL FROM budget_charges WHERE report_run = ?",
        (run_id,),
    )
    return [(r[0], r[1], r[2]) for r in rows]


def test_two_overlapping_runs_of_one_slot_charge_once(live: tuple[LiveServer, Room]) -> None:
    _, room = live
    runner = ReportRunner(Engine(room))
    slot = last_weekly_slot()
    before = reporter_spent(room)
    start = Barrier(2)

    def attempt(_: int) -> ReportRun | SlotTaken:
        start.wait()
        try:
            return runner.run("overlap-weekly", slot=slot)
        except SlotTaken as err:
            return err

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attempt, range(2)))
    runs = [o for o in outcomes if isinstance(o, ReportRun)]
    assert len(runs) == 1 and sum(isinstance(o, SlotTaken) for o in outcomes) == 1
    run = runs[0]
    assert run.status == "done", run.error
    assert run.slot == slot.isoformat() and run.trigger == "schedule"
    assert charges_of(room, run.id) == [(None, run.id, 1)]  # the run's own column, no query
    assert reporter_spent(room) - before == Fraction(1, 10)  # the whole run, charged once
    # and the slot stays taken: a third attempt later is told so, and charges nothing
    with pytest.raises(SlotTaken, match="already done"):
        runner.run("overlap-weekly", slot=slot)
    assert reporter_spent(room) - before == Fraction(1, 10)
    # each section is a recorded, audited query paid by that one charge
    audited = [
        e
        for e in room.audit.entries(action="query.run", limit=1000)
        if e.details.get("report_run") == run.id
    ]
    assert len(audited) == 2 and all(e.details["policy_version"] == 1 for e in audited)
    sections = room.store.connection().execute(
        "SELECT id FROM queries WHERE report_run = ? AND status = 'done'", (run.id,)
    )
    assert sorted(r[0] for r in sections) == sorted(e.details["query_id"] for e in audited)
    assert all(e.details["result_sha256"] for e in audited)


def test_a_run_over_the_reporter_budget_is_refused_recorded_and_unpublished(
    live: tuple[LiveServer, Room],
) -> None:
    _, room = live
    engine = Engine(room)
    privacy = room.active_policy().policy.privacy
    assert privacy is not None
    left = engine.ledger.status("reporter", privacy.budget).left
    filler = engine.ledger.charge(
        "reporter",
        left - Fraction(1, 20),
        policy=privacy.budget,
        query_id="test-filler",
        actor="test",
    )
    try:
        spent = reporter_spent(room)
        run = ReportRunner(engine).run("overlap-weekly")  # needs 0.1, 0.05 left
        assert run.status == "refused" and run.charge_id is None
        assert run.error is not None and "privacy budget exhausted" in run.error
        assert run.files == [] and run.outputs is None
        assert reporter_spent(room) == spent
        assert not (room.paths.root / "reports" / "overlap-weekly" / run.id).exists()
        assert not list((room.paths.root / "reports").glob("*/.*.partial"))
        refused = room.audit.entries(action="report.run", limit=1000)[-1]
        assert refused.outcome == "refused" and refused.details["run_id"] == run.id
    finally:
        engine.ledger.refund(filler, actor="test", reason="test over")


def test_a_manual_run_while_one_is_running_is_a_conflict(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    server, room = live
    runner = ReportRunner(Engine(room))
    held = runner.runs.claim(
        "held0000",
        "overlap-weekly",
        "manual:held0000",
        trigger="manual",
        actor="test",
        policy_version=1,
        generation=1,
        epsilon=Fraction(1, 10),
        inputs={},
    )
    try:
        with pytest.raises(ReportBusy):
            runner.run("overlap-weekly")
        r = call(server, "POST", "/api/v1/reports/overlap-weekly/run", world.tokens["reporter"])
        assert r.status_code == 409 and "already running" in r.json()["error"]["message"]
    finally:
        assert runner.recover() == [held.id]


def test_reports_over_http(world: World, live: tuple[LiveServer, Room]) -> None:
    server, room = live
    reporter, analyst = world.tokens["reporter"], world.tokens["okala_analyst"]
    r = call(server, "POST", "/api/v1/reports/overlap-weekly/run", reporter)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "done" and run["trigger"] == "manual" and run["epsilon"] == "1/10"
    assert {"report.html", "results.json", "01-overlap-upset.png"} <= set(run["files"])
    r = call(server, "POST", "/api/v1/reports/overlap-weekly/run", world.tokens["room_admin"])
    assert r.status_code == 201 and r.json()["status"] == "done"

    listed = call(server, "GET", "/api/v1/reports", analyst).json()
    assert [x["name"] for x in listed] == ["overlap-weekly"]  # not a recipient of the other
    assert listed[0]["last_run"]["status"] == "done" and listed[0]["epsilon_float"] == 0.1
    assert len(call(server, "GET", "/api/v1/reports", world.tokens["reviewer"]).json()) == 2
    runs = call(server, "GET", "/api/v1/reports/overlap-weekly/runs", analyst).json()
    assert run["run_id"] in [x["run_id"] for x in runs]
    base = f"/api/v1/reports/overlap-weekly/runs/{run['run_id']}"
    assert call(server, "GET", base, analyst).json()["files"] == run["files"]

    page = call(server, "GET", f"{base}/files/report.html", analyst)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        "Weekly overlap" in page.text
        and "default-src 'none'" in page.headers["content-security-policy"]
    )
    results = call(server, "GET", f"{base}/files/results.json", analyst).json()
    assert results["run_id"] == run["run_id"] and len(results["sections"]) == 2
    for row in results["sections"][0]["result"]["rows"]:
        assert row["persons"]["error95"] > 0
    chart = call(server, "GET", f"{base}/files/01-overlap-upset.png", analyst)
    assert chart.content.startswith(b"\x89PNG") and len(chart.content) > 5_000
    on_disk = room.paths.root / "reports" / "overlap-weekly" / run["run_id"] / "report.html"
    assert on_disk.read_text() == page.text
    archive = call(server, "GET", f"{base}/archive", analyst)
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        names = {n.split("/", 1)[1]: n for n in zf.namelist()}
        assert set(names) == set(run["files"])  # every file of the run, nothing beside them
        assert zf.read(names["report.html"]).decode() == page.text
        assert zf.read(names["01-overlap-upset.png"]) == chart.content

    for bad in (
        "..%2F..%2Fmeta.sqlite",
        "..%2Fmeta.sqlite",
        "meta.sqlite",
        "%2e%2e",  # (a literal '..' is resolved by the client before it is sent)
        "report.html%00.png",
        "keys%2Froom.key",
    ):
        r = call(server, "GET", f"{base}/files/{bad}", reporter)
        assert r.status_code == 404, (bad, r.status_code)
        assert b"SQLite" not in r.content and b"PRIVATE" not in r.content
    other = runs[-1]["run_id"] if runs[-1]["run_id"] != run["run_id"] else runs[0]["run_id"]
    r = call(
        server, "GET", f"/api/v1/reports/overlap-minutely/runs/{other}/files/report.html", reporter
    )
    assert r.status_code == 404  # a run's files only under its own report

    outsider = world.tokens["ofogh_analyst"]  # ofogh is not a recipient
    for path in (
        "/api/v1/reports/overlap-weekly/runs",
        base,
        f"{base}/files/report.html",
        f"{base}/archive",
    ):
        assert call(server, "GET", path, outsider).status_code == 404
    assert call(server, "GET", "/api/v1/reports", outsider).json() == []
    assert call(server, "GET", base, world.tokens["okala_admin"]).status_code == 403
    assert call(server, "POST", "/api/v1/reports/overlap-weekly/run", analyst).status_code == 403
    r = call(server, "POST", "/api/v1/reports/nope/run", reporter)
    assert r.status_code == 404


def test_the_cli_runs_lists_and_fetches_reports(
    world: World, live: tuple[LiveServer, Room], tmp_path: Path
) -> None:
    server, _ = live
    auth = ["--url", server.url, "--token", world.tokens["reporter"]]
    ran = run_cli("report", "run", "overlap-weekly", *auth, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "done" in ran.stdout and "report.html" in ran.stdout
    listed = run_cli("report", "list", *auth, cwd=tmp_path)
    assert listed.returncode == 0 and "overlap-weekly" in listed.stdout
    assert "overlap-minutely" in listed.stdout
    got = run_cli("report", "get", "overlap-weekly", *auth, "--out", tmp_path / "out", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.html", "results.json", "01-overlap-upset.png", "01-overlap.csv"} <= files
    missing = run_cli("report", "run", "nope", *auth, cwd=tmp_path)
    assert missing.returncode == 1 and "no report 'nope'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_a_scheduled_report_runs_by_itself(live: tuple[LiveServer, Room]) -> None:
    _, room = live
    # The report's schedule takes effect at its policy's activation: move that two
    # minutes back, so that this minute's slot is due now.
    back = clock.stamp(clock.now() - timedelta(minutes=2))
    room.store.connection().execute(
        "UPDATE policy_versions SET activated_at = ? WHERE status = 'active'", (back,)
    )
    room.settings = room.settings.model_copy(update={"scheduler": True, "scheduler_interval": 0.2})
    started = time.monotonic()
    with LiveServer(room) as scheduled:
        app = scheduled.server.config.app
        while time.monotonic() - started < 15:
            runs = [
                r
                for r in app.state.reports.runs.recent("overlap-minutely")
                if r.trigger == "schedule" and r.status != "running"
            ]
            if runs:
                break
            time.sleep(0.2)
        assert app.state.scheduler.alive
    room.settings = room.settings.model_copy(update={"scheduler": False})
    assert not app.state.scheduler.alive  # stopped with the service
    assert runs and runs[0].status == "done", runs
    slot = datetime.fromisoformat(runs[0].slot)
    assert slot.second == 0 and clock.now() - slot < timedelta(minutes=2)
    assert (
        json.loads(
            (room.paths.root / runs[0].outputs / "results.json").read_text()  # type: ignore[operator]
        )["slot"]
        == runs[0].slot
    )
    # the weekly report's last Monday slot predates its activation: not run by the
    # scheduler, although an earlier test ran that slot by hand
    weekly = app.state.reports.runs.recent("overlap-weekly")
    by_hand = last_weekly_slot().isoformat()
    assert {r.slot for r in weekly if r.trigger == "schedule"} <= {by_hand}
