"""Load: N concurrent analysts against a live room on localhost, an upload and a match mid-way.

    python bench/load.py                                  # 50 analysts, 2 minutes (BENCHMARKS.md)
    python bench/load.py --users 10 --seconds 15 --persons 1500 --json out.json   # the CI size

A generated group (five brands) is sealed, ingested and matched; the room gets
``--users`` analyst accounts spread over the five parties, and the service runs
as operators run it (``python -m cleanroom serve``, its own process). Each
analyst (an asyncio task with its own HTTP client) loops for ``--seconds``
over a mix of restricted SQL on its party's data (60%) and journey templates
(40%), each with an epsilon drawn from 0.01 / 0.02 / 0.05 out of a finite pool,
so a repeated question is answered from the cache (no new charge) and the
party's monthly share (1.6) eventually runs out: those refusals (429
``budget_exhausted``) are intended. Half-way, okala's admin uploads a new
version of its orders and the room admin runs a match (a new generation, so
the cache starts over), under the same load.

Reported: latency p50/p90/p99/max per kind, requests/s, answers (fresh,
cached), budget refusals, errors (anything else: must be 0), and the budget
consistency afterwards — the ledger checked against the stored results
(:func:`cleanroom.room.recovery.check_ledger`), and the epsilons the analysts
were told they spent (fresh answers) summed per party against the standing
charges: equal, exactly, and never over a share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx

from cleanroom.demo.scenario import BOUNDS, Group, build_group, free_port, open_room
from cleanroom.room.auth import Role
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.recovery import check_ledger

EPSILONS = ("0.01", "0.02", "0.05")
PERIOD = {"start": "2026-01-01", "end": "2026-07-01"}
BRANDS = ["filimo", "ofogh", "okala", "ozone", "tapsi"]
UPLOAD = ("okala", "orders")
SERVE = [sys.executable, "-m", "cleanroom", "serve"]


def sql_pool(group: Group, party: str) -> list[str]:
    """Restricted SQL over the party's own datasets: counts, persons, sums and averages."""
    summary = json.loads((group.data.out / "truth" / "summary.json").read_text())
    pool = []
    for (owner, dataset), spec_path in sorted(group.data.specs.items()):
        if owner != party or dataset == "campaign":
            continue
        table = f"{party}.{dataset}"
        domains = summary["domains"].get(f"{party}/{dataset}", {})
        metrics = [m for m in BOUNDS if f"  {m}:" in Path(spec_path).read_text()]
        for dim in sorted(domains):
            pool.append(f"SELECT {dim}, COUNT(*) AS n FROM {table} GROUP BY {dim}")
            pool.append(
                f"SELECT {dim}, COUNT(DISTINCT person) AS persons FROM {table} GROUP BY {dim}"
            )
            for metric in metrics:
                pool.append(f"SELECT {dim}, SUM({metric}) AS total FROM {table} GROUP BY {dim}")
                pool.append(f"SELECT {dim}, AVG({metric}) AS mean FROM {table} GROUP BY {dim}")
            for other, other_values in sorted(domains.items()):
                if other != dim:
                    value = sorted(map(str, other_values))[0]
                    pool.append(
                        f"SELECT {dim}, COUNT(*) AS n FROM {table} "
                        f"WHERE {other} = '{value}' GROUP BY {dim}"
                    )
    return pool


def template_pool(party: str) -> list[tuple[str, dict[str, str]]]:
    """Journey templates from the party's point of view (its brand first)."""
    others = [b for b in BRANDS if b != party]
    pool: list[tuple[str, dict[str, str]]] = [
        ("overlap", {}),
        ("transitions", PERIOD),
        ("retention", {"start": "2026-01", "months": "6"}),
        ("segments", {"as_of": "2026-07-01"}),
    ]
    for other in others[:3]:
        pool.append(("overlap", {"parties": f"{party},{other}"}))
        pool.append(("funnel", {"steps": f"{party},{other}", **PERIOD}))
        pool.append(("time_to_cross", {"from": party, "to": other, **PERIOD}))
    return pool


