"""The FastAPI application: routes, one error handler, metrics and request logs."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import cleanroom
from cleanroom.errors import CleanroomError
from cleanroom.room import metrics
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
from cleanroom.room.ingest import reconcile
from cleanroom.room.query.engine import Engine
from cleanroom.room.reports.runner import ReportRunner
from cleanroom.room.reports.schedule import Scheduler
from cleanroom.room.room import Room

log = logging.getLogger("cleanroom.api")


def _error(status: int, code: str, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "request_id": request_id}},
        status_code=status,
        headers={"X-Request-Id": request_id},
    )


def create_app(room: Room) -> FastAPI:
    """The service for one open room."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dropped = reconcile(room)
        log.info("room ready", extra={"room_key_id": room.key_id, "orphans_dropped": len(dropped)})
        app.state.reports.recover()  # runs a previous stop cut off: marked failed
        scheduler = None
        if room.settings.scheduler:
            scheduler = Scheduler(app.state.reports, interval=room.settings.scheduler_interval)
            app.state.scheduler = scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()

    app = FastAPI(
        title="cleanroom",
        version=cleanroom.__version__,
        description="Privacy-preserving data clean room: upload sealed bundles, match, "
        "and query only policy-approved, differentially private aggregates.",
        lifespan=lifespan,
    )
    app.state.room = room
    app.state.engine = Engine(room)
    app.state.reports = ReportRunner(app.state.engine)
    for module in (health, datasets, matches, queries, budget, policies, reports, audit, me):
        app.include_router(module.router)

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
    async def domain_error(request: Request, err: CleanroomError) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        if err.status >= 500:
            log.error("internal error", extra={"code": err.code, "request_id": request_id})
            return _error(500, err.code, "internal error; see the service log", request_id)
        return _error(err.status, err.code, str(err), request_id)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        return _error(422, "invalid_request", problems, getattr(request.state, "request_id", "-"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "-")
        log.error("unhandled error", extra={"error": type(err).__name__, "request_id": request_id})
        return _error(500, "internal", "internal error; see the service log", request_id)

    return app
