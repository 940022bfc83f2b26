"""End-to-end `prepare` throughput and peak RSS, beside bare keyed-hash loops over the same ids.

    python bench/prepare.py --rows 1000000 20000000 [--all-kernels]

Beside `prepare`, in the same run and over the same identifiers: the native
keyed-hash kernel alone (polars-hash, as `cleanroom.contract.keyed_hash` uses it) and the
bare `hmac.digest` loop (with `--all-kernels` also HMAC from precomputed pads
and in DuckDB SQL). CPU seconds (all threads) are shown beside wall seconds:
on a shared machine they say what a run costs whatever the load.
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
from cleanroom.contract.keys import new_symmetric_key
from cleanroom.party.prepare import prepare
from cleanroom.contract.spec import load_spec
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
import polars as pl
from cleanroom.contract.keyed_hash import digest_expr, hmac_key, hmac_sha256, to_tokens
cols = csv.read_csv(sys.argv[1], convert_options=csv.ConvertOptions(include_columns=["mobile", "email"],
                    column_types={"mobile": pa.string(), "email": pa.string()}))
ids = pa.concat_arrays([pc.drop_null(c.combine_chunks()) for c in cols.columns])
ids = ids.filter(pc.greater(pc.utf8_length(ids), 0))
key = os.urandom(32)
out = {"identifiers": len(ids)}
def timed(name, run):
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    out[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
frame = pl.DataFrame({"m": pl.from_arrow(ids)})
native = lambda f: to_tokens(f.select(digest_expr(key, pl.col("m"))).to_series().to_arrow())
timed("native kernel", lambda: native(frame))
first = ids[0].as_py().encode()
assert native(frame.head(1))[0].as_py() == hmac_sha256(key, first)
msgs = [v.encode() for v in ids.to_pylist()]
hk = hmac_key(key)
timed("hmac.digest", lambda: [hmac.digest(hk, m, "sha256") for m in msgs])
if sys.argv[2] == "all":
    k = hk.ljust(64, b"\\0"); i0 = hashlib.sha256(bytes(b ^ 0x36 for b in k)); o0 = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    def pads(m, ic=i0.copy, oc=o0.copy):
        i = ic(); i.update(m); o = oc(); o.update(i.digest()); return o.digest()
    timed("precomputed pads", lambda: [pads(m) for m in msgs])
    con = duckdb.connect(); con.execute("SET enable_progress_bar = false")
    params = {"ipad": bytes(b ^ 0x36 for b in k), "opad": bytes(b ^ 0x5C for b in k)}
    def sql():
        for s in range(0, len(ids), 1 << 20):
            m = pa.table({"m": ids.slice(s, 1 << 20)})
            con.sql("SELECT unhex(sha256($opad || unhex(sha256($ipad || encode(m))))) FROM m", params=params).fetchall()
    timed("DuckDB SQL", sql)
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
    parser.add_argument(
        "--all-kernels",
        action="store_true",
        help="also time HMAC with precomputed pads and in DuckDB SQL (slow at 20M)",
    )
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        src, spec = make_input(rows)
        out = OUT / f"prepare-{rows}.bundle"
        run = run_child(python(PREPARE, src, spec, str(out)))
        doc = json.loads(run.stdout.strip().splitlines()[-1])
        kernels = "all" if args.all_kernels else "main"
        bare = json.loads(run_child(python(BARE, src, kernels)).stdout.strip().splitlines()[-1])
        out.unlink()
        results.append(
            {
                "rows": rows,
                "seconds": run.seconds,
                "cpu_seconds": run.cpu_seconds,
                "peak_rss_mb": run.peak_rss_mb,
                **doc,
                "bare": bare,
            }
        )
        print(json.dumps(results[-1]), flush=True)
    save("prepare", results)
    print()
    kernels = [k for k in results[-1]["bare"] if k != "identifiers"]
    print(
        table(
            ["rows", "prepare wall s", "CPU s", "rows/s", "peak RSS MB", "bundle MB", "ids hashed"]
            + [f"{k} wall s (CPU s)" for k in kernels],
            [
                [
                    f"{r['rows']:,}",
                    f"{r['seconds']:.1f}",
                    f"{r['cpu_seconds']:.1f}",
                    f"{r['rows'] / r['seconds']:,.0f}",
                    f"{r['peak_rss_mb']:,.0f}",
                    f"{r['bundle_mb']:,.0f}",
                    f"{r['bare']['identifiers']:,}",
                ]
                + [f"{r['bare'][k]['wall']:.1f} ({r['bare'][k]['cpu']:.1f})" for k in kernels]
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
