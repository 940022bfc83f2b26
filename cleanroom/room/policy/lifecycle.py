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

import yaml

from cleanroom.errors import T_, ConflictError, ForbiddenError, UserError
from cleanroom.room import faults
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import Role, User, require
from cleanroom.room.policy import versions
from cleanroom.room.policy.diff import LOOSENS, PolicyChange, diff_policies
from cleanroom.room.policy.load import parse_policy, parse_policy_text
from cleanroom.room.policy.models import CollaborationPolicy, GovernancePolicy
from cleanroom.room.policy.versions import (
    ACTIVE,
    PROPOSED,
    REJECTED,
    STALE,
    SUPERSEDED,
    PolicyVersion,
)
from cleanroom.room.store import MetaStore

MAX_COMMENT = 1_000
# The shape of a bearer token (cleanroom.room.auth): the audit trail refuses
# it, so a comment carrying one is refused here, as the caller's mistake.
_TOKEN_SHAPED = re.compile(r"cr_[A-Za-z0-9_-]{43}")
# How many loosening paths a ``policy.proposed`` entry lists (the rest are counted).
MAX_AUDITED_PATHS = 50


@dataclass(frozen=True)
class ActivePolicy:
    """The policy version every operation runs under (recorded with it)."""

    version: int
    policy: CollaborationPolicy


class PolicyVersions:
    """The room's policy versions in the metadata store."""

    def __init__(self, store: MetaStore, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit
        self._parsed: tuple[tuple[int, str], ActivePolicy] | None = None  # see in_force

    # -- reading -----------------------------------------------------------

    def history(self) -> list[PolicyVersion]:
        """Every version ever stored, oldest first, with its decisions."""
        return versions.history(self._store.connection())

    def get(self, version: int) -> PolicyVersion:
        """One version with its decisions."""
        return versions.get(self._store.connection(), version)

    def active(self) -> PolicyVersion:
        """The version in force now."""
        db = self._store.connection()
        return versions.get(db, versions.active_number(db))

    def in_force(self) -> ActivePolicy:
        """The version in force now, parsed: what every operation runs under.

        Parsed once per version: a stored version never changes (its sha256 is
        checked too), and parsing the YAML cost ~17 ms of CPU on every request
        (bench/load.py found it).
        """
        version, sha256, body = versions.active(self._store.connection())
        key = (version, sha256)
        parsed = self._parsed
        if parsed is None or parsed[0] != key:
            policy = parse_policy(yaml.safe_load(body), "stored policy")
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
            base = versions.get(tx, versions.active_number(tx))
            if digest == base.sha256:
                raise UserError(
                    T_(
                        "this is version %(version)s, already active: nothing changes",
                        version=base.version,
                    )
                )
            base_policy = base.policy()
            required = base_policy.governance.approvals_required
            version = versions.latest_number(tx) + 1
            versions.insert(
                tx,
                version,
                sha256=digest,
                body=body,
                status=PROPOSED,
                author=user.name,
                comment=note,
                base_version=base.version,
                approvals_required=required,
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
            active = versions.active_number(tx)
            if proposal.base_version != active:
                versions.set_status(tx, version, STALE)
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
        versions.decide(tx, version, user.name, "approve", note)
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
        versions.activate(tx, version)
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
            versions.decide(tx, version, user.name, "reject", note)
            versions.set_status(tx, version, REJECTED)
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


def _open_proposal(db: sqlite3.Connection, version: int) -> PolicyVersion:
    proposal = versions.get(db, version)
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
