"""The same DP queries on both backends: DuckDB (embedded) and Spark (local mode), same run.

    python bench/backends.py --events 5000000 50000000

Per size, a setup child writes five brands' analysis tables (person, time, city,
amount, ``_rank``; persons = events / 10, a 60% skewed subset per brand, times
over 2026-01..06) straight into an encrypted warehouse, as bench/journeys.py
does, then exports them with the Spark backend's own ``export`` (encrypted
Parquet, PME). Each (backend, query) then runs in a fresh child process
through ``Prepared.execute`` — the engine's path after the budget charge:
bounded SQL, exact aggregates, OpenDP noise — at the example policy's bounds
(k = 10 rows, g = 5 groups). A query runs twice in its child: *cold* (first
run: Spark reads Parquet footers, JIT) and *warm* (what a long-running service
sees). Peak memory is the child's own peak RSS (wait4) and, for Spark, plus the
JVM's peak (VmHWM of the gateway process), since local mode computes in the JVM.

Queries: ``grouped`` = ``SELECT city, COUNT(*), COUNT(DISTINCT person), SUM(amount),
AVG(amount) FROM okala.orders GROUP BY city``; ``transitions`` = the template over
all five brands, 2026-01-01..2026-07-01.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import OUT, ROOT, python, run_child, save, table

BRANDS = {
    "ofogh": ("purchases", "purchased_at"),
    "okala": ("orders", "ordered_at"),
    "filimo": ("views", "viewed_at"),
    "tapsi": ("rides", "ride_at"),
    "ozone": ("payments", "paid_at"),
}
CITIES = ["Tehran", "Mashhad", "Isfahan", "Karaj", "Shiraz", "Tabriz", "Qom", "Ahvaz",
          "Kermanshah", "Rasht", "Urmia", "Kerman"]  # fmt: skip
GROUPED = (
    "SELECT city, COUNT(*), COUNT(DISTINCT person), SUM(amount), AVG(amount) "
    "FROM okala.orders GROUP BY city"
)
TRANSITIONS = {"start": "2026-01-01", "end": "2026-07-01"}
SPARK_CONF = {"spark.driver.memory": "14g", "spark.sql.shuffle.partitions": "16"}

SETUP = """
import sys, time
sys.path.insert(0, %(root)r)
from pathlib import Path
from cleanroom.room.warehouse import Warehouse
base, events = Path(sys.argv[1]), int(sys.argv[2])
persons = events // 10
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="16GB")
cur = wh.cursor()
cities = %(cities)r
for i, (brand, (name, time_col)) in enumerate(%(brands)r.items()):
    t = time.perf_counter()
    cur.execute(f'''
        CREATE TABLE wh."g1__{brand}__{name}" AS
        SELECT person, "{time_col}", city, amount,
               row_number() OVER (PARTITION BY person ORDER BY r) AS _rank
        FROM (
            SELECT ((floor({persons} * 0.6 * pow(random(), 1.6))::BIGINT + {i} * {persons} // 10)
                    %% {persons}) AS person,
                   TIMESTAMP '2026-01-01' + to_seconds((random() * 181 * 86400)::BIGINT)
                     AS "{time_col}",
                   {cities}[1 + floor(random() * {len(cities)})::INT] AS city,
                   floor(exp(10 + 1.2 * random()))::DOUBLE AS amount,
                   random() AS r
            FROM range({events // 5}))''')
    print(brand, round(time.perf_counter() - t, 1), flush=True)
wh.checkpoint()
wh.close()
"""

KEYS = """
import sys
sys.path.insert(0, %(root)r)
from pathlib import Path
from cleanroom.contract.keys import generate_party_keys
base = Path(sys.argv[1])
(base / "policy.yaml").write_text(
    (Path(%(root)r) / "policies" / "group-journeys.example.yaml").read_text())
for brand in %(brands)r:
    generate_party_keys(brand, base / "keys")
"""

EXPORT = """
import json, sys, time
sys.path.insert(0, %(root)r)
from pathlib import Path
from cleanroom.room.backends.kms import ParquetKey
from cleanroom.room.backends.spark import SparkBackend, spark_session
from cleanroom.room.warehouse import Warehouse
base = Path(sys.argv[1])
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="8GB")
session = spark_session("local[2]", base / "work", %(conf)r)
backend = SparkBackend(wh, ParquetKey.from_secret(b"k" * 32), base / "parquet", session)
t = time.perf_counter()
for name in sorted(wh.tables()):
    backend.export(name)
