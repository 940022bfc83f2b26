"""Every journey template over five brands' analysis tables at group scale: time and peak RSS.

    python bench/journeys.py --persons 2000000 --events 20000000
    python bench/journeys.py --persons 20000000 --events 200000000
    python bench/journeys.py --templates transitions --sequence   # before and after
    python bench/journeys.py --sequence --no-prepare              # the order prepared before

``--sequence`` also prepares the event order a match prepares once per
generation (``templates/sequence.py``, timed on its own) and runs each
template twice in the same run: on the analysis tables alone (the per-query
path) and with the prepared tables.

The templates read only the analysis tables a match publishes (person, time,
a few columns), so this benchmark writes those straight into an encrypted
warehouse (the room's own ``Warehouse``, same settings) instead of sealing,
ingesting and matching 200M rows first (that path is measured by
bench/ingest_match.py). Events: each brand has 60% of the persons, events per
person skewed (a few heavy users), times spread over 2026-01-01..2026-07-01;
ozone's campaign assigns 5% of persons to treatment or control. Each
template then runs once, in a fresh child process (so its peak RSS is its
own), through the same ``Prepared.execute`` path the engine uses, at the
example policy's privacy settings.
"""

from __future__ import annotations

import argparse
import json
import sys

from common import OUT, ROOT, python, run_child, save, table

BRANDS = {  # brand -> (table, time column, metric column or None)
    "ofogh": ("purchases", "purchased_at", "amount"),
    "okala": ("orders", "ordered_at", "amount"),
    "filimo": ("views", "viewed_at", "minutes"),
    "tapsi": ("rides", "ride_at", "fare"),
    "ozone": ("payments", "paid_at", "amount"),
}
PERIOD = {"start": "2026-01-01", "end": "2026-07-01"}
TEMPLATES = {
    "overlap": {},
    "transitions": PERIOD,
    "funnel": {"steps": "okala,ofogh,ozone", **PERIOD},
    "time_to_cross": {"from": "okala", "to": "ofogh", **PERIOD},
    "retention": {"start": "2026-01", "months": "6"},
    "segments": {"as_of": "2026-07-01"},
    "lift": {"outcome": "ofogh.purchases", "metric": "amount", **PERIOD},
}

SETUP = """
import sys, time
sys.path.insert(0, %(root)r)
from pathlib import Path
from cleanroom.room.warehouse import Warehouse
base, persons, events = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="16GB")
cur = wh.cursor()
brands = %(brands)r
per_brand = events // len(brands)
for i, (brand, (name, time_col, metric)) in enumerate(brands.items()):
    t = time.perf_counter()
    # person: a 60%% subset per brand (offset by brand), skewed towards heavy users.
    cur.execute(f'''
        CREATE TABLE wh."g1__{brand}__{name}" AS
        SELECT ((floor({persons} * 0.6 * pow(random(), 1.6))::BIGINT + {i} * {persons} // 10)
                %% {persons}) AS person,
               TIMESTAMP '2026-01-01' + to_seconds((random() * 181 * 86400)::BIGINT)
                 AS "{time_col}",
               floor(exp(10 + 1.2 * random()))::DOUBLE AS "{metric}"
        FROM range({per_brand})''')
    print(brand, round(time.perf_counter() - t, 1), flush=True)
cur.execute(f'''
    CREATE TABLE wh."g1__ozone__campaign" AS
    SELECT person, 'ozone_ofogh_cashback_2026' AS campaign_id,
           CASE WHEN random() < 0.5 THEN 'treatment' ELSE 'control' END AS arm,
           DATE '2026-02-01' + (random() * 60)::INT AS exposed_on
    FROM (SELECT DISTINCT person FROM wh."g1__ozone__payments") USING SAMPLE 5 PERCENT''')
wh.checkpoint()
wh.close()
from cleanroom.contract.keys import generate_party_keys
(base / "policy.yaml").write_text((Path(%(root)r) / "policies" / "group-journeys.example.yaml").read_text())
for brand in brands:
    generate_party_keys(brand, base / "keys")
"""

