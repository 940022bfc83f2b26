"""Policy versions: propose, approve or reject, activate, roll back — every step audited.

A policy decides what every party's data may be used for, so no one person
changes it. A reviewer proposes a whole new version; it becomes active only
when enough reviewers *other than its author* approve it — as many as the
version active at proposal time requires, so a proposal cannot lower its own
bar. The approval that reaches the count activates the version in the same
transaction (and supersedes the old one), so the room is never in an
"approved but not active" or "two versions active" state that someone would
have to repair by hand. A rejection closes the proposal.

A proposal is reviewed as a change *from* the version active when it was made.
If another version became active meanwhile, approving it would silently undo
what was approved since, so it is refused as stale and closed: it must be
proposed again against the version now in force. A rollback is no shortcut: it
is a new proposal whose body is an old version's, reviewed like any other.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import yaml

from cleanroom.errors import T_, ConflictError, ForbiddenError, NotFoundError, UserError
from cleanroom.room import faults
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import Role, User, require
from cleanroom.room.policy.diff import LOOSENS, PolicyChange, diff_policies
from cleanroom.room.policy.load import parse_policy, parse_policy_text
from cleanroom.room.policy.models import CollaborationPolicy, GovernancePolicy
from cleanroom.room.store import MetaStore, now
from cleanroom.sql import quote_column

PROPOSED = "proposed"
ACTIVE = "active"
SUPERSEDED = "superseded"
REJECTED = "rejected"
STALE = "stale"

MAX_COMMENT = 1_000
# The shape of a bearer token (cleanroom.room.auth): the audit trail refuses
# it, so a comment carrying one is refused here, as the caller's mistake.
_TOKEN_SHAPED = re.compile(r"cr_[A-Za-z0-9_-]{43}")
# How many loosening paths a ``policy.proposed`` entry lists (the rest are counted).
MAX_AUDITED_PATHS = 50

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
class ActivePolicy:
    """The policy version every operation runs under (recorded with it)."""

    version: int
    policy: CollaborationPolicy


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


class PolicyVersions:
    """The room's policy versions in the metadata store."""

    def __init__(self, store: MetaStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit
        self._parsed: tuple[tuple[int, str], ActivePolicy] | None = None  # see in_force

    # -- reading -----------------------------------------------------------

    def history(self) -> list[PolicyVersion]:
        """Every version ever stored, oldest first, with its decisions."""
        db = self._store.connection()
        rows = db.execute(f"SELECT {_COLUMNS} FROM policy_versions ORDER BY version").fetchall()  # noqa: S608
        decisions: dict[int, list[Decision]] = {}
        for d in db.execute(
            "SELECT version, reviewer, decision, comment, at FROM policy_approvals "
            "ORDER BY at, rowid"
        ):
            decisions.setdefault(int(d["version"]), []).append(_decision(d))
        return [_version(row, decisions.get(int(row["version"]), [])) for row in rows]

    def get(self, version: int) -> PolicyVersion:
        """One version with its decisions."""
        return _get(self._store.connection(), version)

    def active(self) -> PolicyVersion:
        """The version in force now, as stored (text, status, decisions)."""
        return _get(self._store.connection(), _active_number(self._store.connection()))

    def in_force(self) -> ActivePolicy:
        """The version in force now, parsed: what every operation runs under.

        Parsed once per version: a stored version never changes (its sha256 is
        checked too), and parsing the YAML cost ~17 ms of CPU on every request
        (bench/load.py found it).
        """
        row = _active_row(self._store.connection())
        key = (int(row["version"]), str(row["sha256"]))
        parsed = self._parsed
        if parsed is None or parsed[0] != key:
            policy = parse_policy(yaml.safe_load(row["body"]), "stored policy")
            self._parsed = parsed = (key, ActivePolicy(key[0], policy))
        return parsed[1]

    def compare(self, old: int, new: int) -> list[PolicyChange]:
        """The classified changes from version ``old`` to version ``new``."""
        return diff_policies(self.get(old).policy(), self.get(new).policy())

    # -- changing ----------------------------------------------------------

    def propose(
        self, user: User, text: str, comment: str = "", *, rollback_of: int | None = None
    ) -> tuple[PolicyVersion, list[PolicyChange]]:
        """Store a whole new version as ``proposed``; returns it and its changes from active.

        Errors in the text name the path inside the document. A text identical
        to the active version is refused: there would be nothing to review.
        """
        require(user, Role.reviewer)
        note = _comment(comment)
        policy, body = parse_policy_text(text, "proposal")
        digest = hashlib.sha256(body.encode()).hexdigest()
        with self._store.transaction() as tx:
            base = _get(tx, _active_number(tx))
            if digest == base.sha256:
                raise UserError(
                    T_(
                        "this is version %(version)s, already active: nothing changes",
                        version=base.version,
                    )
                )
            base_policy = base.policy()
            required = base_policy.governance.approvals_required
            (latest,) = tx.execute("SELECT max(version) FROM policy_versions").fetchone()
            version = int(latest) + 1
            tx.execute(
                f"INSERT INTO policy_versions ({_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (version, digest, body, PROPOSED, user.name, note, now(), base.version, required),
            )
            changes = diff_policies(base_policy, policy)
            loosening = [c.path for c in changes if c.privacy == LOOSENS]
            self._audit.append(
                tx,
                actor=user.name,
                action="policy.proposed",
                target=_target(version),
                details={
                    "version": version,
                    "base_version": base.version,
                    "sha256": digest,
                    "approvals_required": required,
                    "rollback_of": rollback_of,
                    "comment": note,
                    "changes": len(changes),
                    "loosening": loosening[:MAX_AUDITED_PATHS],
                    "loosening_count": len(loosening),
                },
            )
        return self.get(version), changes

    def rollback(
        self, user: User, to_version: int, comment: str = ""
    ) -> tuple[PolicyVersion, list[PolicyChange]]:
        """Propose an earlier, once-active version's text again (it needs approvals as any)."""
        old = self.get(to_version)
        if old.status == ACTIVE:
            raise UserError(
                T_(
                    "version %(to_version)s is the active version; nothing to roll back",
                    to_version=to_version,
                )
            )
        if old.status != SUPERSEDED:
            raise UserError(
                T_(
                    "version %(to_version)s was never active (%(status)s); propose its text "
                    "instead of rolling back to it",
                    to_version=to_version,
                    status=old.status,
                )
            )
        return self.propose(
            user, old.body, comment or f"rollback to version {to_version}", rollback_of=to_version
        )

    def approve(self, user: User, version: int, comment: str = "") -> PolicyVersion:
        """Approve as a reviewer other than the author; the approval reaching the bar activates.

        A stale proposal (made against a version no longer active) is closed as
        ``stale`` and the approval refused with the version to propose against.
        """
        require(user, Role.reviewer)
        note = _comment(comment)
        refusal: ConflictError | None = None
        with self._store.transaction() as tx:
            proposal = _open_proposal(tx, version)
            if proposal.author == user.name:
                raise ForbiddenError(
                    T_(
                        "two-person rule: '%(user)s' proposed version %(version)s and cannot "
                        "approve it; another reviewer must",
                        user=user.name,
                        version=version,
                    )
                )
            _check_undecided(proposal, user)
            active = _active_number(tx)
            if proposal.base_version != active:
                tx.execute(
                    "UPDATE policy_versions SET status = ? WHERE version = ?", (STALE, version)
                )
                self._audit.append(
                    tx,
                    actor=user.name,
                    action="policy.stale",
                    target=_target(version),
                    outcome="refused",
                    details={
                        "version": version,
                        "base_version": proposal.base_version,
                        "active_version": active,
                    },
                )
                refusal = ConflictError(
                    T_(
                        "stale: re-propose against version %(active)s (version %(version)s was "
                        "proposed against version %(base_version)s, and version %(active)s has "
                        "been activated since; approving it would undo that)",
                        active=active,
                        version=version,
                        base_version=proposal.base_version,
                    )
                )
            else:
                self._approve(tx, user, proposal, note, active)
        if refusal is not None:
            raise refusal
        return self.get(version)

    def _approve(
        self,
        tx: sqlite3.Connection,
        user: User,
        proposal: PolicyVersion,
        note: str | None,
        active: int,
    ) -> None:
        version = proposal.version
        tx.execute(
            "INSERT INTO policy_approvals (version, reviewer, decision, comment, at) "
            "VALUES (?, ?, 'approve', ?, ?)",
            (version, user.name, note, now()),
        )
        approvers = [*proposal.approvals, user.name]
        required = proposal.approvals_required or GovernancePolicy().approvals_required
        self._audit.append(
            tx,
            actor=user.name,
            action="policy.approved",
            target=_target(version),
            details={
                "version": version,
                "comment": note,
                "approvals": len(approvers),
                "approvals_required": required,
            },
        )
        if len(approvers) < required:
            return
        tx.execute("UPDATE policy_versions SET status = ? WHERE status = ?", (SUPERSEDED, ACTIVE))
        tx.execute(
            "UPDATE policy_versions SET status = ?, activated_at = ? WHERE version = ?",
            (ACTIVE, now(), version),
        )
        faults.pause("policy.activate")  # crash tests: mid-transaction, nothing committed yet
        self._audit.append(
            tx,
            actor=user.name,
            action="policy.activated",
            target=_target(version),
            details={
                "version": version,
                "previous_version": active,
                "sha256": proposal.sha256,
                "author": proposal.author,
                "approvals": approvers,
            },
        )

    def reject(self, user: User, version: int, comment: str) -> PolicyVersion:
        """Close a proposal, saying why; any reviewer may, its author too (a withdrawal).

        A reviewer who approved may still reject (having found a problem since):
        the decision is replaced, and the trail keeps both.
        """
        require(user, Role.reviewer)
        note = _comment(comment)
        if note is None:
            raise UserError(T_("a rejection needs a comment saying why"))
        with self._store.transaction() as tx:
            proposal = _open_proposal(tx, version)
            previous = next((d for d in proposal.decisions if d.reviewer == user.name), None)
            tx.execute(
                "INSERT INTO policy_approvals (version, reviewer, decision, comment, at) "
                "VALUES (?, ?, 'reject', ?, ?) ON CONFLICT (version, reviewer) DO UPDATE SET "
                "decision = excluded.decision, comment = excluded.comment, at = excluded.at",
                (version, user.name, note, now()),
            )
            tx.execute(
                "UPDATE policy_versions SET status = ? WHERE version = ?", (REJECTED, version)
            )
            self._audit.append(
                tx,
                actor=user.name,
                action="policy.rejected",
                target=_target(version),
                details={
                    "version": version,
                    "comment": note,
                    "withdrawn_by_author": proposal.author == user.name,
                    "had_approved": previous is not None,
                },
            )
        return self.get(version)


def _target(version: int) -> str:
    return f"policy:{version}"


def _comment(comment: str | None) -> str | None:
    text = (comment or "").strip()
    if len(text) > MAX_COMMENT:
        raise UserError(
            T_("a comment is at most %(max_comment)s characters", max_comment=MAX_COMMENT)
        )
    if _TOKEN_SHAPED.search(text):
        raise UserError(T_("the comment contains something shaped like a bearer token; remove it"))
    return text or None


def _active_row(db: sqlite3.Connection) -> sqlite3.Row:
    """The one way the active version is found (a unique index allows one at most)."""
    row: sqlite3.Row | None = db.execute(
        "SELECT version, sha256, body FROM policy_versions WHERE status = ?", (ACTIVE,)
    ).fetchone()
    if row is None:
        raise UserError(T_("the room has no active policy"))
    return row


def _active_number(db: sqlite3.Connection) -> int:
    return int(_active_row(db)["version"])


def _get(db: sqlite3.Connection, version: int) -> PolicyVersion:
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


def _open_proposal(db: sqlite3.Connection, version: int) -> PolicyVersion:
    proposal = _get(db, version)
    if proposal.status != PROPOSED:
        raise ConflictError(
            T_(
                "version %(version)s is %(status)s; only a proposed version can be decided",
                version=version,
                status=proposal.status,
            )
        )
    return proposal


def _check_undecided(proposal: PolicyVersion, user: User) -> None:
    for decision in proposal.decisions:
        if decision.reviewer == user.name:
            raise ConflictError(
                T_(
                    "'%(user)s' already approved version %(version)s; each reviewer counts once",
                    user=user.name,
                    version=proposal.version,
                )
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
