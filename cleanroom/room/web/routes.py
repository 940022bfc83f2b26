"""The web UI's routes: every page under ``/ui``, its static files, and ``/`` → ``/ui/``.

None of them is in the OpenAPI document (that is the programs' contract);
their role rules are the API's (:mod:`.access`) and are tested on their own.
Static files are a fixed list read once, so no request path ever reaches
the file system.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from cleanroom.errors import T_, NotFoundError
from cleanroom.room.web.deps import SessionDep
from cleanroom.room.web.pages import (
    audit,
    console,
    dashboard,
    history,
    language,
    policies,
    reports,
    signin,
)
from cleanroom.room.web.render import HERE, PREFIX

STATIC = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "fonts/Vazirmatn-Regular.woff2": "font/woff2",
    "fonts/Vazirmatn-Bold.woff2": "font/woff2",
}
_STATIC_BODIES = {name: (HERE / "static" / name).read_bytes() for name in STATIC}

PAGES = (signin, language, dashboard, console, history, policies, audit, reports)
router = APIRouter(prefix=PREFIX, include_in_schema=False)
for module in PAGES:
    router.include_router(module.router)


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    """The stylesheet, the script or the Persian font."""
    if name not in STATIC:
        raise NotFoundError(T_("no static file '%(name)s'", name=name[:40]))
    return Response(
        _STATIC_BODIES[name],
        media_type=STATIC[name],
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/{rest:path}")
def not_found(rest: str, session: SessionDep) -> Response:
    """Any other address under /ui: a page saying so (signed-in), not the API's JSON."""
    raise NotFoundError(T_("there is no page /ui/%(rest)s", rest=rest[:60]))


root = APIRouter(include_in_schema=False)


@root.get("/")
def home() -> RedirectResponse:
    """People who open the service's address land on the web UI."""
    return RedirectResponse(f"{PREFIX}/", status_code=307)
