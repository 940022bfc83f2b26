"""What a reader sees of the reports: definitions, runs and a run's files, visibility checked.

The API (:mod:`cleanroom.room.api.routes.reports`) and the web UI's report pages
both answer from here: a report an analyst's party does not receive is "not found"
in both (no existence leak), and a run gives out only the files it lists.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from cleanroom.errors import T_, NotFoundError
from cleanroom.room.auth import User
from cleanroom.room.policy.reports import ReportPolicy
from cleanroom.room.reports.readers import may_read
from cleanroom.room.reports.runner import ReportRunner


def visible(runner: ReportRunner, name: str, user: User) -> ReportPolicy:
    """The report, if it exists and the user may read it (else 404: no existence leak)."""
    _, report = runner.definition(name)
    if not may_read(user, report):
        raise NotFoundError(T_("the active policy has no report '%(name)s'", name=name[:60]))
    return report


def describe(name: str, report: ReportPolicy, version: int) -> dict[str, Any]:
    """A report's definition as the API lists it."""
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


def list_reports(runner: ReportRunner, user: User) -> list[dict[str, Any]]:
    """The reports of the active policy ``user`` may read, each with its latest run."""
    active = runner.room.active_policy()
    out = []
    for name, report in active.policy.reports.items():
        if may_read(user, report):
            last = runner.runs.last(name)
            out.append(
                {
                    **describe(name, report, active.version),
                    "last_run": last.as_dict() if last else None,
                }
            )
    return out


def list_runs(runner: ReportRunner, name: str, user: User, limit: int) -> list[dict[str, Any]]:
    """A report's runs, newest first: done, refused (with the reason) and failed alike."""
    visible(runner, name, user)
    return [run.as_dict() for run in runner.runs.recent(name, limit=limit)]


def get_run(runner: ReportRunner, name: str, run_id: str, user: User) -> dict[str, Any]:
    """One run, with the names of its files."""
    visible(runner, name, user)
    return runner.runs.get(name, run_id).as_dict()


def run_file(runner: ReportRunner, name: str, run_id: str, file: str, user: User) -> Path:
    """One file of a published run; only the names the run lists, nothing beside them."""
    visible(runner, name, user)
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
    return path


def run_archive(runner: ReportRunner, name: str, run_id: str, user: User) -> tuple[str, bytes]:
    """Every file of a published run (page, charts, CSV, JSON) as one zip: its name, its bytes."""
    visible(runner, name, user)
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
    return f"{name}-{run.id}.zip", sink.getvalue()
