"""The system tests' group: the same scenario `cleanroom demo` runs, at test size."""

from __future__ import annotations

from pathlib import Path

from cleanroom.scenario import Group, LiveServer, build_group, free_port, open_room

World = Group

__all__ = ["LiveServer", "World", "build_world", "free_port", "open_room"]


def build_world(root: Path, *, persons: int = 2_000, seed: int = 11) -> Group:
    return build_group(root, persons=persons, seed=seed)
