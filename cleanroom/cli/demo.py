"""``cleanroom demo``: the whole flow on generated group data, offline, on one machine."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click
import httpx
from rich.table import Table

from cleanroom.bundle import read_bundle
from cleanroom.cli.console import console
from cleanroom.cli.room import print_result
from cleanroom.errors import UserError
from cleanroom.keys import load_verify_key
from cleanroom.scenario import Group, LiveServer, build_group, open_room

MARKER = ".cleanroom-demo"
DEMO_SQL = (
    "SELECT city, COUNT(*) AS orders, COUNT(DISTINCT person) AS buyers, AVG(amount) AS basket "
    "FROM okala.orders GROUP BY city"
)


def _fresh(out: Path) -> None:
    """Start from nothing, but only ever delete a directory an earlier demo made."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise UserError(f"{out}: not empty and not made by `cleanroom demo`; choose --out")
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
        raise UserError(f"{method} {path}: {response.json()['error']['message']}")
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


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option(
    "--persons", type=click.IntRange(1_000, 20_000_000), default=50_000, show_default=True
)
@click.option("--seed", type=int, default=7, show_default=True)
def demo(out: Path, persons: int, seed: int) -> None:
    """Generate five parties, seal their data, and run a room that ingests and matches it."""
    start = time.perf_counter()
    _fresh(out)
    steps = iter(range(1, 100))
    group = build_group(
        out,
        persons=persons,
        seed=seed,
        step=lambda s: console.print(f"[bold]{next(steps)}.[/] {s}"),
    )
    console.print(_seal_table(group))
    room = open_room(group.room_dir)
    try:
        with LiveServer(room) as server:
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
            verified = _api(server, group.tokens["reviewer"], "GET", "/api/v1/audit/verify")
    finally:
        room.close()
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
    console.print(
        f"done in {time.perf_counter() - start:.0f}s. Room: {group.room_dir}; bundles: "
        f"{out / 'bundles'}; ground truth: {out / 'data' / 'truth'}.\n"
        "Every number above is a differentially private aggregate with its 95% error bound.",
        highlight=False,
    )
