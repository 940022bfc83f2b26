"""End-to-end `prepare` throughput and peak RSS, beside bare keyed-hash loops over the same ids.

    python bench/prepare.py --rows 1000000 20000000

Input: okala's orders export from the generator (messy phones in ~15 spellings,
e-mails for ~70% of rows), cut to exactly N data rows. Each measurement runs in
a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess

from common import OUT, python, run_child, save, table

PREPARE = """
import json, sys
from pathlib import Path
from cleanroom.keys import new_symmetric_key
from cleanroom.party.prepare import prepare
from cleanroom.spec import load_spec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
src, spec, out = map(Path, sys.argv[1:4])
r = prepare(input_path=src, spec=load_spec(spec), party="okala", match_key=new_symmetric_key("match-key"),
            room_key=X25519PrivateKey.generate().public_key(), signing_key=Ed25519PrivateKey.generate(), out=out)
print(json.dumps({"rows": r.summary.rows_read, "written": r.summary.rows_written,
                  "timings": r.timings, "bundle_mb": out.stat().st_size / 1e6}))
"""

BARE = """
import hashlib, hmac, json, os, sys, time
import duckdb, pyarrow.csv as csv, pyarrow as pa, pyarrow.compute as pc
cols = csv.read_csv(sys.argv[1], convert_options=csv.ConvertOptions(include_columns=["mobile", "email"],
                    column_types={"mobile": pa.string(), "email": pa.string()}))
ids = pa.concat_arrays([pc.drop_null(c.combine_chunks()) for c in cols.columns])
ids = ids.filter(pc.greater(pc.utf8_length(ids), 0))
msgs = [v.encode() for v in ids.to_pylist()]
key = os.urandom(32)
out = {"identifiers": len(msgs)}
t = time.perf_counter(); [hmac.digest(key, m, "sha256") for m in msgs]; out["hmac.digest"] = time.perf_counter() - t
k = key.ljust(64, b"\\0"); i0 = hashlib.sha256(bytes(b ^ 0x36 for b in k)); o0 = hashlib.sha256(bytes(b ^ 0x5C for b in k))
def pads(m, ic=i0.copy, oc=o0.copy):
    i = ic(); i.update(m); o = oc(); o.update(i.digest()); return o.digest()
t = time.perf_counter(); [pads(m) for m in msgs]; out["precomputed pads"] = time.perf_counter() - t
con = duckdb.connect(); con.execute("SET enable_progress_bar = false")
params = {"ipad": bytes(b ^ 0x36 for b in k), "opad": bytes(b ^ 0x5C for b in k)}
t = time.perf_counter()
for s in range(0, len(ids), 1 << 20):
    m = pa.table({"m": ids.slice(s, 1 << 20)})
    con.sql("SELECT unhex(sha256($opad || unhex(sha256($ipad || encode(m))))) FROM m", params=params).fetchall()
out["DuckDB SQL (2 threads)"] = time.perf_counter() - t
from cleanroom.keyed_hash import KeyedHash
t = time.perf_counter()
with KeyedHash(key) as h:
    for s in range(0, len(ids), 1 << 20):
        h(ids.slice(s, 1 << 20))
out["cleanroom KeyedHash (2 procs)"] = time.perf_counter() - t
print(json.dumps(out))
"""

ROWS_PER_PERSON = 2.2  # okala orders per generated person, measured on the generator


def make_input(rows: int) -> tuple[str, str]:
    csv_path = OUT / f"prepare-{rows}.csv"
    spec_path = OUT / "okala-orders.spec.yaml"
    if not csv_path.exists():
        persons = min(20_000_000, max(1_000, math.ceil(rows / ROWS_PER_PERSON * 1.1)))
        src = OUT / f"synth-{persons}"
        run_child(
            python(
                "import sys; from pathlib import Path; from cleanroom.synth import generate; "
                "generate(Path(sys.argv[1]), persons=int(sys.argv[2]), parties=['okala'])",
                str(src),
                str(persons),
            )
        )
        full = src / "okala" / "orders.csv"
        with csv_path.open("wb") as fh:
            subprocess.run(["head", "-n", str(rows + 1), str(full)], stdout=fh, check=True)
        lines = int(
            subprocess.run(
                ["wc", "-l", str(csv_path)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        if lines < rows + 1:
            raise SystemExit(
                f"generator gave {lines - 1} rows, fewer than {rows}; raise ROWS_PER_PERSON"
            )
        spec_path.write_bytes((src / "okala" / "orders.spec.yaml").read_bytes())
        subprocess.run(["rm", "-rf", str(src)], check=True)
    return str(csv_path), str(spec_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 20_000_000])
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        src, spec = make_input(rows)
        out = OUT / f"prepare-{rows}.bundle"
        run = run_child(python(PREPARE, src, spec, str(out)))
        doc = json.loads(run.stdout.strip().splitlines()[-1])
        bare = json.loads(run_child(python(BARE, src)).stdout.strip().splitlines()[-1])
        out.unlink()
        results.append(
            {
                "rows": rows,
                "seconds": run.seconds,
                "peak_rss_mb": run.peak_rss_mb,
                **doc,
                "bare": bare,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    save("prepare", results)
    print()
    print(
        table(
            [
                "rows",
                "prepare wall s",
                "rows/s",
                "peak RSS MB",
                "bundle MB",
                "ids hashed",
                "hmac.digest s",
                "pads, 1 core s",
                "DuckDB SQL HMAC s",
                "KeyedHash, 2 procs s",
            ],
            [
                [
                    f"{r['rows']:,}",
                    f"{r['seconds']:.1f}",
                    f"{r['rows'] / r['seconds']:,.0f}",
                    f"{r['peak_rss_mb']:,.0f}",
                    f"{r['bundle_mb']:,.0f}",
                    f"{r['bare']['identifiers']:,}",
                    f"{r['bare']['hmac.digest']:.1f}",
                    f"{r['bare']['precomputed pads']:.1f}",
                    f"{r['bare']['DuckDB SQL (2 threads)']:.1f}",
                    f"{r['bare']['cleanroom KeyedHash (2 procs)']:.1f}",
                ]
                for r in results
            ],
        )
    )
    print()
    for r in results:
        stages = ", ".join(
            f"{k} {v:.1f}s" for k, v in sorted(r["timings"].items(), key=lambda kv: -kv[1])
        )
        print(f"{r['rows']:,} rows — stages: {stages}")


if __name__ == "__main__":
    main()
