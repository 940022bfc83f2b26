"""What knowing the audit chain is intact costs: a full verification vs one append's check.

    python bench/audit_chain.py --entries 10000 100000

Per size, a fresh metadata store gets that many entries (written in batches of
1,000 per transaction, each append making the room's own check), then: one full
``verify()`` (the start-up, on-request and periodic pass), and 200 appends, each
in its own transaction as the service makes them (the cheap check: head MAC,
tail, the entries since the verified tip). Entries carry a query's typical
details (ids, epsilon, a hash).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from cleanroom.room.audit import AuditLog
from cleanroom.room.store import MetaStore

KEY = hashlib.sha256(b"bench audit key").digest()
APPENDS = 200


def details(i: int) -> dict[str, object]:
    return {
        "query_id": f"{i:016x}",
        "policy_version": 3,
        "generation": 7,
        "epsilon": "1/4",
        "result_sha256": hashlib.sha256(str(i).encode()).hexdigest(),
    }


def measure(entries: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = MetaStore(Path(tmp) / "meta.sqlite")
        log = AuditLog(store, KEY)
        for start in range(0, entries, 1_000):
            with store.transaction() as db:
                for i in range(start, min(entries, start + 1_000)):
                    log.append(db, actor="bench", action="query.run", details=details(i))
        fresh = AuditLog(store, KEY)  # a new process: nothing verified yet
        began = time.perf_counter()
        verdict = fresh.check()
        full = time.perf_counter() - began
        assert verdict.ok and verdict.entries == entries
        times = []
        for i in range(APPENDS):
            began = time.perf_counter()
            fresh.record(actor="bench", action="query.run", details=details(i))
            times.append(time.perf_counter() - began)
        store.close()
    return {
        "entries": entries,
        "full_s": round(full, 3),
        "full_per_s": round(entries / full),
        "append_ms_p50": round(statistics.median(times) * 1000, 2),
        "append_ms_max": round(max(times) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[10_000, 100_000])
    for entries in parser.parse_args().entries:
        print(measure(entries), flush=True)


if __name__ == "__main__":
    main()
