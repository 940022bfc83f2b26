"""The FastAPI application: the API and the web UI mounted together, one error handler.

This is where the two faces meet (neither imports the other): the API's routers,
the web UI's pages, the role rules the pages read from the API's routes, metrics,
request logs, and one error handler answering JSON to the API and a page to the UI.
"""

from __future__ import annotations

import logging
import math
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import duckdb
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

import cleanroom
from cleanroom import clock
from cleanroom.errors import CleanroomError, UnavailableError
from cleanroom.i18n import (
    Language,
    from_accept_language,
    language_of,
    localize,
    message_language,
)
from cleanroom.room import metrics
from cleanroom.room.api.limits import BodyLimit
from cleanroom.room.api.models import ERRORS, ErrorBody, ErrorDetails, ErrorInfo
from cleanroom.room.api.routes import (
    audit,
    budget,
    datasets,
    health,
    matches,
    me,
    policies,
    queries,
    reports,
)
from cleanroom.room.api.routes import room as room_routes
from cleanroom.room.audit_watch import AuditWatch
from cleanroom.room.budget import BudgetExceeded
from cleanroom.room.expiry import RetentionWatch
from cleanroom.room.faults import unavailable
from cleanroom.room.query.engine import Engine
from cleanroom.room.recovery import recover
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.reports.schedule import Scheduler
from cleanroom.room.state import Room
from cleanroom.room.web import capabilities
from cleanroom.room.web import routes as web
from cleanroom.room.web.errors import error_page, is_web
from cleanroom.room.web.render import language_for

log = logging.getLogger("cleanroom.api")
# Routes streaming a body under a limit of their own (``max_upload_bytes``).
UPLOAD_ROUTES = frozenset({("POST", "/api/v1/datasets")})
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _error(
    status: int, code: str, message: str, request_id: str, details: dict[str, object]
) -> JSONResponse:
    body = ErrorBody(
        error=ErrorInfo(
            code=code,
            message=message,
            request_id=request_id,
            details=ErrorDetails.model_validate(details),
        )
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers={"X-Request-Id": request_id},
    )


def request_language(request: Request) -> Language:
    """The language a request's messages are written in.

    The web UI: the page's language. The API: the ``Accept-Language`` the
    request sends, else the language its user chose, else English (scripts
    read ``code`` and ``details``, which never change with the language).
    """
    if is_web(request):
        return language_for(request)
    asked = from_accept_language(request.headers.get("accept-language"))
    chosen = getattr(request.state, "chosen_language", None)
    return asked or language_of(chosen, "en")


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str | CleanroomError,
    details: dict[str, object] | None = None,
) -> Response:
    """An error as JSON for the API, as a page for the web UI (one handler for both).

    ``message`` is shown in the request's language when it was written for
    translation (an error raised with a ``T_`` message); ``code`` and
    ``details`` stay as they are in every language.
    """
    language = request_language(request)
    shown = localize(message, language)
    if is_web(request):
        return error_page(request, status, code, shown, message_language(message, language))
    return _error(status, code, shown, getattr(request.state, "request_id", "-"), details or {})


def _retry_after(err: CleanroomError) -> int | None:
    """Seconds a client should wait: a fixed hint when unavailable, the reset of a budget."""
    if isinstance(err, UnavailableError):
        return err.retry_after
    if isinstance(err, BudgetExceeded):
        return max(1, math.ceil((err.resets_at - clock.now()).total_seconds()))
    return None


