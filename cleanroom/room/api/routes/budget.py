"""The privacy budget: spent and left, per party, for the current period."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cleanroom.errors import T_, UserError
from cleanroom.room.api.deps import RoomDep, UserDep
from cleanroom.room.api.models import Budget
from cleanroom.room.api.routes.queries import EngineDep
from cleanroom.room.auth import Role
from cleanroom.room.disclosure import sees_every_party

router = APIRouter(prefix="/api/v1", tags=["budget"])


@router.get("/budget", response_model=Budget, response_model_exclude_unset=True)
def budget(room: RoomDep, user: UserDep, engine: EngineDep) -> dict[str, Any]:
    """A party-bound user sees its party; reviewers and admins see every party.

    The collaboration's total spending only to reviewers and admins: less a
    party's own, it is the other parties' (``cleanroom.room.disclosure``).
    """
    privacy = room.active_policy().policy.privacy
    if privacy is None:
        raise UserError(T_("the active policy has no privacy budget (it allows no queries)"))
    if user.role in (Role.reviewer, Role.room_admin):
        parties = sorted(privacy.budget.shares)
    else:
        parties = [user.party or "reporter"]
    ledger = engine.ledger
    out = []
    for party in parties:
        s = ledger.status(party, privacy.budget)
        out.append(
            {
                "party": party,
                "period": s.period,
                "period_start": s.period_start,
                "period_end": s.period_end,
                "share": float(s.share),
                "spent": float(s.spent),
                "left": float(s.left),
                "collaboration_cap": float(s.cap),
            }
        )
        if sees_every_party(user):  # the sum over parties: with two, the other's spending
            out[-1]["collaboration_spent"] = float(s.spent_total)
    return {"parties": out}
