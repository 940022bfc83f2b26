"""Policies: the active version, proposals with their classified diff, and reviewers' decisions.

Every change goes through :class:`~cleanroom.room.policy.lifecycle.PolicyVersions`,
the code behind ``/api/v1/policies``: the two-person rule, the approval bar
and stale proposals are enforced there, whatever a page shows. The page's
part is to make the review easy to do right: a proposal is shown as its
changes from the version it was proposed against, loosening ones first and
highlighted, each with the reason it loosens; the approve button is not
offered to the proposal's author (who sees why), nor to a reviewer who
already approved.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from cleanroom.errors import UserError
from cleanroom.i18n import N_
from cleanroom.room.http.deps import RoomDep
from cleanroom.room.policy.diff import LOOSENS, NEUTRAL, TIGHTENS, PolicyChange, summarize
from cleanroom.room.policy.versions import PROPOSED, SUPERSEDED, PolicyVersion
from cleanroom.room.state import Room
from cleanroom.room.web.capabilities import may
from cleanroom.room.web.deps import page, posted
from cleanroom.room.web.forms import Form
from cleanroom.room.web.render import HEADERS, PREFIX
from cleanroom.room.web.render import page as render
from cleanroom.room.web.session import Session

router = APIRouter()
Anyone = Annotated[Session, Depends(page("policy.active"))]
Reader = Annotated[Session, Depends(page("policy.history"))]
Proposer = Annotated[Session, Depends(page("policy.propose"))]
Proposal = Annotated[Form, Depends(posted("policy.propose"))]
Approval = Annotated[Form, Depends(posted("policy.approve"))]
Rejection = Annotated[Form, Depends(posted("policy.reject"))]
Rollback = Annotated[Form, Depends(posted("policy.rollback"))]

_ORDER = {LOOSENS: 0, TIGHTENS: 1, NEUTRAL: 2}
# Outcomes named in a redirect's query string; the page shows fixed text, never caller text.
DONE = {
    "proposed": N_("Proposed. Other reviewers can now review and approve it."),
    "approved": N_("Approved. More approvals are needed before it becomes active."),
    "activated": N_("Approved, and with that approval this version is now active."),
    "rejected": N_("Rejected. The proposal is closed."),
}
MAX_SHOWN_VALUE = 300


def ordered(changes: list[PolicyChange]) -> list[PolicyChange]:
    """Loosening changes first, then tightening, then neutral; the policy's order within each."""
    return sorted(changes, key=lambda c: _ORDER.get(c.privacy, 0))


def shown(value: Any) -> str:
    """A diff value as short text (JSON for structures)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + "…"


def _base_of(room: Room, version: PolicyVersion) -> int | None:
    """The version a proposal is reviewed against: its base, else the one active now."""
    if version.base_version is not None:
        return version.base_version
    active = room.policies.active().version
    return active if active != version.version else None


@router.get("/policies")
def policies(request: Request, room: RoomDep, session: Anyone) -> Response:
    """The active version to everyone; proposals and history to reviewers and admins."""
    active = room.policies.active()
    history: list[PolicyVersion] = []
    proposals: list[tuple[PolicyVersion, dict[str, int]]] = []
    if may(session.user, "policy.history"):
        history = list(reversed(room.policies.history()))
        for version in history:
            if version.status == PROPOSED:
                base = _base_of(room, version)
                changes = room.policies.compare(base, version.version) if base else []
                proposals.append((version, summarize(changes)))
    return render(
        request,
        "policies.html",
        {
            "title": N_("Policy"),
            "active": active,
            "policy": active.policy(),
            "history": history,
            "proposals": proposals,
        },
    )


@router.get("/policies/new")
def new(request: Request, room: RoomDep, session: Proposer) -> Response:
    """The proposal form, starting from the active version's text."""
    return _new_form(request, room, text=None, comment="", error=None, status=200)


def _new_form(
    request: Request,
    room: Room,
    *,
    text: str | None,
    comment: str,
    error: str | UserError | None,
    status: int,
) -> Response:
    active = room.policies.active()
    return render(
        request,
        "policy_new.html",
        {
            "title": N_("Propose a policy version"),
            "active": active,
            "text": active.body if text is None else text,
            "comment": comment,
            "error": error,
        },
        status=status,
    )


