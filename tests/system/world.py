"""The system tests' group: the same scenario `cleanroom demo` runs, at test size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cleanroom.demo.scenario import Group, LiveServer, build_group, free_port, open_room
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.state import Room

World = Group

__all__ = [
    "LiveServer",
    "World",
    "build_world",
    "free_port",
    "load_and_match",
    "open_room",
    "run_cli",
]


def build_world(root: Path, *, persons: int = 2_000, seed: int = 11) -> Group:
    return build_group(root, persons=persons, seed=seed)


def load_and_match(room: Room, world: Group) -> None:
    """In process, as each party's admin and the room admin would: every bundle, then a match."""
    for (party, _), bundle in sorted(world.bundles.items()):
        ingest(room, bundle, room.users.get(f"{party}-admin"))
    run_match(room, room.users.get("room-admin"))


def run_cli(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`cleanroom ARGS` in a fresh process, as a user runs it (a throwaway room's settings)."""
    return subprocess.run(
        [sys.executable, "-m", "cleanroom", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CLEANROOM_ENVIRONMENT": "development", **(env or {})},
        check=False,
    )
