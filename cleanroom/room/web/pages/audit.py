"""The audit trail: entries filtered by action, actor and outcome, and the chain's verdict.

The chain is verified on every visit: a reviewer reading the trail should not
have to remember to ask whether it can be trusted. Without a filter the page
opens on the latest entries, newest first, which is what one usually looks for;
pages move by sequence number (``after``), as the API's do.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cleanroom.i18n import N_
from cleanroom.room.http.deps import RoomDep
from cleanroom.room.web.deps import page
from cleanroom.room.web.render import page as render
from cleanroom.room.web.session import Session

router = APIRouter()
Auditor = Annotated[Session, Depends(page("audit"))]
PAGE = 100


@router.get("/audit")
def audit(
    request: Request,
    room: RoomDep,
    session: Auditor,
    action: Annotated[str, Query(max_length=100)] = "",
    actor: Annotated[str, Query(max_length=100)] = "",
    outcome: Annotated[str, Query(max_length=20)] = "",
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Entries oldest first from ``after``; the chain verification on top."""
    verification = room.audit.verify()
    filtered = bool(action or actor or outcome)
    start = after if after is not None else (0 if filtered else max(0, verification.entries - PAGE))
    entries = room.audit.entries(
        actor=actor.strip() or None,
        action=action.strip() or None,
        outcome=outcome.strip() or None,
        after_seq=start,
        limit=PAGE,
    )
    return render(
        request,
        "audit.html",
        {
            "title": N_("Audit trail"),
            "verification": verification,
            "entries": entries,
            "filters": {"action": action, "actor": actor, "outcome": outcome},
            "next_after": entries[-1].seq if len(entries) == PAGE else None,
            # Without filters sequence numbers are contiguous, so the page before is known.
            "earlier": max(0, start - PAGE) if not filtered and start > 0 else None,
            "filtered": filtered,
            "start": start,
        },
    )
