"""Benchmark identity resolution (cleanroom.room.identity) at room scale.

Generates five party tables of N rows each directly in a file-backed DuckDB
database (32-byte tokens = sha256 of a typed person identifier), then times
``resolve`` and ``person_table`` in a fresh process so that peak RSS covers
only the measured work.

Data model: a universe of 1.5·N people; every row picks a person uniformly,
which gives ~49% overlap of people between any two tables (the 30–60% seen in
practice). Tables carry two identifier columns (phone+email, phone+card,
email+card, phone+email, email only + card); about half the rows carry both,
the rest one of them, and 10% of people use a second phone on a third of
their rows, so components are more than pairs.

    .venv/bin/python bench/identity.py --rows 1000000
    .venv/bin/python bench/identity.py --rows 5000000 --keep   # keep the db file
    .venv/bin/python bench/identity.py --rows 2000000 --room-rules   # as a match runs it
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from cleanroom.room.backends.duckdb import DuckDBTables
from cleanroom.room.identity import IdentityStats, TokenSource, person_table, resolve
from cleanroom.room.policy.identity import IdentityPolicy

TABLES: list[tuple[str, str, str]] = [
    ("okala__orders", "phone", "email"),
    ("snapp__rides", "phone", "card"),
    ("digikala__orders", "email", "card"),
    ("bank__payments", "card", "phone"),
    ("newsletter__subs", "email", "phone"),
]


def generate(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("SET preserve_insertion_order = false")
    generate_tables(con, rows)
    con.execute("CHECKPOINT")
    con.close()


def generate_tables(con: duckdb.DuckDBPyConnection, rows: int, schema: str = "") -> None:
    """The five token tables, ``rows`` each, created as ``<schema><name>``."""
    universe = int(rows * 1.5)
    for index, (name, first, second) in enumerate(TABLES):
        started = time.perf_counter()
        # person: uniform over the universe; shape: 0/1 = both ids, 2 = first only,
        # 3 = second only (so ~50% of rows have two tokens).
        con.execute(
            f"""
            CREATE TABLE {schema}{name} AS
            WITH r AS (
                SELECT i,
                       (hash(i, {index}) % {universe})::BIGINT AS person,
                       (hash(i, {index}, 'shape') % 4)::INTEGER AS shape,
                       (hash(i, {index}, 'phone2') % 3 = 0) AS alt
                FROM range({rows}) t(i)
            ),
            ids AS (
                SELECT i, shape,
                    CASE
                        WHEN '{first}' = 'phone' AND person % 10 = 0 AND alt
                            THEN 'phone2:' || person
                        ELSE '{first}:' || person
                    END AS id1,
                    CASE
                        WHEN '{second}' = 'phone' AND person % 10 = 0 AND alt
                            THEN 'phone2:' || person
                        ELSE '{second}:' || person
                    END AS id2
                FROM r
            )
            SELECT
                CASE WHEN shape <> 3 THEN unhex(sha256(id1)) END AS {first}_token,
                CASE WHEN shape <> 2 THEN unhex(sha256(id2)) END AS {second}_token,
                (hash(i, 'amount') % 5000000)::DOUBLE / 100 AS amount,
                (hash(i, 'city') % 31)::INTEGER AS city
            FROM ids
            """
        )
        print(f"generated {name}: {rows:,} rows in {time.perf_counter() - started:.1f} s")


def sources() -> list[TokenSource]:
    return [
        TokenSource(
            name,
            [f"{a}_token", f"{b}_token"],
            {f"{a}_token": a, f"{b}_token": b},
            name.split("__")[0],
        )
        for name, a, b in TABLES
    ]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(path: Path, room_rules: bool = False) -> dict[str, object]:
    con = duckdb.connect(str(path))
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    for name, _, _ in TABLES:
        con.execute(f"DROP TABLE IF EXISTS {name}__persons")
    con.execute("DROP TABLE IF EXISTS person_map")
    load_before = os.getloadavg()[0]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    # As the room's match builds it when no party has a suppression list: no tokens.
    rules = IdentityPolicy() if room_rules else None
    stats: IdentityStats = resolve(
        DuckDBTables(con),
        sources(),
        person_map="person_map",
        keep_tokens=False,
        limits=rules.max_per_person.by_type() if rules else None,
        foreign=rules.max_foreign_merges.limit() if rules else None,
    )
    resolve_seconds = time.perf_counter() - started
    resolve_cpu = cpu_seconds() - cpu_before
    rss_resolve = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    per_table: dict[str, float] = {}
    out_rows = 0
    for source in sources():
        t0 = time.perf_counter()
        out_rows += person_table(
            DuckDBTables(con),
            source,
            person_map="person_map",
            keep_columns=["amount", "city"],
            out=f"{source.table}__persons",
        )
        per_table[source.table] = round(time.perf_counter() - t0, 2)
    person_tables_seconds = time.perf_counter() - started
    person_tables_cpu = cpu_seconds() - cpu_before
    con.close()
    return {
        "threads": threads,
        "load_average_before": round(load_before, 2),
        "tokens": stats.tokens,
        "edges": stats.edges,
        "persons": stats.persons,
        "iterations": stats.iterations,
        "stages": {k: round(v, 2) for k, v in stats.seconds.items()},
        "resolve_s": round(resolve_seconds, 2),
        "resolve_cpu_s": round(resolve_cpu, 2),
        "peak_rss_after_resolve_gib": round(rss_resolve, 2),
        "person_tables_s": round(person_tables_seconds, 2),
        "person_tables_cpu_s": round(person_tables_cpu, 2),
        "person_table_s": per_table,
        "person_table_rows": out_rows,
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per table")
    parser.add_argument("--dir", type=Path, default=None, help="where the db file goes")
    parser.add_argument("--keep", action="store_true", help="keep the generated db file")
    parser.add_argument(
        "--room-rules",
        action="store_true",
        help="with the policy's default identity limits and foreign-merge bound, as a match",
    )
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.room_rules)))
        return
    directory = args.dir or Path(tempfile.gettempdir())
    path = directory / f"bench_identity_{args.rows}.duckdb"
    if not path.exists():
        generate(path, args.rows)
    try:
        # A fresh process, so that peak RSS is the resolution's, not generation's.
        result = subprocess.run(
            [sys.executable, __file__, "--measure", str(path)]
            + (["--room-rules"] if args.room_rules else []),
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"rows per table: {args.rows:,} × {len(TABLES)} tables")
        for key, value in figures.items():
            print(f"  {key}: {value}")
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
            Path(f"{path}.wal").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
