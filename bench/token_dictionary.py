"""What the match's token dictionary costs, and what a fixed-width token key would save.

    python bench/ingest_match.py --rows 20000000              # loads bench/out/ingest-20000000/room
    python bench/token_dictionary.py bench/out/ingest-20000000/room

Builds, in a room already loaded and with the served room's DuckDB memory
limit (6 GB unless ``CLEANROOM_MEMORY_LIMIT`` says otherwise), over every
token occurrence of its live datasets, one after the other:

* the dictionary as the match builds it (``token_ids.build``: tokens grouped
  by their 32 bytes, in slices of their 64-bit key);
* the occurrences grouped by their 64-bit key alone: the least a dictionary
  can cost in this engine, as a fixed-width key stored beside every token
  would make it, but not exact here (two tokens may share a 64-bit key);
* the same with the smallest and largest of a second 64-bit hash of each
  key's tokens, a 128-bit fingerprint check (still not exact: two tokens may
  share both);
* a 128-bit key stored beside every occurrence (the token's first 16 bytes as
  a ``UHUGEINT``, written to a table first, untimed, as ingest would store
  it), grouped by itself: what the dictionary would cost if the room kept
  that key. Room tokens are HMAC-SHA256 outputs under the room's secret, so
  two of 10^8 tokens share their first 128 bits with probability ~10^-23,
  and no party can aim for it without the secret.

Prints each one's seconds and the process's CPU seconds, and the groups.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlglot import exp
from token_width import KEY128

from cleanroom.room import token_ids
from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.components import count_rows
from cleanroom.room.config import load_settings
from cleanroom.room.identity import TokenSource, _occurrences
from cleanroom.room.identity_foreign import party_bits
from cleanroom.room.ingest import live_datasets
from cleanroom.room.state import Room
from cleanroom.sql import SCHEMA, statement


def main() -> None:
    os.environ.setdefault("CLEANROOM_MEMORY_LIMIT", "6GB")
    room = Room(load_settings(Path(sys.argv[1]), environment="development"))
    policy = room.active_policy().policy
    sources = []
    for d in live_datasets(room):  # as ``matching`` names a live dataset's token columns
        contract = policy.contract(d.party, d.dataset)
        kinds = {c: t.value for c, t in contract.identifiers.items()} if contract else {}
        sources.append(TokenSource(f"{SCHEMA}.{d.table_name}", list(kinds), kinds, d.party))
    bits = party_bits(s.party for s in sources)
    occurrences = " UNION ALL ".join(q for s in sources for q in _occurrences(s, bits, {}))
    engine = DuckDBTables(room.wh.cursor())
    results = {}

    def timed(label: str, run: Callable[[], int]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        groups = run()
        results[label] = {
            "seconds": round(time.perf_counter() - wall, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "groups": groups,
        }
        print(label, json.dumps(results[label]), flush=True)

    with engine.bulk():
        table = engine.scratch_name("tokens")
        timed(
            "dictionary as the match builds it",
            lambda: (
                token_ids.build(
                    engine, table, occurrences, with_parties=True, with_tokens=False
                ).tokens
            ),
        )
        engine.drop(table)
        for label, check in (
            ("grouped by the 64-bit key alone", ""),
            (
                "grouped by the 64-bit key, a second hash's min and max",
                ", min(hash(tok[9:])) AS lo, max(hash(tok[9:])) AS hi",
            ),
        ):
            select = statement(
                f"SELECT hash(tok) AS hkey, max(kind) AS kind, bit_or(bit) AS parties{check} "
                f"FROM ({occurrences}) o GROUP BY hash(tok)"
            )
            timed(label, functools.partial(_materialized, engine, table, select))
            engine.drop(table)
        stored = engine.scratch_name("keys128")
        engine.materialize(
            stored, statement(f"SELECT {KEY128} AS k, kind, bit FROM ({occurrences}) o")
        )
        select = statement(
            f"SELECT k, max(kind) AS kind, bit_or(bit) AS parties, {engine.row_id} AS id "
            f"FROM {stored} GROUP BY k"
        )
        timed(
            "grouped by a stored 128-bit key",
            functools.partial(_materialized, engine, table, select),
        )
        engine.drop(table)
        engine.drop(stored)
    room.close()


def _materialized(engine: DuckDBTables, table: str, select: exp.Query) -> int:
    """Create ``table`` from ``select``; its rows."""
    engine.materialize(table, select)
    return count_rows(engine, table)


if __name__ == "__main__":
    main()
