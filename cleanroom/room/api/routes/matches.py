"""Identity matching runs. No counts of persons are ever returned: those are DP queries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from cleanroom.errors import T_, NotFoundError
from cleanroom.room import metrics
from cleanroom.room.api.models import GenerationOut
from cleanroom.room.auth import Role, User
from cleanroom.room.disclosure import match_inputs_for
from cleanroom.room.http.deps import RoomDep, UserDep, roles
from cleanroom.room.matching import live_generation, run_match

router = APIRouter(prefix="/api/v1/matches", tags=["matches"])


@router.post("", status_code=201, response_model=GenerationOut, response_model_exclude_unset=True)
async def match(
    room: RoomDep, user: Annotated[User, Depends(roles(Role.room_admin))]
) -> dict[str, Any]:
    """Resolve persons across every live dataset and publish a new generation."""
    try:
        generation = await run_in_threadpool(run_match, room, user)
    except Exception:
        metrics.MATCHES.labels("failed").inc()
        raise
    metrics.MATCHES.labels("ok").inc()
    return generation.public(user)


@router.get("/latest", response_model=GenerationOut, response_model_exclude_unset=True)
def latest(room: RoomDep, user: UserDep) -> dict[str, Any]:
    """Which dataset versions the live generation was built from, and what it withheld.

    ``withheld`` (counts only): in full for reviewers and room admins; a
    party's users see how many of their own party's links were withheld.
    """
    generation = live_generation(room)
    if generation is None:
        raise NotFoundError(T_("no match has run yet"))
    # Other parties' version numbers would count their uploads: withheld.
    return {**generation.public(user), "inputs": match_inputs_for(user, generation.inputs)}
