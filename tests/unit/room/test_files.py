"""Room files are the room user's alone: 0600 files, 0700 directories, links left alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cleanroom.room.files import make_tree_private, private_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_world_readable_tree_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "room"
    (root / "logs" / "old").mkdir(parents=True)
    for name in ("meta.sqlite", "logs/service.log", "logs/old/service.log.1"):
        (root / name).write_text("x")
        (root / name).chmod(0o644)
    for directory in (root, root / "logs", root / "logs" / "old"):
        directory.chmod(0o755)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the room's")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)
    make_tree_private(root)
    assert {mode(p) for p in (root, root / "logs", root / "logs" / "old")} == {0o700}
    assert mode(root / "meta.sqlite") == mode(root / "logs" / "old" / "service.log.1") == 0o600
    assert mode(outside) == 0o644  # a link is not followed out of the room


def test_after_the_private_umask_new_files_and_directories_start_private(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        private_umask()
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "f").write_text("x")
        assert mode(tmp_path / "d") == 0o700 and mode(tmp_path / "d" / "f") == 0o600
    finally:
        os.umask(before)
