"""Room files readable by the room's own user only: 0600 files, 0700 directories.

A room directory holds every party's data (the warehouse), every party's SQL
and results (``meta.sqlite``), the service log, published reports and the
room's keys. An outside audit found them all world-readable (umask 022), so
any local account could read them. Two layers close that: the process umask is
set to 077 when a room is opened or created, so whatever the room, DuckDB,
SQLite or a report writer creates later starts private; and the files that may
predate that umask (a room made by an older version, a log opened before the
room) are chmod-ed explicitly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_umask() -> None:
    """New files and directories of this process start 0600/0700.

    Process-wide on purpose: the service process exists to hold one room, and
    files created by libraries (SQLite's WAL, DuckDB's spill files) cannot be
    chmod-ed one by one as they appear.
    """
    os.umask(PRIVATE_UMASK)


def make_private(path: Path) -> None:
    """Restrict one file (0600) or directory (0700); symbolic links are left alone."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return
    wanted = DIRECTORY_MODE if stat.S_ISDIR(mode) else FILE_MODE
    if stat.S_IMODE(mode) != wanted:
        path.chmod(wanted)


def make_tree_private(root: Path) -> None:
    """``root`` and everything under it, without following symbolic links."""
    make_private(root)
    for directory, subdirectories, names in os.walk(root):
        base = Path(directory)
        for name in (*subdirectories, *names):
            try:
                make_private(base / name)
            except FileNotFoundError:  # a spill or upload file removed meanwhile
                continue
