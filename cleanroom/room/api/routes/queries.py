"""Queries: submit restricted SQL or a template (or just price it), read a result."""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cleanroom.room.api.deps import roles
from cleanroom.room.auth import Role, User
from cleanroom.room.dp import MIN_EPSILON
from cleanroom.room.query.engine import Engine, QueryRequest

router = APIRouter(prefix="/api/v1/queries", tags=["queries"])
Asker = Annotated[User, Depends(roles(Role.analyst, Role.reporter))]
Reader = Annotated[
    User, Depends(roles(Role.analyst, Role.reporter, Role.reviewer, Role.room_admin))
]


class QueryBody(BaseModel):
    """A query: ``sql`` or ``template`` (+ ``params``); ``dry_run`` prices it without running."""

    sql: str | None = Field(None, max_length=20_000)
    template: str | None = Field(None, max_length=100)
    params: dict[str, str] = Field(default_factory=dict, max_length=20)
    epsilon: float | None = Field(
        None,
        ge=float(MIN_EPSILON),
        le=100,
        allow_inf_nan=False,
        description=f"at least {float(MIN_EPSILON):g}: smaller ones buy only noise",
    )
    dry_run: bool = False


def get_engine(request: Request) -> Engine:
    """The app's one engine (it holds the ledger)."""
    found: Engine = request.app.state.engine
    return found


EngineDep = Annotated[Engine, Depends(get_engine)]


@router.post("")
async def submit(body: QueryBody, engine: EngineDep, user: Asker) -> dict[str, Any]:
    """Run a query (or price it with ``dry_run``); refused queries name the rule they broke."""
    request = QueryRequest(
        sql=body.sql,
        template=body.template,
        params=body.params,
        epsilon=Fraction(str(body.epsilon)) if body.epsilon is not None else None,
        dry_run=body.dry_run,
    )
    return await run_in_threadpool(engine.run, request, user)


@router.get("/{query_id}")
def get(query_id: str, engine: EngineDep, user: Reader) -> dict[str, Any]:
    """A stored result: to its own party, or to reviewers and room admins."""
    return engine.get(query_id, user)
