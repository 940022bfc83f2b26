"""The Docker files, without a Docker engine: the compose file against the Compose schema,
the Dockerfile's promises, and the image's entry command starting the service here.

``tests/fixtures/compose/compose-spec.json`` is the Compose Specification's schema
(source and refresh in its README). The entry-command test runs the final
stage's ENTRYPOINT + CMD with its ENV, exactly as the container would, against
a fresh room (only the paths and the port are pointed at this machine, and the
address at loopback), then runs the image's HEALTHCHECK command against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from cleanroom.contract.keys import generate_match_key, generate_party_keys
from cleanroom.demo.scenario import free_port
from cleanroom.room.state import init_room

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SCHEMA = ROOT / "tests" / "fixtures" / "compose" / "compose-spec.json"
SECRET_NAME = re.compile(r"(?i)(secret|passphrase|password|token|private|_key\b)")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def final(keyword: str) -> list[str]:
    return [rest for kw, rest in dockerfile_stages()[-1] if kw == keyword]


def env_of_final_stage() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in final("ENV"):
        for item in shlex.split(rest):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def test_compose_file_validates_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_catches_a_broken_compose_file() -> None:
    broken = compose()
    broken["services"]["room"]["cap_drop"] = "ALL"
    broken["services"]["room"]["volumez"] = []
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_services_are_hardened_and_hold_no_secret() -> None:
    services = compose()["services"]
    assert {"room", "spark-master", "spark-worker"} <= set(services)
    assert services["spark-master"]["profiles"] == ["spark"]
    assert services["spark-worker"]["profiles"] == ["spark"]
    assert "profiles" not in services["room"]
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert service["user"] == "10001:10001", name
        assert service["cap_drop"] == ["ALL"], name
        assert "healthcheck" in service or name == "spark-worker", name
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):  # only ever passed through from the operator's shell
                assert str(value).startswith("${") and str(value).endswith(":-}"), key
    room = services["room"]
    mounts = {v.split(":")[1] for v in room["volumes"]}
    assert {"/data", "/analysis", "/scratch"} <= mounts
    assert "/api/v1/health" in " ".join(room["healthcheck"]["test"])
    worker_mounts = {v.split(":")[1] for v in services["spark-worker"]["volumes"]}
    assert "/data" not in worker_mounts  # workers never see the keys or the warehouse
    assert "/analysis" in worker_mounts


def test_dockerfile_is_multi_stage_non_root_with_volumes_and_a_health_check() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    users = final("USER")
    assert users and not users[-1].startswith(("root", "0")), users
    volumes = json.loads(final("VOLUME")[-1])
    assert "/data" in volumes
    health = final("HEALTHCHECK")
    assert health and "/api/v1/health" in health[-1]
    text = (DOCKER / "Dockerfile").read_text()
    assert "room.secret" not in text and "match.key" not in text and ".key" not in text
    for name in env_of_final_stage():
        assert not SECRET_NAME.search(name), name
    build_only = [rest for kw, rest in stages[0] if kw == "RUN"]
    assert any("openjdk-17-jdk" in r for r in build_only)
    assert not any("jdk-headless" in r and "jre" not in r for kw, r in stages[-1] if kw == "RUN")


def _command() -> list[str]:
    entry = json.loads(final("ENTRYPOINT")[-1])
    cmd = json.loads(final("CMD")[-1])
    assert entry[0] == "cleanroom"
    # The console script pip installed, as in the image's /opt/venv/bin.
    script = Path(sys.executable).parent / "cleanroom"
    return [str(script), *entry[1:], *cmd]


def _health_command(env: dict[str, str]) -> list[str]:
    rest = final("HEALTHCHECK")[-1]
    command = json.loads(rest[rest.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.fixture
def fresh_room(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    generate_party_keys("okala", keys / "okala")
    match_id = generate_match_key(keys / "match.key").key_ids["match_key_id"]
    policy = {
        "collaboration": "docker-entry",
        "match_key_id": match_id,
        "parties": {
            "okala": {
                "name": "Okala",
                "public_key_file": str(keys / "okala" / "okala.pub"),
                "datasets": {
                    "orders": {
                        "identifiers": {"mobile": "phone"},
                        "columns": {"ordered_at": "timestamp", "city": "category"},
                        "time": "ordered_at",
                    }
                },
            }
        },
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    init_room(tmp_path / "room", tmp_path / "policy.yaml")
    return tmp_path / "room"


def test_the_entry_command_starts_the_service(fresh_room: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        **env_of_final_stage(),
        # This machine's paths and a loopback address instead of the container's.
        "CLEANROOM_ROOM": str(fresh_room),
        "CLEANROOM_HOST": "127.0.0.1",
        "CLEANROOM_PORT": str(port),
        "HOME": str(tmp_path),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "SPARK_LOCAL_DIRS": str(tmp_path / "scratch"),
    }
    env.pop("CLEANROOM_ENVIRONMENT", None)  # the image runs in production mode
    log = tmp_path / "service.out"
    with log.open("wb") as out:
        process = subprocess.Popen(_command(), cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not answer within 60 s"
            time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        checked = subprocess.run(_health_command(env), env=env, timeout=30, check=False)
        assert checked.returncode == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
