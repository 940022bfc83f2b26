"""``cleanroom report run|list|get``: the room's scheduled reports, over HTTP.

Like ``cleanroom query``, these talk to a running room with a bearer token;
the reports themselves are defined in the policy and run by the service.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
from rich.table import Table

from cleanroom.cli import lang
from cleanroom.cli.console import console
from cleanroom.cli.room import _token, _url, api_call
from cleanroom.errors import T_, UserError
from cleanroom.i18n import N_

REASON = N_("reason:")


@click.group("report")
def report_group() -> None:
    """Scheduled overlap and journey reports: list them, run one now, fetch a run."""


def _show_run(run: dict[str, Any]) -> None:
    colour = {"done": "green", "refused": "yellow", "failed": "red"}.get(run["status"], "white")
    console.print(
        f"report {run['report']} run {run['run_id']}: [{colour}]{run['status']}[/] "
        f"(slot {run['slot']}, epsilon {run['epsilon_float']:g}, policy v{run['policy_version']}, "
        f"match generation {run['generation']})",
        highlight=False,
    )
    if run.get("error"):
        reason = f"{lang.gettext(REASON)} {lang.say(run['error'])}"
        console.print(f"  {reason}", highlight=False, markup=False)
    for name in run.get("files", []):
        console.print(f"  {name}", highlight=False, markup=False)


@report_group.command("list")
@_url
@_token
@click.option("--json", "as_json", is_flag=True, help="Print the raw answer as JSON.")
def report_list(url: str, token: str, as_json: bool) -> None:
    """The reports you may read, with their schedule, cost and latest run."""
    reports = api_call("GET", url, token, "/api/v1/reports")
    if as_json:
        click.echo(json.dumps(reports, indent=2))
        return
    table = Table()
    table.add_column("name", no_wrap=True)
    for header in ("title", "schedule (UTC)", "ε/run", "recipients", "last run"):
        table.add_column(header)
    for r in reports:
        last = r["last_run"]
        table.add_row(
            r["name"],
            r["title"],
            r["schedule"] or "on demand",
            f"{r['epsilon_float']:g}",
            ", ".join(r["recipients"]),
            f"{last['status']} {last['finished_at'] or last['started_at']}" if last else "never",
        )
    console.print(table)


@report_group.command("run")
@click.argument("name")
@_url
@_token
def report_run(name: str, url: str, token: str) -> None:
    """Run report NAME now (reporters and room admins); exits 1 if refused or failed."""
    run = api_call("POST", url, token, f"/api/v1/reports/{_segment(name)}/run")
    _show_run(run)
    if run["status"] != "done":
        raise UserError(
            T_(
                "report run %(run)s: %(value)s",
                run=run["status"],
                value=run.get("error") or "no reason given",
            )
        )


@report_group.command("get")
@click.argument("name")
@click.argument("run_id", required=False)
@_url
@_token
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download the run's files (page, charts, CSV, JSON) into this directory.",
)
def report_get(name: str, run_id: str | None, url: str, token: str, out: Path | None) -> None:
    """Show a run of NAME (default: the latest published one); --out downloads its files."""
    base = f"/api/v1/reports/{_segment(name)}/runs"
    if run_id is None:
        runs = api_call("GET", url, token, base)
        done = [r for r in runs if r["status"] == "done"]
        if not done:
            raise UserError(T_("report '%(name)s' has no published run yet", name=name))
        run = done[0]
    else:
        run = api_call("GET", url, token, f"{base}/{_segment(run_id)}")
    _show_run(run)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    for file in run["files"]:
        data = _download(url, token, f"{base}/{run['run_id']}/files/{_segment(file)}")
        (out / Path(file).name).write_bytes(data)
    console.print(f"{len(run['files'])} file(s) written to {out}", highlight=False)


def _segment(text: str) -> str:
    """One URL path segment: a name with a slash in it cannot reach another route."""
    if not text or "/" in text or text in (".", ".."):
        raise UserError(T_("%(text)s is not a valid name", text=repr(text)))
    return quote(text, safe="")


def _download(url: str, token: str, path: str) -> bytes:
    from cleanroom.client import Client

    with Client(url, token, language=lang.current()) as client:
        return client.send("GET", path).content
