"""The room's match on both backends: DuckDB (embedded) and Spark (local mode), same run.

    python bench/match_backends.py --rows 1000000 5000000

Per size, a setup child writes five party tables of ``rows`` rows (two 32-byte
token columns, an amount and a city; ``bench/identity.py``'s people model)
into an encrypted warehouse, as ingest stores them. Each backend then runs
``Backend.match`` in a fresh child process — what ``cleanroom match`` runs:
resolve persons and build the five analysis tables where that backend's
queries read them. DuckDB builds them in the warehouse; Spark first exports
the party tables (tokens included) as encrypted Parquet, resolves with the
same statements, has Spark write the analysis tables, and deletes the export.
Wall time and peak memory (the child's peak RSS plus, for Spark, the JVM's
VmHWM, since local mode computes in the JVM).
"""

from __future__ import annotations

import argparse
import json
import sys

from common import OUT, ROOT, python, run_child, save, table

SPARK_CONF = {"spark.driver.memory": "14g", "spark.sql.shuffle.partitions": "16"}

SETUP = """
import sys
sys.path.insert(0, %(root)r)
sys.path.insert(0, %(bench)r)
from pathlib import Path
from identity import generate_tables
from cleanroom.room.warehouse import Warehouse
base, rows = Path(sys.argv[1]), int(sys.argv[2])
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="12GB")
generate_tables(wh.cursor(), rows, schema='wh.')
wh.checkpoint()
wh.close()
"""

RUN = """
import json, shutil, sys, time
sys.path.insert(0, %(root)r)
sys.path.insert(0, %(bench)r)
from pathlib import Path
from identity import TABLES
from cleanroom.room.backends import MatchInput
from cleanroom.room.identity import TokenSource
from cleanroom.room.warehouse import Warehouse
base, name = Path(sys.argv[1]), sys.argv[2]
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="12GB")
inputs = [MatchInput(TokenSource(f"wh.{t}", [f"{a}_token", f"{b}_token"]),
                     ["amount", "city"], f"g1__{t}") for t, a, b in TABLES]
jvm = None
started = time.perf_counter()
if name == "spark":
    from cleanroom.room.backends.kms import ParquetKey
    from cleanroom.room.backends.spark import SparkBackend, spark_session
    session = spark_session("local[2]", base / "work", %(conf)r)
    jvm = session.sparkContext._gateway.proc.pid
    shutil.rmtree(base / "parquet", ignore_errors=True)
    backend = SparkBackend(wh, ParquetKey.from_secret(b"k" * 32), base / "parquet", session)
else:
    from cleanroom.room.backends.duckdb import DuckDBBackend
    backend = DuckDBBackend(wh)
startup = time.perf_counter() - started
t = time.perf_counter()
stats = backend.match(inputs)
seconds = time.perf_counter() - t
backend.retire([i.out for i in inputs])

def hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

print(json.dumps({"startup": startup, "match": seconds, "persons": stats.persons,
                  "tokens": stats.tokens, "rounds": stats.iterations,
                  "jvm_peak_mb": hwm(jvm) if jvm else 0.0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="per party")
    parser.add_argument("--backends", nargs="+", default=["duckdb", "spark"])
    args = parser.parse_args()
    path = OUT / "match_backends.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    params = {"root": str(ROOT), "bench": str(ROOT / "bench"), "conf": SPARK_CONF}
    for size in args.rows:
        base = OUT / f"match-backends-{size}"
        result = saved.setdefault(str(size), {})
        if not (base / "warehouse.duckdb").exists():
            base.mkdir(parents=True, exist_ok=True)
            setup = run_child(python(SETUP % params, str(base), str(size)))
            result["setup_seconds"] = setup.seconds
            print(f"{size:,} rows per party: tables written in {setup.seconds:.0f} s", flush=True)
        for backend in args.backends:
            run = run_child(python(RUN % params, str(base), backend))
            out = json.loads(run.stdout.strip().splitlines()[-1])
            out["peak_rss_mb"] = run.peak_rss_mb + out["jvm_peak_mb"]
            result[backend] = out
            print(size, backend, json.dumps(out), flush=True)
            rows.append(
                [
                    f"{size:,}",
                    backend,
                    f"{out['persons']:,}",
                    out["rounds"],
                    f"{out['startup']:.1f}",
                    f"{out['match']:.1f}",
                    f"{out['peak_rss_mb']:,.0f}",
                ]
            )
        save("match_backends", saved)
    headers = ["rows per party", "backend", "persons", "rounds", "startup s", "match s", "RSS MB"]
    print(table(headers, rows))


if __name__ == "__main__":
    sys.exit(main())