class Service:
    """`cleanroom serve` in its own process."""

    def __init__(self, room_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*SERVE, "--room", str(room_dir), "--port", str(self.port)],
            env={
                **os.environ,
                "CLEANROOM_ENVIRONMENT": "development",
                "CLEANROOM_LOG_FORMAT": "json",
                "CLEANROOM_SCHEDULER": "false",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.process.kill()
        raise SystemExit("the service did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)


def prepare(root: Path, persons: int, users: int) -> tuple[Group, dict[str, str], Path]:
    """The group, its room ingested and matched, the analysts' tokens, the mid-run bundle."""
    group = build_group(root, persons=persons, seed=31)
    room = open_room(group.room_dir)
    try:
        for (party, _), bundle in sorted(group.bundles.items()):
            ingest(room, bundle, room.users.get(f"{party}-admin"))
        run_match(room, room.users.get("room-admin"))
        analysts = {}
        for i in range(users):
            party = BRANDS[i % len(BRANDS)]
            name = f"{party}-load-{i}"
            analysts[name] = room.users.add(name, Role.analyst, party)[1]
    finally:
        room.close()
    again = group.seal(*UPLOAD, root / "upload-again.bundle")  # same rows, a new bundle id
    return group, analysts, again


class Tally:
    """Every request's outcome and latency, and what the analysts were told they spent."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.outcomes: Counter[str] = Counter()
        self.errors: list[str] = []
        self.told: dict[str, Fraction] = defaultdict(Fraction)  # party -> fresh epsilon

    def record(
        self, kind: str, party: str, epsilon: str, seconds: float, response: httpx.Response
    ) -> None:
        """One answer: fresh ones cost the epsilon asked (what the ledger must show)."""
        self.latency[kind].append(seconds)
        if response.status_code == 200:
            outcome = "cached" if response.json().get("cached") else "fresh"
            if outcome == "fresh":
                self.told[party] += Fraction(epsilon)
        elif response.status_code == 429 and _code(response) == "budget_exhausted":
            outcome = "budget_refused"
        else:
            outcome = "error"
            self.errors.append(f"{kind} {response.status_code}: {response.text[:160]}")
        self.outcomes[outcome] += 1
        self.latency[f"outcome {outcome}"].append(seconds)


def _code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


async def analyst(
    url: str, token: str, party: str, pools: dict[str, Any], until: float, tally: Tally, seed: int
) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        while time.monotonic() < until:
            epsilon = rng.choice(EPSILONS)
            if rng.random() < 0.6:
                kind, body = "sql", {"sql": rng.choice(pools["sql"][party]), "epsilon": epsilon}
            else:
                name, params = rng.choice(pools["templates"][party])
                kind, body = "template", {"template": name, "params": params, "epsilon": epsilon}
            started = time.perf_counter()
            try:
                response = await client.post("/api/v1/queries", json=body)
            except httpx.HTTPError as err:
                tally.outcomes["error"] += 1
                tally.errors.append(f"{kind}: {type(err).__name__}")
                continue
            tally.record(kind, party, epsilon, time.perf_counter() - started, response)


async def mid_run(url: str, group: Group, bundle: Path, at: float, tally: Tally) -> dict[str, Any]:
    await asyncio.sleep(at)
    done: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        for kind, token, kwargs in (
            ("upload", group.tokens[f"{UPLOAD[0]}_admin"], {"content": bundle.read_bytes()}),
            ("match", group.tokens["room_admin"], {}),
        ):
            path = "/api/v1/datasets" if kind == "upload" else "/api/v1/matches"
            started = time.perf_counter()
            response = await client.post(
                path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
            seconds = time.perf_counter() - started
            tally.latency[kind].append(seconds)
            done[kind] = {"status": response.status_code, "seconds": round(seconds, 2)}
            if response.status_code != 201:
                tally.outcomes["error"] += 1
                tally.errors.append(f"{kind} {response.status_code}: {response.text[:160]}")
    return done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.out or tempfile.mkdtemp(prefix="cleanroom-load-"))
    t0 = time.perf_counter()
    group, analysts, bundle = prepare(root, args.persons, args.users)
    setup_s = time.perf_counter() - t0
    pools = {
        "sql": {p: sql_pool(group, p) for p in BRANDS},
        "templates": {p: template_pool(p) for p in BRANDS},
    }
    service = Service(group.room_dir)
    tally = Tally()

    async def main() -> dict[str, Any]:
        until = time.monotonic() + args.seconds
        tasks = [
            analyst(service.url, token, name.split("-")[0], pools, until, tally, seed=i)
            for i, (name, token) in enumerate(sorted(analysts.items()))
        ]
        results = await asyncio.gather(
            mid_run(service.url, group, bundle, args.seconds / 2, tally), *tasks
        )
        return dict(results[0])

    started = time.perf_counter()
    try:
        mid = asyncio.run(main())
    finally:
        wall = time.perf_counter() - started
        service.stop()
    room = open_room(group.room_dir, warehouse=False)
    try:
        ledger = check_ledger(room)
    finally:
        room.close()
    standing = {p: Fraction(e) for p, e in ledger.spent.items()}
    told = {p: e for p, e in tally.told.items() if e}
    shares = 1.6
    queries = tally.latency["sql"] + tally.latency["template"]
    result = {
        "users": args.users,
        "seconds": args.seconds,
        "persons": args.persons,
        "setup_s": round(setup_s, 1),
        "wall_s": round(wall, 1),
        "requests": len(queries),
        "requests_per_s": round(len(queries) / wall, 1),
        "outcomes": dict(tally.outcomes),
        "errors": tally.outcomes["error"],
        "error_samples": tally.errors[:10],
        "latency_ms": {
            kind: {
                "n": len(values),
                "p50": round(percentile(values, 0.5) * 1000, 1),
                "p90": round(percentile(values, 0.9) * 1000, 1),
                "p99": round(percentile(values, 0.99) * 1000, 1),
                "max": round(max(values) * 1000, 1),
            }
            for kind, values in [("all queries", queries), *sorted(tally.latency.items())]
            if values
        },
        "mid_run": mid,
        "ledger": ledger.as_dict(),
        "told_equals_charged": told == standing,
        "told": {p: str(e) for p, e in sorted(told.items())},
        "max_share_used": max((float(e) / shares for e in standing.values()), default=0.0),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--out", help="directory for the group and its room (default: a temp dir)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    ok = result["errors"] == 0 and result["ledger"]["ok"] and result["told_equals_charged"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