print(json.dumps({"export_seconds": time.perf_counter() - t}))
"""

RUN = """
import json, os, sys, time
sys.path.insert(0, %(root)r)
from fractions import Fraction
from pathlib import Path
from cleanroom.room.policy import load_policy
from cleanroom.room.query.check import check_sql
from cleanroom.room.query.prepared import SqlQuery
from cleanroom.room.analyses import prepare_template
from cleanroom.room.warehouse import Warehouse
base, backend_name, query = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
policy, _ = load_policy(base / "policy.yaml")
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="16GB")
tables = {f"{p}.{d}": f"g1__{p}__{d}" for p, d in [tuple(t.split("__")[1:]) for t in wh.tables()]}
if query == "grouped":
    prepared = SqlQuery(check_sql(%(grouped)r, policy=policy, party="okala"))
else:
    prepared = prepare_template("transitions", %(transitions)r, policy=policy, party="reporter")
started = time.perf_counter()
jvm = None
if backend_name == "spark":
    from cleanroom.room.backends.kms import ParquetKey
    from cleanroom.room.backends.spark import SparkBackend, spark_session
    session = spark_session("local[2]", base / "work", %(conf)r)
    backend = SparkBackend(wh, ParquetKey.from_secret(b"k" * 32), base / "parquet", session)
    jvm = session.sparkContext._gateway.proc.pid
    cursor = backend.cursor
else:
    from cleanroom.room.backends.duckdb import DuckDBBackend
    cursor = DuckDBBackend(wh).cursor  # a statement tree in, written as DuckDB SQL
startup = time.perf_counter() - started
times = []
for _ in range(2):
    t = time.perf_counter()
    released = prepared.execute(cursor(), tables, Fraction(1), policy.privacy)
    times.append(time.perf_counter() - t)

def hwm(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

print(json.dumps({"startup": startup, "cold": times[0], "warm": times[1],
                  "rows": len(released.rows), "jvm_peak_mb": hwm(jvm) if jvm else 0.0}))
"""


def fmt(x: float) -> str:
    return f"{x:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[5_000_000, 50_000_000])
    parser.add_argument("--queries", nargs="+", default=["grouped", "transitions"])
    parser.add_argument("--backends", nargs="+", default=["duckdb", "spark"])
    args = parser.parse_args()
    path = OUT / "backends.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    rows = []
    for events in args.events:
        base = OUT / f"backends-{events}"
        result = saved.setdefault(str(events), {})
        if not (base / "warehouse.duckdb").exists():
            base.mkdir(parents=True, exist_ok=True)
            code = SETUP % {"root": str(ROOT), "brands": BRANDS, "cities": CITIES}
            setup = run_child(python(code, str(base), str(events)))
            result["setup_seconds"] = setup.seconds
            print(f"{events:,}: tables written in {setup.seconds:.0f} s", flush=True)
        if not (base / "keys").exists():
            run_child(python(KEYS % {"root": str(ROOT), "brands": list(BRANDS)}, str(base)))
        if not (base / "parquet").exists():
            code = EXPORT % {"root": str(ROOT), "conf": SPARK_CONF}
            export = run_child(python(code, str(base)))
            out = json.loads(export.stdout.strip().splitlines()[-1])
            result["export"] = {**out, "peak_rss_mb": export.peak_rss_mb}
            print(f"{events:,}: Parquet export {out['export_seconds']:.0f} s", flush=True)
        for query in args.queries:
            for backend in args.backends:
                code = RUN % {
                    "root": str(ROOT),
                    "conf": SPARK_CONF,
                    "grouped": GROUPED,
                    "transitions": TRANSITIONS,
                }
                run = run_child(python(code, str(base), backend, query))
                out = json.loads(run.stdout.strip().splitlines()[-1])
                out["peak_rss_mb"] = run.peak_rss_mb + out["jvm_peak_mb"]
                out["process_seconds"] = run.seconds
                result[f"{backend}/{query}"] = out
                print(events, backend, query, json.dumps(out), flush=True)
                rows.append(
                    [
                        f"{events:,}",
                        query,
                        backend,
                        fmt(out["startup"]),
                        fmt(out["cold"]),
                        fmt(out["warm"]),
                        f"{out['peak_rss_mb']:,.0f}",
                    ]
                )
        save("backends", saved)
    headers = ["events", "query", "backend", "startup s", "cold s", "warm s", "peak RSS MB"]
    print(table(headers, rows))


if __name__ == "__main__":
    sys.exit(main())
