"""Upload + ingest + identity resolution for five parties, and the ECDH-PSI peer.

    python bench/ingest_match.py --rows 20000000          # rows per party
    python bench/ingest_match.py --rows 1000000 --psi 100000 1000000
    python bench/ingest_match.py --rows 20000000 --uploads 2   # two parties upload at a time

The parties' payloads are generated straight into sealed bundles (tokens as a
party would send them, 30–60% overlap between parties, a second identifier on
half the rows of two parties), so the run measures the room, not the
generator. The room runs as its own `cleanroom serve` process; its peak RSS and
its CPU seconds per phase are read from /proc. The parties upload one after
another unless ``--uploads`` lets several send at once, as independent brands
would. The PSI peer (openmined-psi, in a virtual environment of its own)
intersects the same kind of sets of 32-byte identifiers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from common import OUT, run_child, save, table

from cleanroom.contract.bundle import BundleWriter
from cleanroom.contract.keyed_hash import TOKEN_VERSION
from cleanroom.contract.keys import (
    generate_party_keys,
    load_room_public_key,
    load_signing_key,
    new_symmetric_key,
)
from cleanroom.contract.spec import DatasetSpec, payload_schema
from cleanroom.demo.scenario import free_port
from cleanroom.room.auth import Role
from cleanroom.room.config import load_settings
from cleanroom.room.policy.build import policy_document, write_policy
from cleanroom.room.state import Room, init_room

PARTIES = ["ofogh", "okala", "filimo", "tapsi", "ozone"]
WITH_EMAIL = {"okala", "filimo"}


def spec_for(party: str) -> DatasetSpec:
    ids = {"mobile": "phone", **({"email": "email"} if party in WITH_EMAIL else {})}
    return DatasetSpec(
        dataset="events",
        identifiers=ids,
        columns={"at": "timestamp", "city": "category", "amount": "number"},
        time="at",
    )


def seal_party(
    party: str, index: int, rows: int, room_dir: Path, keys: Path, match_key, out: Path
) -> None:
    """A party's payload, generated in DuckDB and written straight into a sealed bundle."""
    spec = spec_for(party)
    schema = payload_schema(spec)
    universe = int(rows * 1.8)
    offset = index * rows // 3  # neighbouring parties share ~1/2–2/3 of their persons
    email = (
        "CASE WHEN i % 2 = 0 THEN unhex(sha256('email:' || person::VARCHAR)) END AS email,"
        if party in WITH_EMAIL
        else ""
    )
    query = f"""
        SELECT unhex(sha256('phone:' || person::VARCHAR)) AS mobile, {email}
               TIMESTAMP '2026-01-01' + INTERVAL (i % 15552000) SECOND AS at,
               ['Tehran','Mashhad','Isfahan','Karaj','Shiraz'][1 + (i % 5)] AS city,
               (i % 997) * 1000.0 AS amount
        FROM (SELECT i, (offset_ + (i * 2654435761) % {rows}) % {universe} AS person
              FROM (SELECT range AS i, {offset} AS offset_ FROM range({rows})))
    """
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    metadata = {
        "spec": spec.model_dump(mode="json"),
        "payload_schema": {f.name: str(f.type) for f in schema},
        "match_key_id": match_key.key_id,
        "token_version": TOKEN_VERSION,
        "tool": "bench",
    }
    with BundleWriter(
        out,
        party=party,
        dataset="events",
        metadata=metadata,
        room_key=load_room_public_key(room_dir / "keys" / "room.pub"),
        signing_key=load_signing_key(keys / party / f"{party}.key"),
    ) as bundle:
        writer = pq.ParquetWriter(pa.PythonFile(bundle, mode="w"), schema, compression="zstd")
        reader = con.execute(query).to_arrow_reader(1 << 20)
        for batch in reader:
            t = pa.Table.from_batches([batch]).cast(schema)
            writer.write_table(t)
        writer.close()
        bundle.finish({"rows": rows, "summary": {}})


