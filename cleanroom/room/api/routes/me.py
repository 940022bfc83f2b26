"""Who am I: lets a client check its token and see its role."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cleanroom.room.api.models import Me
from cleanroom.room.http.deps import UserDep

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/me", response_model=Me)
def me(user: UserDep) -> dict[str, Any]:
    """The calling user (never the token)."""
    return {"name": user.name, "role": str(user.role), "party": user.party}
