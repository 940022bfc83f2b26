"""What a token's width costs DuckDB: one GROUP BY of the same occurrences, stored five ways.

    python bench/token_width.py --rows 120000000 --distinct 56000000

The token dictionary (``room/token_ids.py``) is a GROUP BY of every token
occurrence of a match: at 5 x 20M rows, 120M occurrences of 56M tokens.
Room tokens are 32-byte HMAC outputs, stored as ``BLOB``. This builds that
many occurrences of that many random 32-byte tokens (SHA-256 of a counter,
as random as an HMAC's) in an encrypted warehouse like the room's
(``Warehouse``: the httpfs crypto, 2 threads, 6 GB), stores them as:

* the 32-byte ``BLOB`` the room stores now;
* its first 12 bytes as a ``BLOB`` (DuckDB keeps strings of up to 12 bytes
  inside the value itself, longer ones behind a pointer);
* its first 16 bytes as a ``UHUGEINT`` (a fixed-width 128-bit integer);
* a 64-bit hash of it as a ``UBIGINT`` (not a token: the floor of a grouping);

then times grouping each into its distinct values (count and id, as the
dictionary gives them), and grouping the 32-byte tokens by their first 12
bytes cut while they are read (no stored change). Prints wall seconds, the
process's CPU seconds and the groups. The stored tables are built untimed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cleanroom.room.warehouse import UNCOMPRESSED_BLOB, Warehouse

_HALF = "CAST(CAST(('0x' || hex(tok[{}:{}])) AS UBIGINT) AS UHUGEINT)"
KEY128 = f"({_HALF.format(1, 8)} << 64) | {_HALF.format(9, 16)}"  # tok's first 16 bytes
STORED = {
    "occ32": (UNCOMPRESSED_BLOB, "tok"),
    "occ12": (UNCOMPRESSED_BLOB, "tok[1:12]"),
    "occ128": ("UHUGEINT", KEY128),
    "occ64": ("UBIGINT", "hash(tok)"),
}
GROUPINGS = {
    "32-byte BLOB, as stored now": ("occ32", "tok"),
    "32-byte BLOB, its first 12 bytes cut while read": ("occ32", "tok[1:12]"),
    "12-byte BLOB, stored": ("occ12", "tok"),
    "128-bit UHUGEINT, stored": ("occ128", "tok"),
    "64-bit hash, stored (not exact)": ("occ64", "tok"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=12_000_000)
    parser.add_argument("--distinct", type=int, default=5_600_000)
    args = parser.parse_args()
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        wh = Warehouse(
            Path(tmp) / "wh.db",
            b"w" * 32,
            temp_dir=Path(tmp) / "spill",
            threads=2,
            memory_limit="6GB",
        )
        cur = wh.cursor()
        cur.execute(
            f"CREATE TABLE wh.occ (tok {UNCOMPRESSED_BLOB}); INSERT INTO wh.occ "
            f"SELECT unhex(sha256(CAST(i % {args.distinct} AS VARCHAR))) FROM range({args.rows}) r(i)"
        )
        for name, (kind, value) in STORED.items():
            cur.execute(
                f"CREATE TABLE wh.{name} (tok {kind}); INSERT INTO wh.{name} SELECT {value} FROM wh.occ"
            )
        cur.execute("DROP TABLE wh.occ")
        wh.checkpoint()
        for label, (table, key) in GROUPINGS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            cur.execute(
                f"CREATE TEMP TABLE d AS SELECT {key} AS k, count(*) AS n, "
                f"row_number() OVER () AS id FROM wh.{table} GROUP BY {key}"
            )
            result = {
                "seconds": round(time.perf_counter() - wall, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1),
                "groups": cur.execute("SELECT count(*) FROM d").fetchone()[0],
            }
            cur.execute("DROP TABLE d")
            print(label, json.dumps(result), flush=True)
        wh.close()


if __name__ == "__main__":
    main()
