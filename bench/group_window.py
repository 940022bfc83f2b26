"""The distinct count's per-person group bound: the compiler's two ways vs a row window.

    PYTHONPATH=. python bench/group_window.py --rows 50000000

``SELECT city, channel, COUNT(DISTINCT person)`` under the group bound (g
groups per person, fixed per match generation by a salted hash of the
group's number), with the cut it discloses, on one table of N rows (persons
a skewed pool of N/5, 12 cities × 3 channels, a stored ``_rank``) in an
in-memory DuckDB with 2 threads, four ways: as the compiler writes it for up
to 63 groups — each person's groups as the bits of one integer, one
aggregation per person, a person over ``g`` keeping the first ``g`` of the
order of the grid it is dealt, all counted per distinct mask — and for more
groups — the (person, group) pairs, then one aggregation per person keeping
its ``g`` smallest (hash, number); a ``dense_rank`` window over every row,
then the pairs, then two more passes for the cut (the statement before
either); and the unbounded two-level distinct count (no group bound, no
cut). The pairs and the window must keep the same groups, and all three the
same cut; how far the bits' choice moves each group's count from the pairs'
is printed beside what the bound itself removes. Each runs three times,
interleaved, the best kept.
"""

from __future__ import annotations

import argparse
import time

import duckdb

from cleanroom.room.query import groups
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
    tables = GenerationTables({"p.events": "g1__p__events"}, SALT)
    as_bits = compile_plan(plan, tables, k=10, g=G, threshold=False).sql
    groups.MASK_CELLS = 0  # the way for more groups than an integer has bits
    as_pairs = compile_plan(plan, tables, k=10, g=G, threshold=False).sql
    keys = '"k__e__city", "k__e__channel"'
    src = f"""src AS (SELECT e.person AS person, e.city AS "k__e__city",
                       e.channel AS "k__e__channel" FROM wh."g1__p__events" AS e
                WHERE e.city IN ({", ".join(f"'{c}'" for c in CITIES)})
                  AND e.channel IN ({", ".join(f"'{c}'" for c in CHANNELS)}))"""
    distinct = f"SELECT DISTINCT person, {keys}"
    row_window = f"""
        WITH {src},
        numbered AS (SELECT *, (list_position({list(CITIES)}, "k__e__city") - 1) * 3
                               + list_position({list(CHANNELS)}, "k__e__channel") - 1 AS cell
                     FROM src),
        groups_kept AS (SELECT * FROM numbered QUALIFY dense_rank() OVER (PARTITION BY person
            ORDER BY hash(cell, person, CAST({SALT} AS BIGINT)), cell) <= {G}),
        pairs AS (SELECT person, {keys} FROM groups_kept GROUP BY person, {keys}),
        cut_before AS (SELECT person, count(*) AS n FROM ({distinct} FROM src) u GROUP BY person),
        cut_after AS (SELECT person, count(*) AS n FROM ({distinct} FROM groups_kept) u
                      GROUP BY person),
        cut_totals AS (SELECT coalesce(sum(coalesce(a.n, 0)), 0)::BIGINT,
                              coalesce(sum(least(b.n - coalesce(a.n, 0), 50)), 0)::BIGINT,
                              coalesce(sum(CASE WHEN b.n > coalesce(a.n, 0) THEN 1 ELSE 0 END),
                                       0)::BIGINT
                       FROM cut_before b LEFT JOIN cut_after a ON a.person = b.person),
        answer AS (SELECT {keys}, count(*)::BIGINT FROM pairs GROUP BY {keys})
        SELECT answer.*, cut_totals.* FROM cut_totals LEFT JOIN answer ON 1 = 1
    """
    unbounded = f"""
        WITH {src}, pairs AS (SELECT person, {keys} FROM src GROUP BY person, {keys})
        SELECT {keys}, count(*) FROM pairs GROUP BY {keys}
    """
    runs = {
        "the compiler: groups as bits": as_bits,
        "the compiler: (person, group) pairs": as_pairs,
        "row window (before)": row_window,
        "unbounded two-level count (floor)": unbounded,
    }
    best = dict.fromkeys(runs, float("inf"))
    answers = {}
    for _ in range(3):  # interleaved, so a burst of load hits both
        for name, sql in runs.items():
            t = time.perf_counter()
            answers[name] = sorted(con.execute(sql).fetchall())
            best[name] = min(best[name], time.perf_counter() - t)
    for name, seconds in best.items():
        print(f"{name}: {seconds:.2f} s", flush=True)
    bits, pairs, window, whole = answers.values()
    assert pairs == window, "the pairs and the row window keep different groups"
    assert {r[-3:] for r in bits} == {r[-3:] for r in pairs}, "the cut differs"
    print("cut (kept, cut, persons) the same in all three:", pairs[0][-3:])
    # The bits deal each person over the bound one of DEALS orders of the grid, the pairs
    # order each person's groups by their own hash: per group, how far apart, beside how
    # many persons the bound itself removes from the group.
    apart = [abs(a[2] - b[2]) for a, b in zip(bits, pairs, strict=True)]
    removed = [w[2] - b[2] for w, b in zip(whole, pairs, strict=True)]
    print(
        f"{len(pairs)} groups: the two choices differ by {min(apart):,}-{max(apart):,} persons "
        f"a group (mean {sum(apart) / len(apart):,.0f}); the bound removes "
        f"{min(removed):,}-{max(removed):,} (mean {sum(removed) / len(removed):,.0f})"
    )


if __name__ == "__main__":
    main()
