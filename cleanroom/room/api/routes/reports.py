"""Reports: the policy's report definitions, their runs, a manual run, and the run's files."""

from __future__ import annotations

import io
import zipfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from cleanroom.errors import T_, NotFoundError
from cleanroom.room.api.deps import roles
from cleanroom.room.api.models import ReportOut, ReportRunOut
from cleanroom.room.auth import Role, User
from cleanroom.room.policy.reports import ReportPolicy
from cleanroom.room.reports.access import may_read
from cleanroom.room.reports.runner import ReportRunner

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
Reader = Annotated[
    User, Depends(roles(Role.analyst, Role.reporter, Role.reviewer, Role.room_admin))
]
Trigger = Annotated[User, Depends(roles(Role.reporter, Role.room_admin))]

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
}
# The page is our own, autoescaped HTML; still, it is served from the API's origin,
# so it may load nothing and run nothing: inline style, embedded images and the
# embedded Persian font only.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data: 'self'; font-src data:; "
    "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
}


def get_runner(request: Request) -> ReportRunner:
    """The app's one report runner (the scheduler uses the same)."""
    runner: ReportRunner = request.app.state.reports
    return runner


RunnerDep = Annotated[ReportRunner, Depends(get_runner)]


def _visible(runner: ReportRunner, name: str, user: User) -> ReportPolicy:
    """The report, if it exists and the user may read it (else 404: no existence leak)."""
    _, report = runner.definition(name)
    if not may_read(user, report):
        raise NotFoundError(T_("the active policy has no report '%(name)s'", name=name[:60]))
    return report


def _describe(name: str, report: ReportPolicy, version: int) -> dict[str, Any]:
    return {
        "name": name,
        "title": report.title,
        "schedule": report.schedule,
        "enabled": report.enabled,
        "recipients": report.recipients,
        "epsilon": str(report.epsilon),
        "epsilon_float": float(report.epsilon),
        "sections": [s.model_dump(mode="json") for s in report.sections],
        "policy_version": version,
    }


@router.get("", response_model=list[ReportOut])
def list_reports(runner: RunnerDep, user: Reader) -> list[dict[str, Any]]:
    """The reports of the active policy the caller may read, each with its latest run."""
    active = runner.room.active_policy()
    out = []
    for name, report in active.policy.reports.items():
        if may_read(user, report):
            last = runner.runs.last(name)
            out.append(
                {
                    **_describe(name, report, active.version),
                    "last_run": last.as_dict() if last else None,
                }
            )
    return out


@router.get("/{name}/runs", response_model=list[ReportRunOut])
def list_runs(
    name: str, runner: RunnerDep, user: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """A report's runs, newest first: done, refused (with the reason) and failed alike."""
    _visible(runner, name, user)
    return [run.as_dict() for run in runner.runs.recent(name, limit=limit)]


@router.post("/{name}/run", status_code=201, response_model=ReportRunOut)
async def run_now(name: str, runner: RunnerDep, user: Trigger) -> dict[str, Any]:
    """Run a report now, as the reporters; the recorded run (its ``status`` says how it went).

    A refusal (policy check, no match yet, budget) is recorded and returned as a
    run with status ``refused`` and its reason; a run of the report still going
    is a 409.
    """
    run = await run_in_threadpool(runner.run, name, user=user)
    return run.as_dict()


@router.get("/{name}/runs/{run_id}", response_model=ReportRunOut)
def get_run(name: str, run_id: str, runner: RunnerDep, user: Reader) -> dict[str, Any]:
    """One run, with the names of its files."""
    _visible(runner, name, user)
    return runner.runs.get(name, run_id).as_dict()


FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file",
        "content": {
            m.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
            for m in MEDIA_TYPES.values()
        },
    }
}


@router.get(
    "/{name}/runs/{run_id}/files/{file}", response_class=FileResponse, responses=FILE_RESPONSE
)
def download(name: str, run_id: str, file: str, runner: RunnerDep, user: Reader) -> FileResponse:
    """One file of a published run; only the names the run lists, nothing beside them."""
    _visible(runner, name, user)
    run = runner.runs.get(name, run_id)
    missing = NotFoundError(
        T_(
            "run '%(run)s' of report '%(name)s' has no file '%(file)s'",
            run=run.id,
            name=name,
            file=file[:80],
        )
    )
    if run.status != "done" or run.outputs is None or file not in run.files:
        raise missing
    base = (runner.room.paths.root / run.outputs).resolve()
    path = (base / file).resolve()
    if path.parent != base or not path.is_file():
        raise missing
    headers = PAGE_HEADERS if path.suffix == ".html" else {"X-Content-Type-Options": "nosniff"}
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers=headers,
    )


ARCHIVE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "every file of the run in one zip",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("/{name}/runs/{run_id}/archive", response_class=Response, responses=ARCHIVE_RESPONSE)
def archive(name: str, run_id: str, runner: RunnerDep, user: Reader) -> Response:
    """Every file of a published run (page, charts, CSV, JSON) as one zip."""
    _visible(runner, name, user)
    run = runner.runs.get(name, run_id)
    if run.status != "done" or run.outputs is None:
        raise NotFoundError(
            T_("run '%(run)s' of report '%(name)s' published no files", run=run.id, name=name)
        )
    base = (runner.room.paths.root / run.outputs).resolve()
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for file in run.files:
            path = (base / file).resolve()
            if path.parent == base and path.is_file():  # only the names the run lists
                zf.write(path, arcname=f"{name}-{run.id}/{file}")
    return Response(
        sink.getvalue(),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-{run.id}.zip"',
            "X-Content-Type-Options": "nosniff",
        },
    )