@router.post("/policies")
def propose(request: Request, room: RoomDep, session: Proposer, form: Proposal) -> Response:
    """Store the proposal; then show it as its changes from the active version."""
    text, comment = form.get("yaml"), form.get("comment")
    try:
        version, _ = room.policies.propose(session.user, text, comment)
    except UserError as err:
        return _new_form(request, room, text=text, comment=comment, error=err, status=400)
    return _to_version(version.version, "proposed")


def _to_version(version: int, done: str) -> Response:
    return RedirectResponse(
        f"{PREFIX}/policies/{version}?done={done}", status_code=303, headers=HEADERS
    )


@router.get("/policies/diff")
def compare(
    request: Request,
    room: RoomDep,
    session: Reader,
    to: Annotated[int, Query(ge=1)],
    from_: Annotated[int | None, Query(alias="from", ge=1)] = None,
) -> Response:
    """Any two versions compared, each change classified."""
    start = from_ if from_ is not None else room.policies.active().version
    changes = room.policies.compare(start, to)
    return render(
        request,
        "policy_diff.html",
        {
            "title": N_("Policy diff"),
            "start": start,
            "end": to,
            "changes": ordered(changes),
            "summary": summarize(changes),
            "shown": shown,
        },
    )


def _version_page(
    request: Request,
    room: Room,
    session: Session,
    number: int,
    *,
    done: str | None = None,
    error: str | UserError | None = None,
    status: int = 200,
) -> Response:
    version = room.policies.get(number)
    user = session.user
    base = _base_of(room, version)
    changes = room.policies.compare(base, number) if base else []
    decided = {d.reviewer for d in version.decisions}
    is_open = version.status == PROPOSED
    return render(
        request,
        "policy_version.html",
        {
            "title": N_("Policy version"),
            "version": version,
            "base": base,
            "changes": ordered(changes),
            "summary": summarize(changes),
            "shown": shown,
            "done": DONE.get(done or ""),
            "error": error,
            "is_author": version.author == user.name,
            "can_approve": is_open
            and may(user, "policy.approve")
            and version.author != user.name
            and user.name not in decided,
            "already_decided": user.name in decided,
            "can_reject": is_open and may(user, "policy.reject"),
            "can_rollback": version.status == SUPERSEDED and may(user, "policy.rollback"),
        },
        status=status,
    )


@router.get("/policies/{number}")
def show(
    request: Request, room: RoomDep, session: Reader, number: int, done: str | None = None
) -> Response:
    """One version: its changes from its base, its decisions, and the reviewer's forms."""
    return _version_page(request, room, session, number, done=done)


@router.post("/policies/{number}/approve")
def approve(
    request: Request, room: RoomDep, session: Reader, form: Approval, number: int
) -> Response:
    """Approve (never one's own); the approval reaching the bar activates the version."""
    try:
        version = room.policies.approve(session.user, number, form.get("comment"))
    except UserError as err:
        return _version_page(request, room, session, number, error=err, status=err.status)
    return _to_version(number, "activated" if version.status == "active" else "approved")


@router.post("/policies/{number}/reject")
def reject(
    request: Request, room: RoomDep, session: Reader, form: Rejection, number: int
) -> Response:
    """Reject with a comment saying why."""
    try:
        room.policies.reject(session.user, number, form.get("comment"))
    except UserError as err:
        return _version_page(request, room, session, number, error=err, status=err.status)
    return _to_version(number, "rejected")


@router.post("/policies/{number}/rollback")
def rollback(
    request: Request, room: RoomDep, session: Reader, form: Rollback, number: int
) -> Response:
    """Propose this earlier version's text again, as a new proposal."""
    try:
        version, _ = room.policies.rollback(session.user, number, form.get("comment"))
    except UserError as err:
        return _version_page(request, room, session, number, error=err, status=err.status)
    return _to_version(version.version, "proposed")
