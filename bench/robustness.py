"""The outside audit's robustness findings, re-measured against a served room.

    python bench/robustness.py                 # the figures in SECURITY.md
    python bench/robustness.py --body-mb 50    # a smaller body

The service runs as operators run it (``python -m cleanroom serve``, its own
process) on a small generated group. Measured:

- an unauthenticated JSON body of ``--body-mb`` MB, declared (Content-Length)
  and streamed (chunked): status, seconds to the answer, and the server's
  resident memory before and after (VmRSS; VmHWM is the peak);
- tiny epsilons (1e-30, 5e-324): status, and queries left ``running``;
- twelve identical queries sent at once: charges, distinct answers;
- a Gaussian release at L2 sensitivity 5e7 (the audit's unfinished one), and
  the cost of OpenDP's term-by-term accuracy at a few scales, for comparison.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import httpx
import opendp.prelude as opendp
from load import Service

from cleanroom.demo.scenario import build_group, open_room
from cleanroom.room import dp
from tests.system.world import load_and_match

SQL = "SELECT COUNT(*) AS n FROM okala.orders"


def memory_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }


def body_figures(service: Service, megabytes: int) -> dict[str, object]:
    pid = service.process.pid
    out: dict[str, object] = {"before_kb": memory_kb(pid)}
    body = b"{" + b" " * (megabytes * 1024 * 1024) + b"}"
    started = time.perf_counter()
    try:
        r = httpx.post(
            service.url + "/api/v1/queries",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=300,
        )
        out["declared"] = {"status": r.status_code, "seconds": time.perf_counter() - started}
    except httpx.HTTPError as err:  # answered and closed before the client finished sending
        out["declared"] = {"closed": type(err).__name__, "seconds": time.perf_counter() - started}

    def chunks() -> Iterator[bytes]:
        for _ in range(megabytes):
            yield b" " * (1024 * 1024)

    started = time.perf_counter()
    try:
        r = httpx.post(service.url + "/api/v1/queries", content=chunks(), timeout=300)
        out["streamed"] = {"status": r.status_code, "seconds": time.perf_counter() - started}
    except httpx.HTTPError as err:
        out["streamed"] = {"closed": type(err).__name__, "seconds": time.perf_counter() - started}
    out["after_kb"] = memory_kb(pid)
    return out


def query_figures(service: Service, token: str, meta: Path) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    tiny = {}
    for epsilon in (1e-30, 5e-324):
        r = httpx.post(
            service.url + "/api/v1/queries",
            json={"sql": SQL, "epsilon": epsilon},
            headers=headers,
            timeout=60,
        )
        tiny[str(epsilon)] = r.status_code
    body = {"sql": SQL, "epsilon": 0.0123}
    with ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(
                    service.url + "/api/v1/queries", json=body, headers=headers, timeout=300
                ),
                range(12),
            )
        )
    db = sqlite3.connect(meta)
    running = db.execute("SELECT count(*) FROM queries WHERE status = 'running'").fetchone()[0]
    charges = db.execute("SELECT count(*) FROM budget_charges").fetchone()[0]
    db.close()
    results = [a.json() for a in answers]
    return {
        "tiny_epsilon_status": tiny,
        "running_after": running,
        "identical_in_flight": {
            "statuses": sorted({a.status_code for a in answers}),
            "fresh": sum(not r["cached"] for r in results),
            "distinct_answers": len({json.dumps(r["rows"], sort_keys=True) for r in results}),
            "charges": charges,
        },
    }


def gaussian_figures() -> dict[str, object]:
    started = time.perf_counter()
    release = dp.gaussian_release(
        [1_000_000] * 10, l2_sensitivity=5e7, epsilon=Fraction(1), delta=1e-6
    )
    out: dict[str, object] = {
        "l2_5e7": {
            "seconds": time.perf_counter() - started,
            "scale": release.scale,
            "error95": release.error95,
        }
    }
    opendp_cost = {}
    for scale in (1e4, 1e5, 1e6):
        started = time.perf_counter()
        opendp.discrete_gaussian_scale_to_accuracy(scale, alpha=0.05)
        opendp_cost[f"{scale:g}"] = time.perf_counter() - started
    out["opendp_accuracy_seconds"] = opendp_cost
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--body-mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        group = build_group(Path(tmp), persons=600, seed=5)
        room = open_room(group.room_dir)
        try:
            load_and_match(room, group)
        finally:
            room.close()
        service = Service(group.room_dir)
        try:
            figures = {
                "body": body_figures(service, args.body_mb),
                "queries": query_figures(
                    service, group.tokens["okala_analyst"], group.room_dir / "meta.sqlite"
                ),
            }
        finally:
            service.stop()
    figures["gaussian"] = gaussian_figures()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
