"""Reports: the policy's report definitions, their runs, a manual run, and the run's files."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from cleanroom.room.api.models import ReportOut, ReportRunOut
from cleanroom.room.auth import Role, User
from cleanroom.room.http.deps import RunnerDep, roles
from cleanroom.room.http.downloads import MEDIA_TYPES, file_response, zip_response
from cleanroom.room.reports import published

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
Reader = Annotated[
    User, Depends(roles(Role.analyst, Role.reporter, Role.reviewer, Role.room_admin))
]
Trigger = Annotated[User, Depends(roles(Role.reporter, Role.room_admin))]


@router.get("", response_model=list[ReportOut])
def list_reports(runner: RunnerDep, user: Reader) -> list[dict[str, Any]]:
    """The reports of the active policy the caller may read, each with its latest run."""
    return published.list_reports(runner, user)


@router.get("/{name}/runs", response_model=list[ReportRunOut])
def list_runs(
    name: str, runner: RunnerDep, user: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """A report's runs, newest first: done, refused (with the reason) and failed alike."""
    return published.list_runs(runner, name, user, limit)


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
    return published.get_run(runner, name, run_id, user)


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
    return file_response(published.run_file(runner, name, run_id, file, user))


ARCHIVE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "every file of the run in one zip",
        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("/{name}/runs/{run_id}/archive", response_class=Response, responses=ARCHIVE_RESPONSE)
def archive(name: str, run_id: str, runner: RunnerDep, user: Reader) -> Response:
    """Every file of a published run (page, charts, CSV, JSON) as one zip."""
    return zip_response(*published.run_archive(runner, name, run_id, user))
