"""Liveness, readiness and Prometheus metrics: no authentication, nothing sensitive."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cleanroom.room import metrics
from cleanroom.room.api.models import Health, Readiness
from cleanroom.room.http.deps import RoomDep

router = APIRouter(tags=["health"])


@router.get("/api/v1/health", response_model=Health)
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/api/v1/ready", response_model=Readiness)
def ready(room: RoomDep, response: Response) -> dict[str, object]:
    """The stores answer and a policy is active."""
    checks: dict[str, bool] = {}
    try:
        room.store.connection().execute("SELECT 1").fetchone()
        checks["metadata"] = True
    except Exception:  # pragma: no cover - depends on a broken disk
        checks["metadata"] = False
    try:
        room.wh.cursor().execute("SELECT 1").fetchall()
        checks["warehouse"] = True
    except Exception:  # pragma: no cover
        checks["warehouse"] = False
    try:
        room.active_policy()
        checks["policy"] = True
    except Exception:
        checks["policy"] = False
    ok = all(checks.values())
    response.status_code = 200 if ok else 503
    # Reads go on with a broken audit chain, so readiness does not depend on it; whether
    # the room records (and so accepts recorded actions) is said beside it, from the
    # verdict the room already holds (no verification here, no entry number either).
    recording = room.audit.recording()
    return {"status": "ready" if ok else "not ready", "checks": checks, "recording": recording}


@router.get("/metrics", include_in_schema=False)
def prometheus() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
