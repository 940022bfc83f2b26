"""The room through its CLI, as an operator and a party's data engineer would run it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from cleanroom.demo.scenario import free_port
from cleanroom.synth import generate
from tests.system.world import run_cli

cli = run_cli


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site")
    data = generate(base / "data", persons=1_000, seed=3, parties=["okala"])
    ok(cli("keys", "party", "okala", "--out", "okala", cwd=base))
    match_id = (
        ok(cli("keys", "match-key", "--out", "match.key", cwd=base))
        .split("match_key_id: ")[1]
        .strip()
    )
    spec = yaml.safe_load(data.specs[("okala", "orders")].read_text())
    policy = {
        "collaboration": "cli-test",
        "match_key_id": match_id,
        "parties": {
            "okala": {
                "name": "Okala",
                "public_key_file": "okala/okala.pub",
                "datasets": {"orders": {k: v for k, v in spec.items() if k != "dataset"}},
            }
        },
    }
    (base / "policy.yaml").write_text(yaml.safe_dump(policy))
    ok(cli("room", "init", "room", "--policy", "policy.yaml", cwd=base))
    ok(
        cli(
            "prepare",
            "--party",
            "okala",
            "--dataset",
            "orders",
            "--input",
            data.files[("okala", "orders")],
            "--spec",
            data.specs[("okala", "orders")],
            "--match-key",
            "match.key",
            "--room-key",
            "room/keys/room.pub",
            "--signing-key",
            "okala/okala.key",
            "--out",
            "orders.bundle",
            cwd=base,
        )
    )
    return base


def test_room_init_refuses_bad_policy_and_used_directory(site: Path) -> None:
    (site / "bad.yaml").write_text("collaboration: x\nmatch_key_id: nope\nparties: {}\n")
    result = cli("room", "init", "room2", "--policy", "bad.yaml", cwd=site)
    assert result.returncode == 1 and "bad.yaml: match_key_id" in result.stderr
    assert not (site / "room2").exists()
    result = cli("room", "init", "room", "--policy", "policy.yaml", cwd=site)
    assert result.returncode == 1 and "not empty" in result.stderr


def test_operator_and_party_flow(site: Path) -> None:
    added = cli("users", "add", "--room", "room", "ops", "--role", "room_admin", cwd=site)
    admin = ok(added).strip()
    assert "\n" not in admin and admin.startswith("cr_")  # the token alone on stdout
    assert "added ops (room_admin)" in added.stderr and admin not in added.stderr
    uploader = ok(
        cli(
            "users",
            "add",
            "--room",
            "room",
            "eng",
            "--role",
            "party_admin",
            "--party",
            "okala",
            cwd=site,
        )
    ).splitlines()[-1]
    refused = cli(
        "users", "add", "--room", "room", "x", "--role", "analyst", "--party", "nobody", cwd=site
    )
    assert refused.returncode == 1 and "not in the collaboration" in refused.stderr
    listed = ok(cli("users", "list", "--room", "room", cwd=site))
    assert "eng" in listed and "party_admin" in listed and uploader not in listed

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cleanroom", "serve", "--room", "room", "--port", str(port)],
        cwd=site,
        env={**os.environ, "CLEANROOM_ENVIRONMENT": "development"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/v1/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        uploaded = ok(cli("upload", "orders.bundle", "--url", url, "--token", uploader, cwd=site))
        assert "okala.orders v1 is live" in uploaded
        again = cli("upload", "orders.bundle", "--url", url, "--token", uploader, cwd=site)
        assert again.returncode == 1 and "room refused (409 conflict)" in again.stderr
        matched = json.loads(
            ok(cli("match", "--url", url, env={"CLEANROOM_TOKEN": admin}, cwd=site))
        )
        assert matched["generation"] == 1 and matched["withheld"]["links"] == 0
        latest = json.loads(
            ok(cli("match", "--latest", "--url", url, "--token", uploader, cwd=site))
        )
        assert latest["generation"] == 1 and latest["withheld"] == {"links": 0}  # its own count
        ok(cli("users", "revoke", "--room", "room", "eng", cwd=site))
        revoked = cli("upload", "orders.bundle", "--url", url, "--token", uploader, cwd=site)
        assert revoked.returncode == 1 and "room refused (401 unauthorized)" in revoked.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    log = (site / "room" / "logs" / "service.log").read_text()
    assert '"route": "/api/v1/datasets"' in log and uploader not in log and admin not in log

    assert "audit chain verifies" in ok(cli("audit", "verify", "--room", "room", cwd=site))
    assert "dataset.upload" in ok(cli("audit", "list", "--room", "room", cwd=site))
    with sqlite3.connect(site / "room" / "meta.sqlite") as db:
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE action = 'dataset.upload'")
    broken = cli("audit", "verify", "--room", "room", cwd=site)
    assert broken.returncode == 1
    assert "was altered" in broken.stdout and "audit chain broken at entry" in broken.stderr
