"""The trust boundary from a party engineer's shell: a party command loads no room code.

Each command runs in a process of its own, as a party engineer runs it; the
process then lists the modules it loaded. The import contracts (``make lint``)
say what may import what; this says what a real invocation pulls in, lazy
imports and the command line's own wiring included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.api import read_configuration

ROOT = Path(__file__).resolve().parents[3]
# Runs the console script's entry point with the given arguments, then prints every
# cleanroom module the process loaded (whatever the command's exit status).
PROBE = """
import json, sys
sys.argv = ["cleanroom", *json.loads(sys.argv[1])]
from cleanroom.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("cleanroom"))))
"""
ROOM_SIDE = ("cleanroom.room", "cleanroom.demo", "cleanroom.client")


def loaded(*args: str) -> list[str]:
    """The cleanroom modules a ``cleanroom ARGS`` process loads."""
    env = {k: v for k, v in os.environ.items() if k != "CLEANROOM_LANG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
        cwd=ROOT,
    )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def room_side(modules: list[str]) -> list[str]:
    return [m for m in modules if m == ROOM_SIDE or m.startswith(ROOM_SIDE)]


@pytest.mark.parametrize(
    "args",
    [
        ("prepare", "--help"),
        ("--lang", "fa", "prepare", "--help"),
        ("inspect", "--help"),
        ("keys", "party", "--help"),
        ("synth", "--help"),
    ],
)
def test_a_party_command_loads_no_room_module(args: tuple[str, ...]) -> None:
    modules = loaded(*args)
    assert "cleanroom.cli.party" in modules  # the command line did load its party side
    assert "cleanroom.contract.bundle" in modules
    assert not room_side(modules), f"cleanroom {' '.join(args)} loaded {room_side(modules)}"


def test_the_probe_sees_room_modules_when_a_room_command_runs() -> None:
    # The room's own commands do load it (so the test above could fail).
    assert "cleanroom.room.config" in room_side(loaded("serve", "--help"))


def test_the_import_contracts_cover_the_boundary_and_are_kept() -> None:
    # `make lint` runs lint-imports over these contracts; they must name the boundary.
    contracts = read_configuration(str(ROOT / "pyproject.toml"))["contracts_options"]
    sources = {m for c in contracts for m in c.get("source_modules", [])}
    assert {"cleanroom.party", "cleanroom.contract", "cleanroom.room.*"} <= sources
    forbidden = {m for c in contracts for m in c.get("forbidden_modules", [])}
    assert {"cleanroom.room", "cleanroom.room.api", "cleanroom.room.web"} <= forbidden
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in done.stdout
