"""Where a match's time goes: one more match of a room already loaded, timed by stage.

    python bench/ingest_match.py --rows 20000000          # loads bench/out/ingest-20000000/room
    python bench/match_stages.py bench/out/ingest-20000000/room
    python bench/match_stages.py bench/out/ingest-20000000/room --rows   # and each table's rows

Runs the room's own match (``matching.run_match``, as ``POST /matches`` does)
in this process with the same DuckDB memory limit as ``ingest_match.py``'s
server (6 GB unless ``CLEANROOM_MEMORY_LIMIT`` says otherwise), and prints
identity resolution's stage seconds (``IdentityStats.seconds``), the other
steps of the match, and every intermediate table identity resolution built
with its seconds (and, with ``--rows``, its rows: one more count each), in
order. The timers wrap the functions from outside; the code that runs is the
product's. Each run publishes one more generation in that room.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cleanroom.room import matching, warehouse
from cleanroom.room.analyses import sequence
from cleanroom.room.auth import Role
from cleanroom.room.backends import duckdb as duckdb_backend
from cleanroom.room.config import load_settings
from cleanroom.room.state import Room

seconds: dict[str, float] = {}
tables: list[tuple[str, float] | tuple[str, float, int]] = []


def timed(owner: Any, name: str, label: str | None = None) -> None:
    """Replace ``owner.name`` by the same function that adds its seconds to ``seconds``."""
    inner: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            out = inner(*args, **kwargs)
            if name == "resolve":
                seconds.update({f"identity: {k}": v for k, v in out.seconds.items()})
            return out
        finally:
            key = label or name
            seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started

    setattr(owner, name, wrapper)


def main() -> None:
    os.environ.setdefault("CLEANROOM_MEMORY_LIMIT", "6GB")
    timed(duckdb_backend, "resolve", "identity resolution")
    timed(duckdb_backend, "person_table", "analysis tables")
    timed(duckdb_backend, "suppressed_tokens", "opt-out lists")
    timed(sequence, "prepare", "journeys' event order")
    timed(matching, "_choose_bounds", "adaptive bounds")
    timed(matching, "_publish", "publish")
    timed(warehouse.Warehouse, "checkpoint")
    materialize = duckdb_backend.DuckDBTables.materialize

    def logged(self: Any, table: str, select: Any) -> None:
        started = time.perf_counter()
        try:
            materialize(self, table, select)
        finally:
            name = table.rsplit('"', 2)[-2].split("_", 3)[-1] if '"' in table else table
            tables.append((name, round(time.perf_counter() - started, 1)))
        if "--rows" in sys.argv:
            rows = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
            tables[-1] = (*tables[-1][:2], rows[0] if rows else 0)

    duckdb_backend.DuckDBTables.materialize = logged  # type: ignore[method-assign]
    room = Room(load_settings(Path(sys.argv[1]), environment="development"))
    user = room.users.add(f"bench-{int(time.time())}", Role.room_admin)[0]
    started = time.perf_counter()
    matching.run_match(room, user)
    seconds["match"] = time.perf_counter() - started
    room.close()
    print(json.dumps({k: round(v, 1) for k, v in seconds.items()}, indent=1))
    print(json.dumps(tables))


if __name__ == "__main__":
    main()
