"""The ``policy_versions`` and ``policy_approvals`` tables' one owner: the stored versions.

Every version ever proposed is kept with its text, its status and each
reviewer's decision. :mod:`cleanroom.room.policy.lifecycle` decides what may
change (the two-person rule, staleness); the room's state reads the active
version; the report scheduler reads when a version took effect — all through
these functions, on :class:`PolicyVersion` rows. Functions take the connection
(or open transaction) to act in, because each change is audited in the same
transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import yaml

from cleanroom.errors import T_, NotFoundError, UserError
from cleanroom.room.policy.load import parse_policy
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.store import now
from cleanroom.sql import quote_column

PROPOSED = "proposed"
ACTIVE = "active"
SUPERSEDED = "superseded"
REJECTED = "rejected"
STALE = "stale"

_COLUMNS = ", ".join(
    map(
        quote_column,
        (
            "version", "sha256", "body", "status", "author", "comment", "created_at",
            "activated_at", "base_version", "approvals_required",
        ),
    )
)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """One reviewer's approval or rejection of a version."""

    reviewer: str
    decision: str
    comment: str | None
    at: str


@dataclass(frozen=True)
class PolicyVersion:
    """A stored version: its text, where it stands, and who decided what about it."""

    version: int
    sha256: str
    status: str
    author: str
    comment: str | None
    created_at: str
    activated_at: str | None
    base_version: int | None
    approvals_required: int | None
    decisions: tuple[Decision, ...]
    body: str

    @property
    def approvals(self) -> list[str]:
        """The reviewers who approved it, in order."""
        return [d.reviewer for d in self.decisions if d.decision == "approve"]

    def policy(self) -> CollaborationPolicy:
        """The stored text as a validated policy."""
        return parse_policy(yaml.safe_load(self.body), f"stored policy v{self.version}")

    def summary(self) -> dict[str, Any]:
        """Everything but the body, for history listings."""
        return {
            "version": self.version,
            "status": self.status,
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at,
            "activated_at": self.activated_at,
            "base_version": self.base_version,
            "sha256": self.sha256,
            "approvals_required": self.approvals_required,
            "approvals": self.approvals,
            "decisions": [
                {"reviewer": d.reviewer, "decision": d.decision, "comment": d.comment, "at": d.at}
                for d in self.decisions
            ],
        }


# -- reading --------------------------------------------------------------------


def history(db: sqlite3.Connection) -> list[PolicyVersion]:
    """Every version ever stored, oldest first, with its decisions."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM policy_versions ORDER BY version").fetchall()  # noqa: S608
    decisions: dict[int, list[Decision]] = {}
    for d in db.execute(
        "SELECT version, reviewer, decision, comment, at FROM policy_approvals ORDER BY at, rowid"
    ):
        decisions.setdefault(int(d["version"]), []).append(_decision(d))
    return [_version(row, decisions.get(int(row["version"]), [])) for row in rows]


def active(db: sqlite3.Connection) -> tuple[int, str, str]:
    """The version in force: number, sha256 and text — the one way it is found.

    A unique index allows one active version at most; a room always has one
    (refused if somehow not). Decisions are not read: this runs per request.
    """
    row = db.execute(
        "SELECT version, sha256, body FROM policy_versions WHERE status = ?", (ACTIVE,)
    ).fetchone()
    if row is None:
        raise UserError(T_("the room has no active policy"))
    return int(row["version"]), str(row["sha256"]), str(row["body"])


def active_number(db: sqlite3.Connection) -> int:
    """The number of the version in force."""
    return active(db)[0]


def get(db: sqlite3.Connection, version: int) -> PolicyVersion:
    """One version with its decisions; NotFound for a number never stored."""
    if not 0 < version < 2**63:  # past SQLite's integers: no such version (not a crash)
        raise NotFoundError(T_("there is no policy version %(version)s", version=str(version)[:30]))
    row = db.execute(
        f"SELECT {_COLUMNS} FROM policy_versions WHERE version = ?",  # noqa: S608
        (version,),
    ).fetchone()
    if row is None:
        raise NotFoundError(T_("there is no policy version %(version)s", version=version))
    decisions = db.execute(
        "SELECT version, reviewer, decision, comment, at FROM policy_approvals "
        "WHERE version = ? ORDER BY at, rowid",
        (version,),
    ).fetchall()
    return _version(row, [_decision(d) for d in decisions])


def latest_number(db: sqlite3.Connection) -> int:
    """The highest version number stored (0 in an empty table)."""
    (latest,) = db.execute("SELECT max(version) FROM policy_versions").fetchone()
    return int(latest or 0)


def in_force_since(db: sqlite3.Connection, version: int) -> str | None:
    """When a version took effect (its creation, for the first): None if never stored."""
    row = db.execute(
        "SELECT activated_at, created_at FROM policy_versions WHERE version = ?", (version,)
    ).fetchone()
    return None if row is None else (row["activated_at"] or row["created_at"])


# -- changing -------------------------------------------------------------------


def insert(
    db: sqlite3.Connection,
    version: int,
    *,
    sha256: str,
    body: str,
    status: str,
    author: str,
    comment: str | None,
    base_version: int | None = None,
    approvals_required: int | None = None,
) -> None:
    """Store a version: ``proposed`` for review, or ``active`` (the room's first, at init)."""
    at = now()
    db.execute(
        f"INSERT INTO policy_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
        (
            version,
            sha256,
            body,
            status,
            author,
            comment,
            at,
            at if status == ACTIVE else None,
            base_version,
            approvals_required,
        ),
    )


def set_status(db: sqlite3.Connection, version: int, status: str) -> None:
    """Close a proposal (``rejected``, ``stale``)."""
    db.execute("UPDATE policy_versions SET status = ? WHERE version = ?", (status, version))


def activate(db: sqlite3.Connection, version: int) -> None:
    """Put ``version`` in force and supersede the one that was (one transaction: never two)."""
    db.execute("UPDATE policy_versions SET status = ? WHERE status = ?", (SUPERSEDED, ACTIVE))
    db.execute(
        "UPDATE policy_versions SET status = ?, activated_at = ? WHERE version = ?",
        (ACTIVE, now(), version),
    )


def decide(
    db: sqlite3.Connection, version: int, reviewer: str, decision: str, comment: str | None
) -> None:
    """Record a reviewer's decision; a rejection replaces the reviewer's earlier approval."""
    if decision == "approve":
        db.execute(
            "INSERT INTO policy_approvals (version, reviewer, decision, comment, at) "
            "VALUES (?, ?, 'approve', ?, ?)",
            (version, reviewer, comment, now()),
        )
        return
    db.execute(
        "INSERT INTO policy_approvals (version, reviewer, decision, comment, at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (version, reviewer) DO UPDATE SET "
        "decision = excluded.decision, comment = excluded.comment, at = excluded.at",
        (version, reviewer, decision, comment, now()),
    )


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(row["reviewer"], row["decision"], row["comment"], row["at"])


def _version(row: sqlite3.Row, decisions: list[Decision]) -> PolicyVersion:
    return PolicyVersion(
        version=int(row["version"]),
        sha256=row["sha256"],
        status=row["status"],
        author=row["author"],
        comment=row["comment"],
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        base_version=row["base_version"],
        approvals_required=row["approvals_required"],
        decisions=tuple(decisions),
        body=row["body"],
    )
