"""The ``queries`` table's one owner: every query asked, its status and its stored answer.

A query's row is what the cache answers from, what history lists, what
recovery settles after a crash and what the ledger check compares charges
with, so its SQL lives here and nowhere else; callers get :class:`QueryRecord`
rows. Functions take the connection (or open transaction) to act in, because a
result is stored in the same transaction as its audit entry.

A report section's row names its run (``report_run``): recovery counts a run's
released sections from this column, where it once matched the audit's text.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from cleanroom.errors import InternalError
from cleanroom.room.store import now
from cleanroom.sql import quote_column

Kind = Literal["sql", "template"]
Status = Literal["running", "done", "failed", "refused"]

_COLUMNS = ", ".join(
    map(
        quote_column,
        (
            "id", "party", "user_name", "kind", "request", "cache_key", "policy_version",
            "generation", "epsilon", "status", "result", "result_sha256", "cached_from",
            "report_run", "created_at", "finished_at",
        ),
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One row of ``queries``; ``request`` and ``result`` are the stored JSON texts."""

    id: str
    party: str | None
    user_name: str
    kind: str
    request: str
    cache_key: str
    policy_version: int
    generation: int
    epsilon: str
    status: str
    result: str | None
    result_sha256: str | None
    cached_from: str | None
    report_run: str | None
    created_at: str
    finished_at: str | None

    def answer(self) -> dict[str, Any]:
        """The stored result, parsed (only a ``done`` query has one)."""
        if self.result is None:
            raise InternalError(f"query {self.id} is {self.status} and stores no result")
        answer: dict[str, Any] = json.loads(self.result)
        return answer


def insert(
    db: sqlite3.Connection,
    query_id: str,
    *,
    party: str,
    user_name: str,
    kind: Kind,
    request: str,
    cache_key: str,
    policy_version: int,
    generation: int,
    epsilon: str,
    status: Status,
    result: str | None = None,
    result_sha256: str | None = None,
    cached_from: str | None = None,
    report_run: str | None = None,
    finished_at: str | None = None,
) -> None:
    """Record a query: ``running`` before it is charged, or ``done`` for a cached copy."""
    db.execute(
        f"INSERT INTO queries ({_COLUMNS}) VALUES ({', '.join('?' for _ in range(16))})",  # noqa: S608
        (
            query_id,
            party,
            user_name,
            kind,
            request,
            cache_key,
            policy_version,
            generation,
            epsilon,
            status,
            result,
            result_sha256,
            cached_from,
            report_run,
            now(),
            finished_at,
        ),
    )


def store_result(db: sqlite3.Connection, query_id: str, body: str, digest: str) -> None:
    """The released answer and its hash: the query is ``done`` (in the audit's transaction)."""
    db.execute(
        "UPDATE queries SET status = 'done', result = ?, result_sha256 = ?, finished_at = ?"
        " WHERE id = ?",
        (body, digest, now(), query_id),
    )


def refuse(db: sqlite3.Connection, query_id: str) -> None:
    """The budget said no: nothing was charged or computed."""
    db.execute(
        "UPDATE queries SET status = 'refused', finished_at = ? WHERE id = ?", (now(), query_id)
    )


def fail(db: sqlite3.Connection, query_id: str) -> bool:
    """Close a ``running`` query that stored no result; False if it was no longer running."""
    cursor = db.execute(
        "UPDATE queries SET status = 'failed', finished_at = ? WHERE id = ? AND status = 'running'",
        (now(), query_id),
    )
    return cursor.rowcount > 0


def get(db: sqlite3.Connection, query_id: str) -> QueryRecord | None:
    """One query by id."""
    row = db.execute(f"SELECT {_COLUMNS} FROM queries WHERE id = ?", (query_id,)).fetchone()  # noqa: S608
    return None if row is None else _record(row)


def cached(db: sqlite3.Connection, cache_key: str) -> QueryRecord | None:
    """The first fresh (charged, not itself cached) answer to the same question, if any."""
    row = db.execute(
        f"SELECT {_COLUMNS} FROM queries WHERE cache_key = ? AND status = 'done' "  # noqa: S608
        "AND cached_from IS NULL ORDER BY created_at LIMIT 1",
        (cache_key,),
    ).fetchone()
    return None if row is None else _record(row)


def running(db: sqlite3.Connection) -> list[str]:
    """Ids of the queries still ``running`` (after a stop: cut off)."""
    return [str(r[0]) for r in db.execute("SELECT id FROM queries WHERE status = 'running'")]


def closed_unanswered(db: sqlite3.Connection) -> set[str]:
    """Ids of the queries that failed or were refused without storing a result."""
    rows = db.execute(
        "SELECT id FROM queries WHERE status IN ('failed', 'refused') AND result IS NULL"
    )
    return {str(r[0]) for r in rows}


def every(db: sqlite3.Connection) -> list[QueryRecord]:
    """Every query in the order asked (for the ledger check)."""
    return [_record(r) for r in db.execute(f"SELECT {_COLUMNS} FROM queries ORDER BY rowid")]  # noqa: S608


def released_for_run(db: sqlite3.Connection, report_run: str) -> int:
    """How many of a report run's sections stored their answer (each with its audit entry)."""
    (count,) = db.execute(
        "SELECT count(*) FROM queries WHERE report_run = ? AND status = 'done'", (report_run,)
    ).fetchone()
    return int(count)


def page(
    db: sqlite3.Connection, party: str | None, *, limit: int, before: str | None = None
) -> list[QueryRecord]:
    """Newest first, in insertion order (timestamps tie within a second); ``before`` pages back."""
    where, args = [], []
    if party is not None:
        where.append("party = ?")
        args.append(party)
    if before is not None:
        where.append("rowid < (SELECT rowid FROM queries WHERE id = ?)")
        args.append(before)
    clause = f"WHERE {' AND '.join(where)}" if where else ""  # this module's literals only
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM queries {clause} ORDER BY rowid DESC LIMIT ?",  # noqa: S608
        (*args, limit),
    )
    return [_record(r) for r in rows]


def _record(row: sqlite3.Row) -> QueryRecord:
    # Columns in _COLUMNS order; SQLite's types already match the fields (NOT NULL where str).
    return QueryRecord(*row)
