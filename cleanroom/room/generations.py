"""The ``matches`` table's one owner: every match generation, from running to expired.

A generation's row says which dataset versions it was built from, where its
tables are and whether it is the one queries read. Matching writes it, retention
expires it, recovery fails the ones a stop cut off, backup and start-up read the
live one's tables — all through these functions, on :class:`MatchRecord` rows,
so the table's columns and status rules are written down once. Functions take
the connection (or open transaction) to act in: a generation goes live in the
same transaction as its audit entry.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from cleanroom.room.store import now
from cleanroom.sql import quote_column

Status = Literal["running", "live", "replaced", "failed", "expired"]

_COLUMNS = ", ".join(
    map(
        quote_column,
        (
            "generation", "started_at", "finished_at", "status", "inputs", "tables", "backend",
            "withheld", "bounds", "suppression", "match_key_id", "expired_at",
        ),
    )
)  # fmt: skip


@dataclass(frozen=True)
class MatchRecord:
    """One row of ``matches``, its JSON columns read."""

    generation: int
    started_at: str
    finished_at: str | None
    status: str
    inputs: dict[str, int]  # "party.dataset" -> dataset version
    tables: dict[str, str]  # "party.dataset" -> analysis table
    backend: str
    withheld: dict[str, Any]
    bounds: dict[str, Any] | None
    suppression: dict[str, int]
    match_key_id: str | None
    expired_at: str | None


def start(
    db: sqlite3.Connection,
    *,
    inputs: dict[str, int],
    backend: str,
    suppression: dict[str, int],
    match_key_id: str | None,
) -> int:
    """Record a match about to build its tables (``running``); its generation number."""
    row = db.execute(
        "INSERT INTO matches (started_at, status, inputs, backend, suppression, match_key_id) "
        "VALUES (?, 'running', ?, ?, ?, ?) RETURNING generation",
        (now(), json.dumps(inputs), backend, json.dumps(suppression), match_key_id),
    ).fetchone()
    return int(row[0])


def publish(
    db: sqlite3.Connection,
    generation: int,
    *,
    tables: dict[str, str],
    withheld: dict[str, Any],
    bounds: dict[str, Any] | None,
) -> MatchRecord | None:
    """Make ``generation`` the live one; the generation it replaced, if any."""
    old = live(db)
    db.execute("UPDATE matches SET status = 'replaced' WHERE status = 'live'")
    db.execute(
        "UPDATE matches SET status = 'live', finished_at = ?, tables = ?, withheld = ?, "
        "bounds = ? WHERE generation = ?",
        (
            now(),
            json.dumps(tables),
            json.dumps(withheld),
            json.dumps(bounds) if bounds else None,
            generation,
        ),
    )
    return old


def fail(db: sqlite3.Connection, generation: int, *, finished: bool = False) -> bool:
    """Mark a ``running`` generation failed (``finished``: stamp when); False if it was not."""
    cursor = db.execute(
        "UPDATE matches SET status = 'failed', finished_at = coalesce(?, finished_at) "
        "WHERE generation = ? AND status = 'running'",
        (now() if finished else None, generation),
    )
    return cursor.rowcount > 0


def expire(db: sqlite3.Connection, generation: int, at: str) -> None:
    """Past its retention: the row stays for the trail, its tables go."""
    db.execute(
        "UPDATE matches SET status = 'expired', expired_at = ? WHERE generation = ?",
        (at, generation),
    )


def live(db: sqlite3.Connection) -> MatchRecord | None:
    """The generation queries read now (None before the first match)."""
    return _one(db, "status = 'live'", ())


def get(db: sqlite3.Connection, generation: int) -> MatchRecord | None:
    """One generation by number."""
    return _one(db, "generation = ?", (generation,))


def newest_published(db: sqlite3.Connection) -> MatchRecord | None:
    """The latest generation that ever went live (it may be replaced or expired since)."""
    return _one(
        db,
        "status IN ('live', 'replaced', 'expired') ORDER BY generation DESC LIMIT 1",
        (),
    )


def with_status(db: sqlite3.Connection, *statuses: Status) -> list[MatchRecord]:
    """Every generation in one of ``statuses``, oldest first."""
    marks = ", ".join("?" for _ in statuses)
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM matches WHERE status IN ({marks}) ORDER BY generation",  # noqa: S608
        statuses,
    )
    return [_record(row) for row in rows]


def _one(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> MatchRecord | None:
    # ``where`` is always one of this module's literals, never caller text.
    row = db.execute(f"SELECT {_COLUMNS} FROM matches WHERE {where}", args).fetchone()  # noqa: S608
    return None if row is None else _record(row)


def _record(row: sqlite3.Row) -> MatchRecord:
    return MatchRecord(
        generation=int(row["generation"]),
        started_at=str(row["started_at"]),
        finished_at=row["finished_at"],
        status=str(row["status"]),
        inputs=json.loads(row["inputs"]),
        tables=json.loads(row["tables"]),
        backend=str(row["backend"]),
        withheld=json.loads(row["withheld"]),
        bounds=json.loads(row["bounds"]) if row["bounds"] else None,
        suppression=json.loads(row["suppression"]),
        match_key_id=row["match_key_id"],
        expired_at=row["expired_at"],
    )
