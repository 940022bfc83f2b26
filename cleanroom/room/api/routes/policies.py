"""Policy versions: history, show, propose, approve, reject, roll back, diff.

Reviewers (compliance) own the lifecycle; room admins may read it. The active
policy alone is open to every role: it is the contract every party signed up
to, and analysts and party engineers need its domains, bounds, access rules
and epsilon caps to write queries and specs that fit. Proposals, decisions
and diffs stay with reviewers and admins until they become that contract.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from cleanroom.room.api.models import (
    PolicyActive,
    PolicyDiff,
    PolicyProposed,
    PolicyShown,
    PolicyVersionOut,
)
from cleanroom.room.auth import Role, User
from cleanroom.room.http.deps import RoomDep, UserDep
from cleanroom.room.http.deps import roles as admit
from cleanroom.room.policy.diff import PolicyChange, summarize
from cleanroom.room.policy.lifecycle import MAX_COMMENT
from cleanroom.room.policy.load import MAX_POLICY_CHARS
from cleanroom.room.policy.versions import PolicyVersion

router = APIRouter(prefix="/api/v1/policies", tags=["policies"])
Reviewer = Annotated[User, Depends(admit(Role.reviewer))]
Reader = Annotated[User, Depends(admit(Role.reviewer, Role.room_admin))]


class ProposalBody(BaseModel):
    """A whole policy as YAML (keys inline), and why it is proposed."""

    yaml: str = Field(max_length=MAX_POLICY_CHARS)
    comment: str = Field("", max_length=MAX_COMMENT)


class DecisionBody(BaseModel):
    """A reviewer's comment on an approval (optional) or a rejection (required)."""

    comment: str = Field("", max_length=MAX_COMMENT)


def _changes(changes: list[PolicyChange]) -> dict[str, Any]:
    return {"changes": [c.as_dict() for c in changes], "summary": summarize(changes)}


def _shown(version: PolicyVersion) -> dict[str, Any]:
    return {**version.summary(), "yaml": version.body}


@router.get("", response_model=list[PolicyVersionOut])
def history(room: RoomDep, user: Reader) -> list[dict[str, Any]]:
    """Every version, oldest first: status, author, base version, approvals."""
    return [v.summary() for v in room.policies.history()]


@router.post("", status_code=201, response_model=PolicyProposed)
def propose(body: ProposalBody, room: RoomDep, user: Reviewer) -> dict[str, Any]:
    """Propose a new version; the answer lists its changes from the active one, classified."""
    version, changes = room.policies.propose(user, body.yaml, body.comment)
    return {**version.summary(), **_changes(changes)}


@router.get("/active", response_model=PolicyActive)
def active(room: RoomDep, user: UserDep) -> dict[str, Any]:
    """The policy in force now, to every role: the contract queries and uploads must fit."""
    version = room.policies.active()
    return {**_shown(version), "policy": version.policy().model_dump(mode="json")}


@router.get("/diff", response_model=PolicyDiff, response_model_by_alias=True)
def diff(
    room: RoomDep,
    user: Reader,
    to: Annotated[int, Query(ge=1, description="the version compared")],
    from_: Annotated[
        int | None, Query(alias="from", ge=1, description="default: the active version")
    ] = None,
) -> dict[str, Any]:
    """Changes from ``from`` (default: the active version) to ``to``, each classified.

    Every change says whether it loosens, tightens or leaves privacy as it was, and why.
    """
    start = from_ if from_ is not None else room.policies.active().version
    return {"from": start, "to": to, **_changes(room.policies.compare(start, to))}


@router.get("/{version}", response_model=PolicyShown)
def show(version: int, room: RoomDep, user: Reader) -> dict[str, Any]:
    """One version: its YAML, status and every reviewer's decision."""
    return _shown(room.policies.get(version))


OptionalComment = Annotated[DecisionBody | None, Body()]


@router.post("/{version}/approve", response_model=PolicyVersionOut)
def approve(
    version: int, room: RoomDep, user: Reviewer, body: OptionalComment = None
) -> dict[str, Any]:
    """Approve (never your own proposal); the approval reaching the bar activates the version."""
    return room.policies.approve(user, version, body.comment if body else "").summary()


@router.post("/{version}/reject", response_model=PolicyVersionOut)
def reject(version: int, body: DecisionBody, room: RoomDep, user: Reviewer) -> dict[str, Any]:
    """Reject with a comment saying why; the proposal is closed."""
    return room.policies.reject(user, version, body.comment).summary()


@router.post("/{version}/rollback", status_code=201, response_model=PolicyProposed)
def rollback(
    version: int, room: RoomDep, user: Reviewer, body: OptionalComment = None
) -> dict[str, Any]:
    """Propose an earlier version's text again; it needs approvals like any proposal."""
    proposed, changes = room.policies.rollback(user, version, body.comment if body else "")
    return {**proposed.summary(), **_changes(changes)}
