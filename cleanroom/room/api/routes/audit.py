"""The audit trail, for reviewers and room admins."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from cleanroom.room.api.models import AuditEntryOut, VerificationOut
from cleanroom.room.auth import Role, User
from cleanroom.room.http.deps import RoomDep, roles

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[User, Depends(roles(Role.reviewer, Role.room_admin))]


@router.get("", response_model=list[AuditEntryOut])
def entries(
    room: RoomDep,
    user: Auditor,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Entries in order, filtered; page with ``after`` = the last ``seq`` seen."""
    found = room.audit.entries(
        actor=actor, action=action, outcome=outcome, after_seq=after, limit=limit
    )
    return [asdict(e) for e in found]


@router.get("/verify", response_model=VerificationOut)
def verify(room: RoomDep, user: Auditor) -> dict[str, Any]:
    """Recompute the chain: edited, deleted or reordered entries are named.

    ``problems`` lists every break ever found, re-anchored ones included;
    ``open_problems`` and ``broken_at`` those that stop recording now.
    """
    verification = room.audit.verify()
    return {**asdict(verification), "recording": verification.recording}
