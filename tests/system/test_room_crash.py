"""kill -9 in the middle of an ingest: after a restart the old version or the new one is live,
never a mix; nothing half-made remains; the upload can be retried; the audit chain holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cleanroom.synth import generate
from tests.system.world import World, build_world, free_port, open_room


def start_server(room_dir: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "cleanroom", "serve", "--room", str(room_dir), "--port", str(port)],
        env={**os.environ, "CLEANROOM_ENVIRONMENT": "development", "CLEANROOM_LOG_FORMAT": "text"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180  # a start-up on two loaded cores can take a minute
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready (exit code {process.poll()})")


def post(port: int, token: str, bundle: Path) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/api/v1/datasets",
        content=bundle.read_bytes(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
    )


def dataset(port: int, token: str) -> dict:
    return httpx.get(
        f"http://127.0.0.1:{port}/api/v1/datasets/okala/orders",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("crash"), persons=1_000)


def test_sigkill_during_ingest(world: World, tmp_path: Path) -> None:
    big_data = generate(tmp_path / "big", persons=120_000, seed=5, parties=["okala"])
    world.data.files[("okala", "orders")] = big_data.files[("okala", "orders")]
    big = world.seal("okala", "orders", tmp_path / "big.bundle")
    small = world.bundles[("okala", "orders")]
    token = world.tokens["okala_admin"]
    port = free_port()
    server = start_server(world.room_dir, port)
    try:
        assert post(port, token, small).status_code == 201
        v1 = dataset(port, token)["versions"][0]

        outcome: dict[str, object] = {}
        sender = threading.Thread(target=lambda: outcome.update(r=_try_post(port, token, big)))
        sender.start()
        uploads = world.room_dir / "uploads"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            received = sum(p.stat().st_size for p in uploads.glob("*.bundle"))
            if received >= big.stat().st_size:
                break
            time.sleep(0.005)
        time.sleep(0.05)  # into the ingest: decrypting, re-keying, loading
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        sender.join(timeout=60)
        assert not isinstance(outcome.get("r"), httpx.Response) or outcome["r"].status_code != 201
    finally:
        if server.poll() is None:
            server.kill()

    server = start_server(world.room_dir, port)
    try:
        live = dataset(port, token)["versions"][0]
        assert live["status"] == "live"
        if live["version"] == v1["version"]:
            assert live["rows"] == v1["rows"]  # the old version, whole
            retried = post(port, token, big)
            assert retried.status_code == 201, retried.text  # not mistaken for a replay
            live = dataset(port, token)["versions"][0]
        assert live["rows"] > v1["rows"]
        assert not list((world.room_dir / "uploads").glob("*"))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    room = open_room(world.room_dir)
    try:
        tables = room.wh.tables()
        assert not [t for t in tables if t.startswith("stage_")]
        assert [t for t in tables if t.startswith("d_okala__orders")] == [
            f"d_okala__orders__v{live['version']}"
        ]
        assert room.audit.verify().ok
    finally:
        room.close()


def _try_post(port: int, token: str, bundle: Path) -> httpx.Response | Exception:
    try:
        return post(port, token, bundle)
    except httpx.HTTPError as err:
        return err
