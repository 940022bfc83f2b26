"""Queries: submit restricted SQL or a template (or price it), list and re-open, download."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from starlette.concurrency import run_in_threadpool

from cleanroom.room.api.models import QueryPrice, QueryResult, QuerySummary
from cleanroom.room.auth import Role, User
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.http.bodies import QueryBody
from cleanroom.room.http.deps import EngineDep, roles
from cleanroom.room.query.engine import QueryRequest
from cleanroom.room.query.export import FORMATS, MEDIA_TYPES, Format, export
from cleanroom.room.query.history import MAX_LISTED

router = APIRouter(prefix="/api/v1/queries", tags=["queries"])
Asker = Annotated[User, Depends(roles(Role.analyst, Role.reporter))]
Reader = Annotated[
    User, Depends(roles(Role.analyst, Role.reporter, Role.reviewer, Role.room_admin))
]


@router.post("", response_model=QueryResult | QueryPrice, response_model_exclude_unset=True)
async def submit(body: QueryBody, engine: EngineDep, user: Asker) -> dict[str, Any]:
    """Run a query (or price it with ``dry_run``); refused queries name the rule they broke."""
    request = QueryRequest(
        sql=body.sql,
        template=body.template,
        params=body.params,
        epsilon=Epsilon.parse(body.epsilon) if body.epsilon is not None else None,
        dry_run=body.dry_run,
    )
    return await run_in_threadpool(engine.run, request, user)


@router.get("", response_model=list[QuerySummary])
def list_queries(
    engine: EngineDep,
    user: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 50,
    before: Annotated[
        str | None, Query(max_length=64, description="page back: the last query id seen")
    ] = None,
) -> list[dict[str, Any]]:
    """The caller's party's queries, newest first (every party's to reviewers and admins)."""
    return engine.history(user, limit=limit, before=before)


DOWNLOADS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the result; with ``format`` other than json, a file: one line per "
        "released number with its 95% bound, interval and flags",
        "content": {
            MEDIA_TYPES[f].split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
            for f in FORMATS
            if f != "json"
        },
    }
}


@router.get(
    "/{query_id}",
    response_model=QueryResult,
    response_model_exclude_unset=True,  # a count has no low/high: none are invented
    responses=DOWNLOADS,
)
def get(
    query_id: str,
    engine: EngineDep,
    user: Reader,
    format: Format = "json",
) -> Any:
    """A stored result, to its own party (or reviewers and room admins), or as a download."""
    result = engine.get(query_id, user)
    if format == "json":
        return result
    download = export(result, format)
    name = f"query-{query_id[:16]}.{download.suffix}"
    return Response(
        download.body,
        media_type=download.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
