"""The data's life, driven as the operator and the analysts drive it.

- expiry: `cleanroom room expire` against the serving room deletes what the
  policy's retention says is due (its tables gone from the warehouse), audits
  it, and every query is then refused with 410 `data_expired` (the CLI in one
  line);
- backup: `kill -9` of `cleanroom room backup` in the middle of the archive
  leaves no archive and the room serving (queries, uploads); the next backup
  is whole; `cleanroom room restore` rebuilds a room whose chain verifies and
  which answers a cached query identically;
- upgrade: the committed room of schema 10 opens with this release, migrates,
  verifies and answers its cached query unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cleanroom import accuracy, clock
from cleanroom.contract.keys import generate_backup_keys
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.recovery import check_ledger
from cleanroom.room.state import Room
from cleanroom.room.store import MIGRATIONS
from tests.system.test_web import Visitor, csrf_of
from tests.system.world import LiveServer, World, build_world, free_port, open_room, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rooms"


def call(url: str, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=120, **kw
    )


def load(room: Room, world: World) -> None:
    for (party, _), bundle in sorted(world.bundles.items()):
        ingest(room, bundle, room.users.get(f"{party}-admin"))
    run_match(room, room.users.get("room-admin"))


# -- expiry ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def expiring(tmp_path_factory: pytest.TempPathFactory) -> World:
    from cleanroom.demo.scenario import build_group

    return build_group(
        tmp_path_factory.mktemp("expiry"), persons=300, seed=13, retention={"dataset_days": 30}
    )


def test_expiry_deletes_refuses_and_is_audited(expiring: World) -> None:
    room = open_room(expiring.room_dir)
    room.settings = room.settings.model_copy(update={"scheduler": False, "language": "fa"})
    load(room, expiring)
    analyst, admin = expiring.tokens["okala_analyst"], expiring.tokens["room_admin"]
    try:
        with LiveServer(room) as server:
            asked = call(
                server.url, analyst, "POST", "/api/v1/queries", json={"template": "overlap"}
            )
            assert asked.status_code == 200, asked.text
            before = room.wh.tables()
            # six dataset versions, six analysis tables, the journeys' prepared sequence (two)
            assert len(before) == 14
            kept = run_cli(
                "room", "expire", "--url", server.url, "--token", admin, cwd=expiring.root
            )
            assert kept.returncode == 0 and "nothing has outlived" in kept.stdout
            assert room.wh.tables() == before
            with clock.use(clock.SetClock(clock.now() + timedelta(days=30, minutes=1))):
                done = run_cli(
                    "room", "expire", "--url", server.url, "--token", admin, cwd=expiring.root
                )
                assert done.returncode == 0, done.stderr
                assert "expired 6 dataset version(s) and 1 match generation(s)" in done.stdout
                assert "okala.orders v1" in done.stdout
                assert room.wh.tables() == set()  # every table of both kinds: deleted
                refused = call(
                    server.url, analyst, "POST", "/api/v1/queries", json={"template": "overlap"}
                )
                assert refused.status_code == 410, refused.text
                error = refused.json()["error"]
                assert error["code"] == "data_expired" and error["details"]["generation"] == 1
                assert "retention" in error["message"]
                cli = run_cli(
                    "query",
                    "--url",
                    server.url,
                    "--token",
                    analyst,
                    "--template",
                    "overlap",
                    cwd=expiring.root,
                )
                assert cli.returncode == 1
                line = cli.stderr.strip()
                assert "\n" not in line and "expired" in line and "generation 1" in line
                # The web console, in the room's Persian: the refusal named, nothing charged.
                browser = Visitor(server.url)
                assert browser.sign_in(analyst).status_code == 303
                page = browser.get("/ui/console")
                shown = browser.post(
                    "/ui/console", {"csrf": csrf_of(page.text), "template": "overlap"}
                )
                assert shown.status_code == 410
                assert "مدت نگه‌داری دادهٔ نسل تطبیق" in shown.text  # "the data … has expired"
                assert "هزینه‌ای کسر نشد" in shown.text  # "nothing was charged"
                assert call(server.url, admin, "GET", "/api/v1/datasets").json() == []
                orders = call(server.url, analyst, "GET", "/api/v1/datasets/okala/orders").json()
                assert orders["status"] == "expired"
                assert [v["status"] for v in orders["versions"]] == ["expired"]
                theirs = call(server.url, analyst, "GET", "/api/v1/datasets/tapsi/rides").json()
                assert theirs["status"] == "expired" and "versions" not in theirs
                entries = call(server.url, admin, "GET", "/api/v1/audit?action=data.expired")
                [entry] = entries.json()
                assert entry["details"]["generations"] == [1]
                assert len(entry["details"]["datasets"]) == 6
                assert call(server.url, admin, "GET", "/api/v1/audit/verify").json()["ok"]
    finally:
        room.close()


# -- backup and restore -----------------------------------------------------------


class Service:
    """`cleanroom serve` in a process of its own, so that a backup can be killed beside it."""

    def __init__(self, world: World, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = world.room_dir / "logs" / "service.log"
        self.start = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cleanroom",
                "serve",
                "--room",
                str(world.room_dir),
                "--port",
                str(self.port),
            ],
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
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/api/v1/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.kill()
        raise RuntimeError("the service did not become ready")

    def logged(self, needle: str) -> bool:
        if not self.log.exists():
            return False
        with self.log.open(encoding="utf-8") as fh:
            fh.seek(self.start)
            return needle in fh.read()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:  # a backup paused at its fault point keeps a worker asleep: do not wait for it
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def backed(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = build_world(tmp_path_factory.mktemp("backup"), persons=300, seed=17)
    generate_backup_keys(world.root / "backup-keys")
    room = open_room(world.room_dir)
    try:
        load(room, world)
    finally:
        room.close()
    return world


def backup_cli(world: World, url: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cleanroom",
            "room",
            "backup",
            "--url",
            url,
            "--token",
            world.tokens["room_admin"],
            "--out",
            str(out),
        ],
        env={**os.environ, "CLEANROOM_ENVIRONMENT": "development"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_during_a_backup_then_a_whole_one_restores_the_same_room(
    backed: World, tmp_path: Path
) -> None:
    world = backed
    out = tmp_path / "room.backup"
    partial = tmp_path / ".room.backup.partial"
    service = Service(
        world,
        backup_key=str(world.root / "backup-keys" / "backup.pub"),
        fault_pause="backup.stream#3",  # the 3rd table: the archive half written
    )
    analyst = world.tokens["okala_analyst"]
    writer: subprocess.Popen[str] | None = None
    try:
        first = call(service.url, analyst, "POST", "/api/v1/queries", json={"template": "overlap"})
        assert first.status_code == 200, first.text
        writer = backup_cli(world, service.url, out)
        deadline = time.monotonic() + 120
        while not (
            service.logged("fault point backup.stream reached")
            and partial.exists()
            and partial.stat().st_size > 0
        ):
            assert time.monotonic() < deadline and writer.poll() is None, "backup never paused"
            time.sleep(0.05)
        written = partial.stat().st_size
        writer.send_signal(signal.SIGKILL)  # kill -9 in the middle of the write
        writer.communicate(timeout=30)
        assert not out.exists()  # absent: never a half archive under its name
        assert written > 0
        # The room goes on serving: answers, a new upload, a cached answer.
        assert (
            call(service.url, world.tokens["room_admin"], "GET", "/api/v1/ready").status_code == 200
        )
        newer = tmp_path / "okala.orders.bundle"
        world.seal("okala", "orders", newer)
        uploaded = call(
            service.url,
            world.tokens["okala_admin"],
            "POST",
            "/api/v1/datasets",
            content=newer.read_bytes(),
        )
        assert uploaded.status_code == 201, uploaded.text
        again = call(service.url, analyst, "POST", "/api/v1/queries", json={"template": "overlap"})
        assert again.status_code == 200 and again.json()["cached"]
        # The next backup is whole (and clears the leftover).
        whole = backup_cli(world, service.url, out)
        stdout, stderr = whole.communicate(timeout=300)
        assert whole.returncode == 0, stderr
        assert "archive written" in stdout and out.exists() and not partial.exists()
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.communicate(timeout=30)
        service.stop()
    restored = tmp_path / "restored"
    done = run_cli(
        "room",
        "restore",
        out,
        "--into",
        restored,
        "--keys",
        world.room_dir / "keys",
        "--backup-key",
        world.root / "backup-keys" / "backup.key",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "audit chain verified" in done.stdout and "budget ledger consistent" in done.stdout
    verified = run_cli("audit", "verify", "--room", restored, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    room = open_room(restored)
    try:
        answer = Engine(room).run(QueryRequest(template="overlap"), room.users.get("okala-analyst"))
        assert answer["cached"] and answer["rows"] == first.json()["rows"]
        assert answer["cached_from"] == first.json()["query_id"]
        versions = room.store.connection().execute(
            "SELECT version, status FROM datasets WHERE party = 'okala' ORDER BY version"
        )
        assert [tuple(r) for r in versions] == [(1, "replaced"), (2, "live")]
        assert check_ledger(room, idle=False).ok
    finally:
        room.close()


def test_a_backup_without_a_backup_key_is_refused_with_the_reason(
    backed: World, tmp_path: Path
) -> None:
    room = open_room(backed.room_dir)
    try:
        with LiveServer(room) as server:
            done = run_cli(
                "room",
                "backup",
                "--url",
                server.url,
                "--token",
                backed.tokens["room_admin"],
                "--out",
                tmp_path / "x.backup",
                cwd=tmp_path,
            )
    finally:
        room.close()
    assert done.returncode == 1 and "backup_key" in done.stderr
    assert not (tmp_path / "x.backup").exists()


# -- upgrade ------------------------------------------------------------------------


@pytest.fixture
def old_room(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    made = json.loads((FIXTURES / "schema-10.json").read_text())
    copy = tmp_path / "room"
    shutil.copytree(FIXTURES / "schema-10", copy)
    yield copy, made


def test_a_room_of_the_previous_schema_opens_and_migrates(
    old_room: tuple[Path, dict[str, Any]],
) -> None:
    path, made = old_room
    with path.joinpath("meta.sqlite").open("rb"):
        pass
    room = open_room(path)
    try:
        db = room.store.connection()
        versions = [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY 1")]
        assert versions == list(range(1, len(MIGRATIONS) + 1)) and made["schema"] < len(MIGRATIONS)
        columns = {r[1] for r in db.execute("PRAGMA table_info(datasets)")}
        assert "expired_at" in columns
        paid_for = db.execute("SELECT query_id, report_run, generation FROM budget_charges")
        assert [tuple(r) for r in paid_for] == [(made["query_id"], None, None)]
        assert room.audit.verify().ok and check_ledger(room).ok
        stored = db.execute("SELECT result FROM queries WHERE id = ?", (made["query_id"],))
        original = json.loads(stored.fetchone()[0])
        answer = Engine(room).run(
            QueryRequest(template=made["query"]["template"]), room.users.get(made["user"])
        )
        assert answer["cached"] and answer["cached_from"] == made["query_id"]
        assert answer["rows"] == accuracy.annotate(original)["rows"]  # same numbers, read anew
        assert room.wh.tables()  # the warehouse opened with the room's own key
    finally:
        room.close()
    verified = run_cli("audit", "verify", "--room", path, cwd=path.parent)
    assert verified.returncode == 0, verified.stderr


def test_a_stopped_room_is_expired_and_backed_up_from_its_directory(
    backed: World, tmp_path: Path
) -> None:
    copy = tmp_path / "room"
    shutil.copytree(backed.room_dir, copy)
    key = backed.root / "backup-keys" / "backup.pub"
    (copy / "room.yaml").write_text(f"backup_key: {key}\n", encoding="utf-8")
    expired = run_cli("room", "expire", "--room", copy, cwd=tmp_path)
    assert expired.returncode == 0 and "nothing has outlived" in expired.stdout
    persian = run_cli(
        "room", "expire", "--room", copy, cwd=tmp_path, env={"CLEANROOM_LANGUAGE": "fa"}
    )
    assert "چیزی از مدت نگه‌داری نگذشته است" in persian.stdout
    stopped = open_room(copy)
    try:  # the module's earlier tests backed the room up too
        before = len(stopped.audit.entries(action="room.backup", limit=100))
    finally:
        stopped.close()
    done = run_cli("room", "backup", "--room", copy, "--out", tmp_path / "a.backup", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = run_cli("room", "backup", "--room", copy, "--out", tmp_path / "a.backup", cwd=tmp_path)
    assert again.returncode == 1 and "never overwritten" in again.stderr
    both = run_cli("room", "backup", "--out", tmp_path / "b.backup", cwd=tmp_path)
    assert both.returncode == 1 and "either --url" in both.stderr
    restored = run_cli(
        "room",
        "restore",
        tmp_path / "a.backup",
        "--into",
        tmp_path / "restored",
        "--keys",
        copy / "keys",
        "--backup-key",
        backed.root / "backup-keys" / "backup.key",
        cwd=tmp_path,
    )
    assert restored.returncode == 0, restored.stderr
    room = open_room(tmp_path / "restored")
    try:
        entries = room.audit.entries(action="room.backup", limit=100)
        assert len(entries) == before + 1  # the archive holds its own backup's entry
    finally:
        room.close()
