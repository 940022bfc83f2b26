"""Reports: the policy's reports, each one's runs, a run's page and its files.

Listing, visibility and file serving are the API's own, from
:mod:`cleanroom.room.reports.published` and :mod:`cleanroom.room.http.downloads`: a report an
analyst's party does not receive is "not found" here exactly as there, and a
run serves only the files it lists, with the same headers (the report page
may load nothing and run nothing). The run's page shows the report in a
sandboxed frame, and its charts as images.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from cleanroom.errors import T_, NotFoundError, UserError
from cleanroom.i18n import N_
from cleanroom.room.http.deps import RunnerDep
from cleanroom.room.http.downloads import file_response, zip_response
from cleanroom.room.reports import published
from cleanroom.room.reports.runner import REPORTER_SHARE
from cleanroom.room.web.capabilities import may
from cleanroom.room.web.deps import page, posted
from cleanroom.room.web.forms import Form
from cleanroom.room.web.render import HEADERS, PREFIX
from cleanroom.room.web.render import page as render
from cleanroom.room.web.session import Session

router = APIRouter()
Reader = Annotated[Session, Depends(page("reports"))]
Trigger = Annotated[Form, Depends(posted("reports.run"))]
RUNS_SHOWN = 50


@router.get("/reports")
def reports(request: Request, runner: RunnerDep, session: Reader) -> Response:
    """The reports of the active policy this user may read, each with its last run."""
    return render(
        request,
        "reports.html",
        {"title": N_("Reports"), "reports": published.list_reports(runner, session.user)},
    )


def _report(runner: Any, name: str, session: Session) -> dict[str, Any]:
    found = [r for r in published.list_reports(runner, session.user) if r["name"] == name]
    if not found:
        raise NotFoundError(T_("the active policy has no report '%(name)s'", name=name[:60]))
    return found[0]


@router.get("/reports/{name}")
def report(request: Request, runner: RunnerDep, session: Reader, name: str) -> Response:
    """One report: its definition and its runs, newest first."""
    return _report_page(request, runner, session, name, error=None, status=200)


def _report_page(
    request: Request,
    runner: Any,
    session: Session,
    name: str,
    *,
    error: str | UserError | None,
    status: int,
) -> Response:
    definition = _report(runner, name, session)
    runs = published.list_runs(runner, name, session.user, limit=RUNS_SHOWN)
    left = _reporter_left(runner)
    return render(
        request,
        "report.html",
        {
            "title": definition["title"],
            "report": definition,
            "runs": runs,
            "error": error,
            "can_run": may(session.user, "reports.run") and definition["enabled"],
            # "Run now" only when the reporter share can pay; else say how much is left.
            "reporter_left": left,
            "can_pay": left is None or left >= Fraction(definition["epsilon"]),
        },
        status=status,
    )


def _reporter_left(runner: Any) -> Fraction | None:
    """Epsilon left to the reporter share this period (None: the policy sets no budget)."""
    privacy = runner.room.active_policy().policy.privacy
    if privacy is None:
        return None
    left: Fraction = runner.engine.ledger.status(REPORTER_SHARE, privacy.budget).left
    return left


@router.post("/reports/{name}/run")
async def run_now(
    request: Request, runner: RunnerDep, session: Reader, form: Trigger, name: str
) -> Response:
    """Run the report now; then its run's page (refused and failed runs are pages too)."""
    try:
        run = (await run_in_threadpool(runner.run, name, user=session.user)).as_dict()
    except UserError as err:
        return _report_page(request, runner, session, name, error=err, status=err.status)
    return RedirectResponse(
        f"{PREFIX}/reports/{name}/runs/{run['run_id']}", status_code=303, headers=HEADERS
    )


@router.get("/reports/{name}/runs/{run_id}")
def run_page(
    request: Request, runner: RunnerDep, session: Reader, name: str, run_id: str
) -> Response:
    """One run: how it went, its report page in a frame, its charts and files."""
    definition = _report(runner, name, session)
    run = published.get_run(runner, name, run_id, session.user)
    files: list[str] = run["files"] if run["status"] == "done" else []
    return render(
        request,
        "report_run.html",
        {
            "title": definition["title"],
            "report": definition,
            "run": run,
            "html_files": [f for f in files if f.endswith(".html")],
            "images": [f for f in files if f.endswith(".png")],
            "downloads": [f for f in files if not f.endswith((".html", ".png"))],
        },
    )


@router.get("/reports/{name}/runs/{run_id}/files/{file}")
def run_file(runner: RunnerDep, session: Reader, name: str, run_id: str, file: str) -> FileResponse:
    """A file the run lists, served as the API serves it."""
    return file_response(published.run_file(runner, name, run_id, file, session.user))


@router.get("/reports/{name}/runs/{run_id}/archive")
def run_archive(runner: RunnerDep, session: Reader, name: str, run_id: str) -> Response:
    """The run's files in one zip, as the API serves them."""
    return zip_response(*published.run_archive(runner, name, run_id, session.user))
