"""The privacy budget: spent and left, per party, for the current period."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cleanroom.room.api.models import Budget
from cleanroom.room.http.deps import EngineDep, RoomDep, UserDep
from cleanroom.room.spending import spending

router = APIRouter(prefix="/api/v1", tags=["budget"])


@router.get("/budget", response_model=Budget, response_model_exclude_unset=True)
def budget(room: RoomDep, user: UserDep, engine: EngineDep) -> dict[str, Any]:
    """A party-bound user sees its party; reviewers and admins see every party.

    The collaboration's total spending only to reviewers and admins: less a
    party's own, it is the other parties' (``cleanroom.room.disclosure``).
    """
    return {"parties": spending(room, user, engine.ledger)}