def prepare_room(rows: int) -> tuple[Path, dict[str, Path], dict[str, str]]:
    base = OUT / f"ingest-{rows}"
    subprocess.run(["rm", "-rf", str(base)], check=True)
    keys = base / "keys"
    match_key = new_symmetric_key("match-key")
    for party in PARTIES:
        generate_party_keys(party, keys / party)
    doc = policy_document(
        "bench", match_key.key_id, {p: (p, keys / p / f"{p}.pub", [spec_for(p)]) for p in PARTIES}
    )
    room_dir = base / "room"
    init_room(room_dir, write_policy(base / "policy.yaml", doc))
    room = Room(load_settings(room_dir, environment="development"), warehouse=False)
    tokens = {p: room.users.add(f"{p}-admin", Role.party_admin, p)[1] for p in PARTIES}
    tokens["admin"] = room.users.add("admin", Role.room_admin)[1]
    room.close()
    bundles = {}
    for i, party in enumerate(PARTIES):
        bundles[party] = base / f"{party}.bundle"
        seal_party(party, i, rows, room_dir, keys, match_key, bundles[party])
    return room_dir, bundles, tokens


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """The user + system CPU seconds process ``pid`` has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_room(rows: int, uploads: int = 1) -> dict:
    t0 = time.perf_counter()
    room_dir, bundles, tokens = prepare_room(rows)
    prep = time.perf_counter() - t0
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cleanroom", "serve", "--room", str(room_dir), "--port", str(port)],
        env={
            **os.environ,
            "CLEANROOM_ENVIRONMENT": "development",
            "CLEANROOM_MEMORY_LIMIT": os.environ.get("BENCH_MEMORY_LIMIT", "6GB"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(url + "/api/v1/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        stages: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def upload(party: str) -> None:
            t = time.perf_counter()
            with bundles[party].open("rb") as fh:
                r = httpx.post(
                    url + "/api/v1/datasets",
                    content=iter(lambda: fh.read(1 << 20), b""),
                    headers={"Authorization": f"Bearer {tokens[party]}"},
                    timeout=None,
                )
            assert r.status_code == 201, r.text
            stages[f"upload+ingest {party}"] = time.perf_counter() - t

        t = time.perf_counter()
        before = cpu_seconds(server.pid)
        with ThreadPoolExecutor(uploads) as senders:
            list(senders.map(upload, bundles))
        uploads_s = time.perf_counter() - t
        cpu["uploads"] = cpu_seconds(server.pid) - before
        t = time.perf_counter()
        r = httpx.post(
            url + "/api/v1/matches",
            headers={"Authorization": f"Bearer {tokens['admin']}"},
            timeout=None,
        )
        assert r.status_code == 201, r.text
        stages["match (identity + analysis tables)"] = time.perf_counter() - t
        cpu["match"] = cpu_seconds(server.pid) - before - cpu["uploads"]
        rss = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    sizes = {p: b.stat().st_size / 1e6 for p, b in bundles.items()}
    return {
        "rows_per_party": rows,
        "prepare_bundles_s": prep,
        "uploads_at_once": uploads,
        "stages": stages,
        "uploads_s": uploads_s,
        "total_s": uploads_s + stages["match (identity + analysis tables)"],
        "server_cpu_s": cpu,
        "server_peak_rss_mb": rss,
        "bundle_mb": sizes,
    }


PSI = """
import json, os, sys, time
import private_set_intersection.python as psi
n = int(sys.argv[1])
a = [os.urandom(32).hex() for _ in range(n)]
b = a[: n // 2] + [os.urandom(32).hex() for _ in range(n - n // 2)]
t = time.perf_counter()
server = psi.server.CreateWithNewKey(True); client = psi.client.CreateWithNewKey(True)
setup = server.CreateSetupMessage(0.0, len(b), a, psi.DataStructure.RAW)
request = client.CreateRequest(b)
response = server.ProcessRequest(request)
size = client.GetIntersectionSize(setup, response)
print(json.dumps({"n": n, "seconds": time.perf_counter() - t, "intersection": size}))
"""


def run_psi(sizes: list[int]) -> list[dict]:
    venv = OUT / "venv-psi"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "openmined-psi"], check=True)
    results = []
    for n in sizes:
        run = run_child([str(venv / "bin" / "python"), "-c", PSI, str(n)])
        results.append(
            {**json.loads(run.stdout.strip().splitlines()[-1]), "peak_rss_mb": run.peak_rss_mb}
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per party")
    parser.add_argument("--psi", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--uploads", type=int, default=1, help="parties uploading at once")
    args = parser.parse_args()
    result = run_room(args.rows, args.uploads)
    print(json.dumps(result, indent=2), flush=True)
    psi = run_psi(args.psi) if args.psi else []
    save(f"ingest_match-{args.rows}", {"room": result, "psi": psi})
    print(
        table(
            ["stage", "seconds"],
            [[k, f"{v:.1f}"] for k, v in result["stages"].items()]
            + [
                [f"5 uploads, {args.uploads} at a time (wall)", f"{result['uploads_s']:.1f}"],
                ["total (5 uploads + match)", f"{result['total_s']:.1f}"],
            ],
        )
    )
    print("server CPU s: " + ", ".join(f"{k} {v:.1f}" for k, v in result["server_cpu_s"].items()))
    print(f"server peak RSS: {result['server_peak_rss_mb']:,.0f} MB")
    if psi:
        print(
            table(
                ["PSI set size (each side)", "seconds", "peak RSS MB"],
                [[f"{r['n']:,}", f"{r['seconds']:.1f}", f"{r['peak_rss_mb']:,.0f}"] for r in psi],
            )
        )


if __name__ == "__main__":
    main()
