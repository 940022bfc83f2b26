"""``cleanroom demo``: the whole flow on generated group data, offline, on one machine."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.table import Table

from cleanroom.cli.console import console
from cleanroom.cli.query import print_result
from cleanroom.cli.serving import check_port, write_tokens
from cleanroom.contract.bundle import read_bundle
from cleanroom.contract.keys import load_verify_key
from cleanroom.demo.scenario import Group, LiveServer, build_group
from cleanroom.errors import T_, UserError
from cleanroom.i18n import LANGUAGES, Language
from cleanroom.room.config import SETTINGS_FILE, load_settings
from cleanroom.room.state import Room

MARKER = ".cleanroom-demo"
HOST = "127.0.0.1"  # a demo room is served on loopback only
PERIOD = {"start": "2026-01-01", "end": "2026-07-01"}  # the generator's half year
REPORT = "group-journeys"
# The overlap report and every journey template, approved in the demo's policy; 1.8 of
# the reporters' monthly share of 2.0, charged once per run.
# The report's title is policy text (one language); the Persian demo gives it a Persian one.
TITLES: dict[Language, str] = {
    "en": "Cross-brand journeys of the group's customers",
    "fa": "سفرهای مشتریان گروه میان برندها",
}
DEMO_REPORTS = {
    REPORT: {
        "title": "Cross-brand journeys of the group's customers",
        "schedule": "0 6 1 * *",
        "recipients": ["reviewers", "okala"],
        "sections": [
            {"template": "overlap", "params": {}, "epsilon": 0.3},
            {"template": "transitions", "params": PERIOD, "epsilon": 0.25},
            {
                "template": "funnel",
                "params": {"steps": "okala,ofogh,ozone", **PERIOD},
                "epsilon": 0.2,
            },
            {
                "template": "time_to_cross",
                "params": {"from": "okala", "to": "ofogh", **PERIOD},
                "epsilon": 0.2,
            },
            {
                "template": "retention",
                "params": {"start": "2026-01", "months": "6"},
                "epsilon": 0.3,
            },
            {"template": "segments", "params": {"as_of": "2026-07-01"}, "epsilon": 0.25},
            {
                "template": "lift",
                "params": {"outcome": "ofogh.purchases", "metric": "amount", **PERIOD},
                "epsilon": 0.3,
            },
        ],
    }
}
DEMO_SQL = (
    "SELECT city, COUNT(*) AS orders, COUNT(DISTINCT person) AS buyers, AVG(amount) AS basket "
    "FROM okala.orders GROUP BY city"
)


def _fresh(out: Path) -> None:
    """Start from nothing, but only ever delete a directory an earlier demo made."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UserError(
                T_("%(out)s: not empty and not made by `cleanroom demo`; choose --out", out=out)
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by cleanroom demo; deleted by the next run\n")


def _api(server: LiveServer, token: str, method: str, path: str, **kw: Any) -> Any:
    response = httpx.request(
        method,
        server.url + path,
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
        **kw,
    )
    if response.status_code >= 400:
        raise UserError(
            T_(
                "%(method)s %(path)s: %(json)s",
                method=method,
                path=path,
                json=response.json()["error"]["message"],
            )
        )
    return response.json()


def _seal_table(group: Group) -> Table:
    table = Table("party", "dataset", "rows read", "sealed", "rejected", "MB", "signature")
    for (party, dataset), bundle in sorted(group.bundles.items()):
        s = group.sealed[(party, dataset)].summary
        info = read_bundle(bundle, expected_signer=load_verify_key(group.key(party, "pub")))
        table.add_row(
            party,
            dataset,
            f"{s.rows_read:,}",
            f"{s.rows_written:,}",
            f"{s.rows_read - s.rows_written:,}",
            f"{bundle.stat().st_size / 1e6:.1f}",
            f"ok {info.header['signer_key_id'][:8]}",
        )
    return table


