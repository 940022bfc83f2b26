"""Resuming an audit chain after a break: the operator's procedure, with its two-person rule.

A broken chain stops every recorded action (:class:`~cleanroom.errors.AuditChainBroken`).
Once people have looked at what happened (``cleanroom audit verify``, the
service log, backups of ``meta.sqlite``), recording resumes only through
:func:`reanchor`, which writes their names and finding into the chain itself
(:meth:`~cleanroom.room.audit.AuditLog.reanchor`): the break is never repaired,
only acknowledged, so ``audit verify`` names it forever, beside who resumed and
why. Because resuming vouches that the trail may go on, it takes as many
people as the active policy's governance asks for a policy change, capped at
two: one where ``approvals_required`` is 1, two (distinct) otherwise. Each must
be a live ``room_admin`` or ``reviewer`` user of the room.

Limits: the command runs on the room's machine with file access to its keys,
so it names people rather than authenticating them (anyone who can run it can
also read the keys); the names are checked against the room's users and
recorded for the reviewers to confirm.
"""

from __future__ import annotations

from cleanroom.errors import T_, ForbiddenError, UserError
from cleanroom.room.audit import AuditEntry
from cleanroom.room.auth import Role
from cleanroom.room.state import Room

MAY_REANCHOR = (Role.room_admin, Role.reviewer)
MAX_REASON = 1_000


def people_required(room: Room) -> int:
    """1 or 2: two where the policy's governance asks for two or more approvals."""
    return 2 if room.active_policy().policy.governance.approvals_required >= 2 else 1


def reanchor(room: Room, *, by: str, second: str | None, reason: str) -> AuditEntry:
    """Check the people and the reason, then record the finding and resume the chain."""
    reason = reason.strip()
    if not reason:
        raise UserError(T_("say what the investigation found (--reason)"))
    if len(reason) > MAX_REASON:
        raise UserError(
            T_(
                "--reason is over %(most)s characters; point to the incident report instead",
                most=MAX_REASON,
            )
        )
    required = people_required(room)
    names = [by] if second is None else [by, second]
    if len(names) < required:
        raise UserError(
            T_(
                "the active policy asks for %(required)s approvals, so resuming the audit "
                "chain takes two people: give --second NAME",
                required=room.active_policy().policy.governance.approvals_required,
            )
        )
    if len(set(names)) != len(names):
        raise UserError(T_("--second must name another person than --by"))
    for name in names:
        try:
            user = room.users.get(name)
        except UserError:
            raise ForbiddenError(
                T_(
                    "'%(name)s' may not re-anchor the audit chain "
                    "(needs a live room_admin or reviewer)",
                    name=name,
                )
            ) from None
        if user.revoked_at is not None or user.role not in MAY_REANCHOR:
            raise ForbiddenError(
                T_(
                    "'%(name)s' may not re-anchor the audit chain "
                    "(needs a live room_admin or reviewer)",
                    name=name,
                )
            )
    return room.audit.reanchor(by=names, reason=reason)