RUN = """
import json, sys, time
sys.path.insert(0, %(root)r)
from fractions import Fraction
from pathlib import Path
from cleanroom.room.policy import load_policy
from cleanroom.room.analyses import prepare_template
from cleanroom.room.backends.duckdb import DuckDBBackend
from cleanroom.room.warehouse import Warehouse
base, name, params = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
policy, _ = load_policy(base / "policy.yaml")
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="16GB")
tables = {f"{p}.{d}": f"g1__{p}__{d}" for p, d in
          [tuple(t.split("__")[1:]) for t in wh.tables() if t.count("__") == 2]}
if sys.argv[4] == "1":
    from cleanroom.room.analyses import sequence
    tables |= {sequence.EVENTS_KEY: "g1___sequence", sequence.SOURCES_KEY: "g1___sequence_sources"}
prepared = prepare_template(name, params, policy=policy, party="reporter")
t = time.perf_counter()
released = prepared.execute(DuckDBBackend(wh).cursor(), tables, Fraction(1), policy.privacy)
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "rows": len(released.rows)}))
"""

PREPARE = """
import sys, time
sys.path.insert(0, %(root)r)
from pathlib import Path
from cleanroom.room.policy import load_policy
from cleanroom.room.analyses import sequence
from cleanroom.room.warehouse import Warehouse
base = Path(sys.argv[1])
policy, _ = load_policy(base / "policy.yaml")
wh = Warehouse(base / "warehouse.duckdb", b"k" * 32, temp_dir=base / "tmp", threads=2,
               memory_limit="16GB")
for name in ("g1___sequence", "g1___sequence_sources"):
    wh.drop(name)
tables = {f"{p}.{d}": f"g1__{p}__{d}" for p, d in
          [tuple(t.split("__")[1:]) for t in wh.tables() if t.count("__") == 2]}
sequence.prepare(wh.cursor(), policy, tables, "g1")
wh.checkpoint()
wh.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=2_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--templates", nargs="+", default=list(TEMPLATES))
    parser.add_argument("--sequence", action="store_true", help="also with the prepared order")
    parser.add_argument(
        "--no-prepare", action="store_true", help="with --sequence: keep an earlier run's order"
    )
    args = parser.parse_args()
    base = OUT / f"journeys-{args.events}"
    if not (base / "warehouse.duckdb").exists():
        base.mkdir(parents=True, exist_ok=True)
        code = SETUP % {"root": str(ROOT), "brands": BRANDS}
        setup = run_child(python(code, str(base), str(args.persons), str(args.events)))
        print(f"tables written in {setup.seconds:.0f} s, peak RSS {setup.peak_rss_mb:,.0f} MB")
    results = {}
    if args.sequence and not args.no_prepare:
        prep = run_child(python(PREPARE % {"root": str(ROOT)}, str(base)))
        results["(prepare sequence)"] = {
            "seconds": prep.seconds,
            "peak_rss_mb": prep.peak_rss_mb,
            "process_seconds": prep.seconds,
        }
        print("sequence prepared", json.dumps(results["(prepare sequence)"]), flush=True)
    for name in args.templates:
        for with_sequence in [False, True] if args.sequence else [False]:
            code = RUN % {"root": str(ROOT)}
            params = json.dumps(TEMPLATES[name])
            run = run_child(python(code, str(base), name, params, str(int(with_sequence))))
            out = json.loads(run.stdout.strip().splitlines()[-1])
            key = f"{name} (prepared)" if with_sequence else name
            results[key] = {**out, "peak_rss_mb": run.peak_rss_mb, "process_seconds": run.seconds}
            print(key, json.dumps(results[key]), flush=True)
    path = OUT / "journeys.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[f"{args.persons}x{args.events}"] = results
    save("journeys", saved)
    rows = [
        [
            f"{args.persons:,}",
            f"{args.events:,}",
            n,
            f"{r['seconds']:.1f}",
            f"{r['peak_rss_mb']:,.0f}",
        ]
        for n, r in results.items()
    ]
    print(table(["persons", "events", "template", "seconds", "peak RSS MB"], rows))


if __name__ == "__main__":
    sys.exit(main())
