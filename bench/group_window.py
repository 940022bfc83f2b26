"""The distinct count's per-person group window: over every row (the compiler) vs over pairs.

    PYTHONPATH=. python bench/group_window.py --rows 10000000

``SELECT city, channel, COUNT(DISTINCT person)`` under the group bound (g
groups per person, fixed per match generation by a salted hash) as the
compiler writes it — a window over every row (``dense_rank``), then the
(person, group) pairs — against the alternative of forming the pairs first
and ranking them,
on one table of N rows (persons a skewed pool of N/5, 12 cities × 3
channels, a stored ``_rank``) in an in-memory DuckDB with 2 threads. Both
must give the same counts; each runs three times, the best time is kept.
"""

from __future__ import annotations

import argparse
import time

import duckdb

from cleanroom.room.query.compile import compile_plan
from cleanroom.room.query.plan import Aggregate, ColumnRef, GroupKey, QueryPlan, TableRef
from cleanroom.room.selection import GenerationTables

CITIES = tuple(f"city{i}" for i in range(12))
CHANNELS = ("app", "web", "store")
G, SALT = 5, 0x5EED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    con = duckdb.connect(config={"threads": 2})
    con.execute("ATTACH ':memory:' AS wh")
    t = time.perf_counter()
    con.execute(f"""
        CREATE TABLE wh."g1__p__events" AS
        SELECT person, city, channel,
               row_number() OVER (PARTITION BY person ORDER BY random()) AS _rank
        FROM (SELECT floor({args.rows // 5} * pow(random(), 1.6))::BIGINT AS person,
                     'city' || (floor(random() * 12))::INT AS city,
                     ['app', 'web', 'store'][1 + floor(random() * 3)::INT] AS channel
              FROM range({args.rows}))""")
    print(f"table of {args.rows:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    city, channel = ColumnRef("e", "city"), ColumnRef("e", "channel")
    plan = QueryPlan(
        tables=(TableRef("p", "events", "e"),),
        aggregates=(Aggregate("count_persons", "persons"),),
        group_by=(GroupKey(city, CITIES, "city"), GroupKey(channel, CHANNELS, "channel")),
        where=None,
    )
    compiled = compile_plan(
        plan, GenerationTables({"p.events": "g1__p__events"}, SALT), k=10, g=G, threshold=False
    )
    keys = '"k__e__city", "k__e__channel"'
    pairs_first = f"""
        WITH src AS (SELECT e.person AS person, e.city AS "k__e__city",
                            e.channel AS "k__e__channel" FROM wh."g1__p__events" AS e
                     WHERE e.city IN ({", ".join("?" for _ in CITIES)})
                       AND e.channel IN ({", ".join("?" for _ in CHANNELS)})),
        pairs AS (SELECT person, {keys} FROM src GROUP BY person, {keys}),
        groups_kept AS (SELECT * FROM pairs QUALIFY row_number() OVER
            (PARTITION BY person ORDER BY hash({keys}, person, ?), {keys}) <= {G})
        SELECT {keys}, coalesce(count(*), 0)::BIGINT FROM groups_kept GROUP BY {keys}
    """
    runs: dict[str, tuple[str, list[object]]] = {
        "rows (the compiler)": (compiled.sql, []),
        "pairs (alternative)": (pairs_first, [*CITIES, *CHANNELS, SALT]),
    }
    best = dict.fromkeys(runs, float("inf"))
    answers = {}
    for _ in range(3):  # interleaved, so a burst of load hits both
        for name, (sql, params) in runs.items():
            t = time.perf_counter()
            answers[name] = sorted(con.execute(sql, params).fetchall())
            best[name] = min(best[name], time.perf_counter() - t)
    for name, seconds in best.items():
        print(f"{name}: {seconds:.2f} s", flush=True)
    first, second = answers.values()
    assert first == second, "the two formulations disagree"
    print("same counts in both:", len(first), "groups")


if __name__ == "__main__":
    main()
