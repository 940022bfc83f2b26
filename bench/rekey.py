"""Ingest's re-keying alone: the room's HMAC over every token of 1M-row batches.

    python bench/rekey.py --rows 20000000

N rows of a party payload's shape (a phone token on every row, an e-mail token
on half of them), re-keyed batch by batch with `cleanroom.room.ingest`'s own
function, in this process, one thread: wall and CPU seconds, and the HMACs per
CPU-second. Run it from two checkouts to compare them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa

from cleanroom.contract.keyed_hash import TOKEN_TYPE
from cleanroom.contract.spec import DatasetSpec
from cleanroom.room.ingest import BATCH_ROWS, _rekey

SPEC = DatasetSpec(
    dataset="events",
    identifiers={"mobile": "phone", "email": "email"},
    columns={"amount": "number"},
)


def batch(rows: int, rng: np.random.Generator) -> pa.Table:
    def tokens(present: float) -> pa.Array:
        valid = pa.array(rng.random(rows) < present)
        data = pa.py_buffer(rng.bytes(32 * rows))
        return pa.Array.from_buffers(TOKEN_TYPE, rows, [valid.buffers()[1], data])

    return pa.table({"mobile": tokens(1.0), "email": tokens(0.5), "amount": np.ones(rows)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    table = batch(BATCH_ROWS, rng)
    hmacs = len(table) * 2 - table.column("email").null_count
    batches = max(1, args.rows // BATCH_ROWS)
    secret = os.urandom(32)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        _rekey(table, SPEC, secret)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = hmacs * batches
    print(
        json.dumps(
            {
                "rows": BATCH_ROWS * batches,
                "hmacs": done,
                "wall": round(wall, 2),
                "cpu": round(cpu, 2),
                "hmacs_per_cpu_second": round(done / cpu),
            }
        )
    )


if __name__ == "__main__":
    main()