def create_app(room: Room) -> FastAPI:
    """The service for one open room."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recovered = recover(room, app.state.reports)  # never raises: the room always starts
        log.info(
            "room ready",
            extra={
                "room_key_id": room.key_id,
                "orphans_dropped": recovered.tables_dropped,
                "recording": recovered.reason is None,
            },
        )
        watch = None
        if room.settings.audit_verify_interval > 0:
            watch = AuditWatch(
                room.audit, room.store, interval=room.settings.audit_verify_interval
            ).start()
        scheduler = retention = None
        if room.settings.scheduler:
            scheduler = Scheduler(app.state.reports, interval=room.settings.scheduler_interval)
            app.state.scheduler = scheduler.start()
            retention = RetentionWatch(room, interval=room.settings.scheduler_interval).start()
        try:
            yield
        finally:
            if retention is not None:
                retention.stop()
            if scheduler is not None:
                scheduler.stop()
            if watch is not None:
                watch.stop()

    app = FastAPIOffline(  # Swagger UI and ReDoc from the package's own files, no CDN
        title="cleanroom",
        version=cleanroom.__version__,
        description="Privacy-preserving data clean room: upload sealed bundles, match, "
        "and query only policy-approved, differentially private aggregates.",
        lifespan=lifespan,
    )
    app.state.room = room
    app.state.engine = Engine(room)
    app.state.reports = ReportRunner(app.state.engine)
    api = (
        health,
        datasets,
        matches,
        queries,
        budget,
        policies,
        reports,
        audit,
        me,
        room_routes,
    )
    for module in api:
        app.include_router(module.router, responses=ERRORS)
    # The web UI shows each role what these routes admit (it reads them, never imports them).
    capabilities.use_routes(route for module in api for route in module.router.routes)
    app.include_router(web.router)  # the web UI, kept out of the OpenAPI document
    app.include_router(web.root)
    app.add_middleware(
        BodyLimit,
        limit=room.settings.max_request_bytes,
        exempt=UPLOAD_ROUTES,
        refuse=lambda request, message: _respond(request, 413, "too_large", message),
    )  # added before ``observe``, so it runs inside it: a refusal is logged and counted

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = secrets.token_hex(8)
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - started
        metrics.REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        metrics.LATENCY.labels(path).observe(elapsed)
        response.headers["X-Request-Id"] = request.state.request_id
        log.info(
            "request",
            extra={
                "method": request.method,
                "route": path,
                "status": response.status_code,
                "ms": round(elapsed * 1000, 1),
                "request_id": request.state.request_id,
            },
        )
        return response

    @app.exception_handler(CleanroomError)
    async def domain_error(request: Request, err: CleanroomError) -> Response:
        request_id = getattr(request.state, "request_id", "-")
        if isinstance(err, UnavailableError):  # the environment refused; nothing was changed
            log.warning(
                "unavailable", extra={"code": err.code, "request_id": request_id, **err.details}
            )
        elif err.status >= 500:
            log.error("internal error", extra={"code": err.code, "request_id": request_id})
            return _respond(request, 500, err.code, "internal error; see the service log")
        details = err.details
        retry = _retry_after(err)
        if retry is not None:
            details = {**details, "retry_after": retry}
        response = _respond(request, err.status, err.code, err, details)
        if retry is not None:
            response.headers["Retry-After"] = str(retry)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        return _respond(request, 422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        """The framework's refusals (unknown path, wrong method, unparsable body), same shape."""
        code = _HTTP_CODES.get(err.status_code, "http_error")
        response = _respond(request, err.status_code, code, str(err.detail))
        for name, value in (err.headers or {}).items():  # e.g. Allow on a 405
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        request_id = getattr(request.state, "request_id", "-")
        log.error("unhandled error", extra={"error": type(err).__name__, "request_id": request_id})
        return _respond(request, 500, "internal", "internal error; see the service log")

    async def environment(request: Request, err: Exception) -> Response:
        """A locked store or a full disk: 503/507 saying so (cleanroom.room.faults)."""
        mapped = unavailable(err)
        if mapped is None:
            raise err  # a bug after all: on to the 500 handler, and the traceback to the log
        return await domain_error(request, mapped)

    for kind in (sqlite3.Error, OSError, duckdb.Error):
        app.add_exception_handler(kind, environment)

    return app
