"""`cleanroom demo` end to end at a small size: the flow `make demo` runs, as a user sees it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.system.world import run_cli

PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_publishes_the_journeys_report_with_every_template(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    done = run_cli("demo", "--persons", "3000", "--out", out, cwd=tmp_path, env={"COLUMNS": "400"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = out / "report"
    assert f"report: {report / 'report.html'}" in done.stdout
    results = json.loads((report / "results.json").read_text())
    templates = [s["template"] for s in results["sections"]]
    assert templates == [
        "overlap", "transitions", "funnel", "time_to_cross", "retention", "segments", "lift",
    ]  # fmt: skip
    for section in results["sections"]:
        assert section["result"]["rows"], section["template"]
    html = (report / "report.html").read_text()
    pngs = sorted(report.glob("*.png"))
    assert len(pngs) >= len(templates)
    for png in pngs:
        assert png.read_bytes().startswith(PNG) and png.stat().st_size > 5_000, png.name
        assert png.name in html
    for template in templates:
        assert template in done.stdout
    # A second run starts from nothing, but only in a directory a demo made; this one in
    # Persian (the room's `language` setting): the report opens right-to-left, in Persian.
    again = run_cli("demo", "--persons", "1000", "--out", out, "--language", "fa", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    persian = (report / "report.html").read_text()
    assert '<html lang="fa" dir="rtl">' in persian
    assert "سفرهای مشتریان گروه میان برندها" in persian and "اکالا" in persian
    assert (out / "room" / "room.yaml").read_text() == "language: fa\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not the demo's")
    refused = run_cli("demo", "--persons", "1000", "--out", tmp_path / "mine", cwd=tmp_path)
    assert refused.returncode != 0 and (tmp_path / "mine" / "keep.txt").exists()


def test_demo_serve_keeps_the_room_up_with_a_token_per_role(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import stat
    import subprocess
    import sys
    import time

    import httpx

    from tests.system.world import free_port

    port = free_port()
    out = tmp_path / "demo-out"
    env = {**os.environ, "CLEANROOM_ENVIRONMENT": "development", "COLUMNS": "200"}
    args = [sys.executable, "-m", "cleanroom", "demo", "--persons", "1000", "--out", str(out)]
    proc = subprocess.Popen(
        [*args, "--serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        tokens_file = out / "tokens.txt"
        deadline = time.monotonic() + 600
        while not tokens_file.exists():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the demo did not finish"
            time.sleep(1)
        time.sleep(0.5)
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
        tokens = dict(
            line.split("\t") for line in tokens_file.read_text().splitlines() if "\t" in line
        )
        assert {"okala_analyst", "reviewer", "room_admin", "reporter"} <= tokens.keys()
        me = httpx.get(
            f"{url}/api/v1/me",
            headers={"Authorization": f"Bearer {tokens['okala_analyst']}"},
            timeout=30,
        )
        assert me.status_code == 200 and me.json()["role"] == "analyst"
        # The web UI signs in over plain http on loopback (the demo's development cookies).
        with httpx.Client(base_url=url, timeout=30) as browser:
            form = browser.get("/ui/signin")
            csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
            signed = browser.post("/ui/signin", data={"csrf": csrf, "token": tokens["reviewer"]})
            assert signed.status_code == 303, signed.text[:500]
            assert browser.get("/ui/audit").status_code == 200

        # A second room on the same port: one line saying so, no traceback, nothing started.
        again = subprocess.run(
            [*args[:-1], str(tmp_path / "second"), "--serve", "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert again.returncode == 1 and "Traceback" not in again.stderr
        assert f"port {port}" in again.stderr and "already in use" in again.stderr
        assert not (tmp_path / "second").exists()
        served = subprocess.run(
            [sys.executable, "-m", "cleanroom", "serve", "--room", str(out / "room"),
             "--port", str(port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert served.returncode == 1 and "Traceback" not in served.stderr, served.stderr
        assert "already in use" in served.stderr
        other_port = free_port()
        locked = subprocess.run(
            [sys.executable, "-m", "cleanroom", "serve", "--room", str(out / "room"),
             "--port", str(other_port)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert locked.returncode == 1 and "Traceback" not in locked.stderr, locked.stderr
        assert "already open in another process" in locked.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert f"{url}/ui/" in stdout and str(out / "tokens.txt") in stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free again: the service stopped
