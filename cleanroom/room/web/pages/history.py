"""One's party's queries: a list, a past result re-opened, and every result as a download.

The same engine calls as ``GET /api/v1/queries`` and ``GET
/api/v1/queries/{id}`` with the same visibility rule (one's own party; every
party to reviewers and room admins), and the same files as the API's
``format=`` downloads: one line per released number with its bounds and flags.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from cleanroom.accuracy import RESULT_ENVELOPE
from cleanroom.i18n import N_
from cleanroom.room.http.deps import EngineDep, RoomDep
from cleanroom.room.query.export import Format, export
from cleanroom.room.web import result_chart
from cleanroom.room.web.deps import page
from cleanroom.room.web.pages.console import _context
from cleanroom.room.web.render import language_for, party_names
from cleanroom.room.web.render import page as render
from cleanroom.room.web.session import Session

router = APIRouter()
Reader = Annotated[Session, Depends(page("history"))]
DOWNLOADS = ("csv", "xlsx", "parquet", "json")  # as the console offers them


@router.get("/queries")
def history(
    request: Request,
    engine: EngineDep,
    session: Reader,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The latest queries, newest first."""
    found = engine.history(session.user, limit=50, before=before)
    return render(
        request,
        "history.html",
        {
            "title": N_("Query history"),
            "queries": found,
            "earlier": found[-1]["query_id"] if len(found) == 50 else None,
        },
    )


@router.get("/queries/{query_id}")
def reopen(
    query_id: str, request: Request, room: RoomDep, engine: EngineDep, session: Reader
) -> Response:
    """A past result on the console page, with its downloads (nothing is charged)."""
    result = engine.get(query_id, session.user)
    if result.get("status", "done") != "done":
        context = _context(room, engine, session.user, reopened=result)
        return render(request, "console.html", context)
    language = language_for(request)
    chart = result_chart.chart(result, language, party_names(request, language))
    extras = {k: v for k, v in result.items() if k not in RESULT_ENVELOPE}
    context = _context(room, engine, session.user, result=result, chart=chart, extras=extras)
    return render(request, "console.html", context)


@router.get("/queries/{query_id}/download")
def download(query_id: str, engine: EngineDep, session: Reader, format: Format = "csv") -> Response:
    """The result as a file: CSV, XLSX, Parquet or JSON, bounds and flags as columns."""
    file = export(engine.get(query_id, session.user), format)
    return Response(
        file.body,
        media_type=file.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="query-{query_id[:16]}.{file.suffix}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