def _run_report(server: LiveServer, token: str, into: Path) -> Path:
    """Run the report over the API and download every file of the run, as a recipient would."""
    run = _api(server, token, "POST", f"/api/v1/reports/{REPORT}/run")
    if run["status"] != "done":
        raise UserError(
            T_(
                "report run %(run)s: %(value)s",
                run=run["status"],
                value=run.get("error") or "no reason given",
            )
        )
    into.mkdir(parents=True, exist_ok=True)
    for name in run["files"]:
        response = httpx.get(
            f"{server.url}/api/v1/reports/{REPORT}/runs/{run['run_id']}/files/{name}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        response.raise_for_status()
        (into / name).write_bytes(response.content)
    return into


def _headline(result: dict[str, Any]) -> str:
    """The first released number of a section, with its bound."""
    for row in result.get("rows", []):
        for column in result.get("columns", []):
            cell = row.get(column)
            if isinstance(cell, dict) and cell.get("value") is not None:
                label = " ".join(
                    str(row[c])
                    for c in result["columns"]
                    if row.get(c) is not None and not isinstance(row.get(c), dict)
                )
                bound = cell.get("error95")
                return f"{label}: {cell['value']:,} ± {bound:,}"
    return "(every group under the minimum)"


def _report_table(report_dir: Path) -> Table:
    results = json.loads((report_dir / "results.json").read_text())
    table = Table("template", "epsilon", "rows", "withheld", "first number (±95%)", title=REPORT)
    for section in results["sections"]:
        r = section["result"]
        table.add_row(
            section["template"],
            str(section["epsilon"]),
            str(len(r.get("rows", []))),
            str(r.get("suppressed_groups", 0)),
            _headline(r),
        )
    return table


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option(
    "--persons", type=click.IntRange(1_000, 20_000_000), default=50_000, show_default=True
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the room serving on 127.0.0.1 afterwards (web UI and API) until Ctrl-C; "
    "a token per role goes to OUT/tokens.txt (readable by you only).",
)
@click.option(
    "--port", type=click.IntRange(1, 65_535), default=8000, show_default=True, help="With --serve."
)
@click.option(
    "--language",
    type=click.Choice(LANGUAGES),
    default="en",
    show_default=True,
    help="The room's language (setting `language`): the report and the web UI in Persian "
    "(fa: right-to-left, Solar Hijri dates, Persian digits) or English.",
)
def demo(out: Path, persons: int, seed: int, serve: bool, port: int, language: Language) -> None:
    """Generate five parties, seal their data, run a room, and publish its journeys report."""
    start = time.perf_counter()
    if serve:
        check_port(HOST, port)  # before the work, not after it
    _fresh(out)
    steps = iter(range(1, 100))
    group = build_group(
        out,
        persons=persons,
        seed=seed,
        step=lambda s: console.print(f"[bold]{next(steps)}.[/] {s}"),
        reports=demo_reports(language),
    )
    # The room's settings file, as an operator would write it: the report follows it.
    (group.room_dir / SETTINGS_FILE).write_text(f"language: {language}\n", encoding="utf-8")
    console.print(_seal_table(group))
    # Served on loopback to a browser over plain http: the development cookie setting.
    room = Room(
        load_settings(group.room_dir, environment="development", web_secure_cookies=not serve)
    )
    try:
        with LiveServer(room, port=port if serve else None) as server:
            console.print(f"[bold]{next(steps)}.[/] room service on {server.url}; parties upload")
            for (party, _dataset), bundle in sorted(group.bundles.items()):
                _api(
                    server,
                    group.tokens[f"{party}_admin"],
                    "POST",
                    "/api/v1/datasets",
                    content=bundle.read_bytes(),
                )
            console.print(f"[bold]{next(steps)}.[/] the room resolves persons across brands")
            generation = _api(server, group.tokens["room_admin"], "POST", "/api/v1/matches")
            datasets = _api(server, group.tokens["reviewer"], "GET", "/api/v1/datasets")
            console.print(
                f"[bold]{next(steps)}.[/] okala's analyst asks, under differential privacy: "
                "which other brands do our customers use? (template overlap, epsilon 0.5)"
            )
            analyst = group.tokens["okala_analyst"]
            overlap = _api(
                server,
                analyst,
                "POST",
                "/api/v1/queries",
                json={"template": "overlap", "epsilon": 0.5},
            )
            print_result(overlap)
            console.print(
                f"[bold]{next(steps)}.[/] …and orders, buyers and average basket by city (SQL)"
            )
            print_result(_api(server, analyst, "POST", "/api/v1/queries", json={"sql": DEMO_SQL}))
            budget = _api(server, analyst, "GET", "/api/v1/budget")["parties"][0]
            console.print(
                f"okala's budget this {budget['period']}: spent {budget['spent']:g} "
                f"of {budget['share']:g}, left {budget['left']:g}",
                highlight=False,
            )
            console.print(
                f"[bold]{next(steps)}.[/] the reporter runs the approved report "
                f"'{REPORT}': overlap and every journey template, one charge for the run"
            )
            report_dir = _run_report(server, group.tokens["reporter"], out / "report")
            verified = _api(server, group.tokens["reviewer"], "GET", "/api/v1/audit/verify")
            _summary(out, group, datasets, generation, verified, report_dir, start)
            if serve:
                _keep_serving(server, write_tokens(out / "tokens.txt", group.tokens, server.url))
    finally:
        room.close()


def _summary(
    out: Path,
    group: Group,
    datasets: list[dict[str, Any]],
    generation: dict[str, Any],
    verified: dict[str, Any],
    report_dir: Path,
    start: float,
) -> None:
    table = Table("dataset", "version", "rows in the room", "uploaded by", title="live datasets")
    for d in datasets:
        table.add_row(
            f"{d['party']}.{d['dataset']}", str(d["version"]), f"{d['rows']:,}", d["uploaded_by"]
        )
    console.print(table)
    console.print(
        f"match generation {generation['generation']} is live; "
        f"audit chain: {'verifies' if verified['ok'] else 'BROKEN'} "
        f"({verified['entries']} entries)",
        highlight=False,
    )
    console.print(_report_table(report_dir))
    console.print(f"report: {report_dir / 'report.html'} (charts as PNG, numbers as CSV/JSON)")
    console.print(
        f"done in {time.perf_counter() - start:.0f}s. Room: {group.room_dir}; bundles: "
        f"{out / 'bundles'}; ground truth: {out / 'data' / 'truth'}.\n"
        "Every number above is a differentially private aggregate with its 95% error bound.",
        highlight=False,
    )


def _keep_serving(server: LiveServer, tokens: Path) -> None:
    """Serve until Ctrl-C (or SIGTERM), saying where and how to sign in."""
    console.print(
        f"\nThe room is serving at {server.url}/ui/ (API docs at {server.url}/docs).\n"
        f"Sign in with a token from {tokens} (one per role, readable by you only), e.g. "
        "okala_analyst for the query console, reviewer for policies and the audit trail.\n"
        "Press Ctrl-C to stop.",
        highlight=False,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while server.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping the room")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def demo_reports(language: Language) -> dict[str, Any]:
    """The demo's report definitions, titled in the room's language."""
    return {REPORT: {**DEMO_REPORTS[REPORT], "title": TITLES[language]}}
