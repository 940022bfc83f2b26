"""Loading token columns into the encrypted warehouse: DuckDB's codecs tried, or not.

    python bench/token_storage.py --rows 20000000

Ingest's load alone, as ``room/ingest.py`` does it: N rows of a party's table
(a 32-byte token on every row, a second on half, a timestamp, a city and an
amount), inserted batch by batch from Arrow into a table of the room's
encrypted warehouse (``Warehouse``: the httpfs crypto, 6 GB, 2 threads),
then checkpointed. Once with the token columns declared ``BLOB`` (DuckDB
analyses each segment for FSST and dictionary compression) and once with
``UNCOMPRESSED_BLOB``, each in a fresh database, alternated, twice. Room
tokens are HMAC outputs, so the tokens here are random bytes too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom.room.warehouse import UNCOMPRESSED_BLOB, Warehouse

BATCH = 1 << 20


def batch(rng: np.random.Generator, n: int) -> pa.Table:
    def tokens() -> pa.Array:
        raw = pa.py_buffer(rng.bytes(32 * n))
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(32), n, [None, raw]).cast(pa.binary())

    i = np.arange(n)
    return pa.table(
        {
            "mobile": tokens(),
            "email": pc.if_else(pa.array(i % 2 == 0), tokens(), pa.scalar(None, pa.binary())),
            "at": pa.array((i % 15_552_000 + 1_767_225_600).astype("datetime64[s]")),
            "city": pa.array(np.array(["Tehran", "Mashhad", "Isfahan", "Karaj", "Shiraz"])[i % 5]),
            "amount": pa.array((i % 997) * 1000.0),
        }
    )


def load(batches: list[pa.Table], token_type: str) -> tuple[float, float, int]:
    """Seconds to insert, seconds to checkpoint, file bytes."""
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / "out") as tmp:
        path = Path(tmp) / "wh.db"
        wh = Warehouse(path, b"b" * 32, temp_dir=Path(tmp) / "spill", threads=2, memory_limit="6GB")
        cur = wh.cursor()
        cur.execute(
            f'CREATE TABLE wh.t (mobile {token_type}, email {token_type}, "at" TIMESTAMP, '
            "city VARCHAR, amount DOUBLE)"
        )
        started = time.perf_counter()
        for table in batches:
            cur.register("incoming", table)
            cur.execute("INSERT INTO wh.t SELECT * FROM incoming")
            cur.unregister("incoming")
        inserted = time.perf_counter()
        wh.checkpoint()
        done = time.perf_counter()
        wh.close()
        return inserted - started, done - inserted, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=4_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    sizes = [min(BATCH, args.rows - start) for start in range(0, args.rows, BATCH)]
    batches = [batch(rng, n) for n in sizes]
    (Path(__file__).parent / "out").mkdir(exist_ok=True)
    print("| token columns | insert s | checkpoint s | file MB |\n|---|---|---|---|")
    for _ in range(2):
        for label, kind in (("BLOB (codecs tried)", "BLOB"), ("uncompressed", UNCOMPRESSED_BLOB)):
            insert, checkpoint, size = load(batches, kind)
            print(f"| {label} | {insert:.1f} | {checkpoint:.1f} | {size / 1e6:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
