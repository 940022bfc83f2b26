"""The same grouped DP queries: this engine vs SmartNoise SQL vs OpenDP's Polars API.

    python bench/dp_query.py --rows 5000000
    python bench/dp_query.py --rows 50000000 --systems cleanroom
    python bench/dp_query.py --rows 5000000 --systems cleanroom-fixed  # the peers' fixed bounds

One party table of N events (person from a skewed pool of N/5, city, channel,
amount) is generated once and written as Parquet (bench/out/dpq-N.parquet) for
the peers; this engine gets the same rows through its real path: a one-party
room, a sealed bundle, ingest, match, then `Engine.run`. Every system answers
the same three queries at epsilon 1.0 each with at most 10 rows per person;
only the query step is timed (data loading is reported separately). The error
is the mean absolute error over the groups against the exact, unbounded answer.

System ``cleanroom`` (adaptive bounds) runs with a policy that has
``privacy.adaptive_bounds``: the match chooses rows (and groups) per person
with OpenDP's private quantile at the 0.9995 quantile of persons' counts,
paying ADAPTIVE_EPSILON once per match (not per query); the peers keep their
fixed 10 rows (5 groups) per person — a fixed bound is all they offer.
``cleanroom-fixed`` is this engine with the peers' fixed bounds.

Peers run from virtual environments of their own under bench/out/ (SmartNoise
pins opendp<0.15 and pandas<3; opendp[polars] pins its polars), one child
process per system, printing JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from common import OUT, run_child, save, table

from cleanroom.contract.bundle import BundleWriter
from cleanroom.contract.keyed_hash import TOKEN_VERSION
from cleanroom.contract.keys import (
    generate_party_keys,
    load_room_public_key,
    load_signing_key,
    new_symmetric_key,
)
from cleanroom.contract.spec import DatasetSpec, payload_schema
from cleanroom.room.auth import Role
from cleanroom.room.config import load_settings
from cleanroom.room.ingest import ingest
from cleanroom.room.matching import run_match
from cleanroom.room.policy.build import policy_document, write_policy
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.state import Room, init_room

CITIES = [
    "Tehran", "Mashhad", "Isfahan", "Karaj", "Shiraz", "Tabriz",
    "Qom", "Ahvaz", "Kermanshah", "Urmia", "Rasht", "Zahedan",
]  # fmt: skip
CHANNELS = ["app", "web"]
UPPER = 5_000_000
K_ROWS, G_GROUPS, EPSILON = 10, 5, 1.0
# Adaptive bounds: the match's quantile, its epsilon (once per match) and the hard maxima.
ADAPTIVE = {
    "epsilon": 0.1,
    "charged_to": "bench",
    "quantile": 0.9995,
    "max_rows_per_person": 1000,
    "max_groups_per_person": len(CITIES) * len(CHANNELS),
}

# name -> (group keys, aggregate kind); the SQL is written per system below.
QUERIES = {
    "count": (["city"], "count"),
    "sum": (["city"], "sum"),
    "distinct": (["city", "channel"], "persons"),
}
ENGINE_SQL = {
    "count": "SELECT city, COUNT(*) AS v FROM bench.events GROUP BY city",
    "sum": "SELECT city, SUM(amount) AS v FROM bench.events GROUP BY city",
    "distinct": "SELECT city, channel, COUNT(DISTINCT person) AS v FROM bench.events"
    " GROUP BY city, channel",
}
SNSQL_SQL = {
    "count": "SELECT city, COUNT(*) AS v FROM bench.t GROUP BY city",
    # SmartNoise refuses a noise scale over 1e7 (5e6 * 10 / 1.0 is 5e7), so it sums amounts in
    # thousands (rounded, bounds 0..5000) and the answer is scaled back: the same noise scale
    # in tomans, plus a rounding error that is negligible beside it.
    "sum": "SELECT city, SUM(amount_k) AS v FROM bench.t GROUP BY city",
    "distinct": "SELECT city, channel, COUNT(DISTINCT person) AS v FROM bench.t"
    " GROUP BY city, channel",
}
EXACT_SQL = {
    "count": "SELECT city, COUNT(*) AS v FROM t GROUP BY city",
    "sum": "SELECT city, SUM(amount) AS v FROM t GROUP BY city",
    "distinct": "SELECT city, channel, COUNT(DISTINCT person) AS v FROM t GROUP BY city, channel",
}


# --- data -----------------------------------------------------------------------------------


def generate(rows: int) -> Path:
    """N events as Parquet; persons skewed (person 0 has ~sqrt(N/5) rows), lognormal amounts."""
    path = OUT / f"dpq-{rows}.parquet"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    persons = max(1, rows // 5)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false; SELECT setseed(0.42)")
    con.execute(f"""
        COPY (
          SELECT floor({persons} * pow(u1, 2))::BIGINT AS person,
                 {CITIES}[1 + least(11, floor(12 * pow(u2, 1.5))::INT)] AS city,
                 CASE WHEN u3 < 0.7 THEN 'app' ELSE 'web' END AS channel,
                 least({UPPER}, round(exp(11 + 1.3 * sqrt(-2 * ln(1 - u4)) * cos(2 * pi() * u5))))
                   ::BIGINT AS amount
          FROM (SELECT random() AS u1, random() AS u2, random() AS u3, random() AS u4,
                       random() AS u5 FROM range({rows}))
        ) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)
    """)
    return path


def exact_answers(path: Path) -> dict[str, dict[str, float]]:
    """The exact, unbounded answer per query: group key (joined by '|') -> value."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
    out = {}
    for name, (keys, _) in QUERIES.items():
        rows = con.execute(EXACT_SQL[name]).fetchall()
        out[name] = {"|".join(str(r[i]) for i in range(len(keys))): float(r[-1]) for r in rows}
    return out


def mae(released: dict[str, float], exact: dict[str, float]) -> float:
    """Mean absolute error over the declared groups (a group not released counts as 0)."""
    keys = set(exact) | set(released)
    return sum(abs(released.get(k, 0.0) - exact.get(k, 0.0)) for k in keys) / len(keys)


# --- this engine ----------------------------------------------------------------------------


SPEC = DatasetSpec(
    dataset="events",
    identifiers={"mobile": "phone"},
    columns={"city": "category", "channel": "category", "amount": "integer"},
)


def build_room(parquet: Path, rows: int, adaptive: bool = True) -> tuple[Room, dict[str, float]]:
    """A one-party room whose live match generation holds the Parquet's rows."""
    base = OUT / f"dpq-room-{rows}"
    subprocess.run(["rm", "-rf", str(base)], check=True)
    stages: dict[str, float] = {}
    t = time.perf_counter()
    keys = base / "keys"
    match_key = new_symmetric_key("match-key")
    generate_party_keys("bench", keys / "bench")
    doc = policy_document(
        "dpq",
        match_key.key_id,
        {"bench": ("Bench", keys / "bench" / "bench.pub", [SPEC])},
        roles={
            "bench/events": {
                "city": {"domain": CITIES},
                "channel": {"domain": CHANNELS},
                "amount": {"bounds": [0, UPPER]},
            }
        },
        privacy={
            "mechanism": "laplace",
            "budget": {"epsilon": 100.0, "period": "month", "shares": {"bench": 100.0}},
            "max_epsilon_per_query": 10.0,
            "default_epsilon": 1.0,
            "max_rows_per_person": K_ROWS,
            "max_groups_per_person": G_GROUPS,
            "min_noisy_persons": 0,
            **({"adaptive_bounds": ADAPTIVE} if adaptive else {}),
        },
    )
    room_dir = base / "room"
    init_room(room_dir, write_policy(base / "policy.yaml", doc))
    room = Room(load_settings(room_dir, environment="development"))
    admin, _ = room.users.add("bench-admin", Role.party_admin, "bench")
    room.users.add("bench-analyst", Role.analyst, "bench")
    room_admin, _ = room.users.add("admin", Role.room_admin)
    stages["room setup"] = time.perf_counter() - t

    t = time.perf_counter()
    bundle = base / "bench.bundle"
    seal(parquet, room_dir, keys, match_key, bundle)
    stages["seal bundle (party side)"] = time.perf_counter() - t
    t = time.perf_counter()
    ingest(room, bundle, admin)
    stages["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    run_match(room, room_admin)
    stages["match"] = time.perf_counter() - t
    return room, stages


def seal(parquet: Path, room_dir: Path, keys: Path, match_key, out: Path) -> None:
    """The party's payload: a 32-byte token per person, then the columns, sealed."""
    schema = payload_schema(SPEC)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    metadata = {
        "spec": SPEC.model_dump(mode="json"),
        "payload_schema": {f.name: str(f.type) for f in schema},
        "match_key_id": match_key.key_id,
        "tool": "bench",
        "token_version": TOKEN_VERSION,  # stand-in tokens, but the room checks the version
    }
    with BundleWriter(
        out,
        party="bench",
        dataset="events",
        metadata=metadata,
        room_key=load_room_public_key(room_dir / "keys" / "room.pub"),
        signing_key=load_signing_key(keys / "bench" / "bench.key"),
    ) as bundle:
        writer = pq.ParquetWriter(pa.PythonFile(bundle, mode="w"), schema, compression="zstd")
        reader = con.execute(
            f"SELECT unhex(sha256('p:' || person::VARCHAR)) AS mobile, city, channel, amount"
            f" FROM read_parquet('{parquet}')"
        ).to_arrow_reader(1 << 20)
        rows = 0
        for batch in reader:
            writer.write_table(pa.Table.from_batches([batch]).cast(schema))
            rows += batch.num_rows
        writer.close()
        bundle.finish({"rows": rows, "summary": {}})


def run_cleanroom(parquet: Path, rows: int, adaptive: bool = True) -> dict:
    t = time.perf_counter()
    room, stages = build_room(parquet, rows, adaptive)
    load = time.perf_counter() - t
    analyst = room.users.get("bench-analyst")
    engine = Engine(room)
    results = {}
    try:
        for name, (keys, _) in QUERIES.items():
            t = time.perf_counter()
            answer = engine.run(
                QueryRequest(sql=ENGINE_SQL[name], epsilon=Fraction(str(EPSILON))), analyst
            )
            seconds = time.perf_counter() - t
            values = {
                "|".join(str(r[k]) for k in keys): float(r["v"]["value"]) for r in answer["rows"]
            }
            results[name] = {"seconds": seconds, "values": values, "bounds": answer["bounds"]}
    finally:
        room.close()
    return {"load_seconds": load, "load_stages": stages, "queries": results}


def run_cleanroom_fixed(parquet: Path, rows: int) -> dict:
    return run_cleanroom(parquet, rows, adaptive=False)


# --- SmartNoise SQL (pandas) ----------------------------------------------------------------

SNSQL = """
import json, sys, time
import pandas as pd, snsql
from snsql import Privacy
path, queries = sys.argv[1], json.loads(sys.argv[2])
t = time.perf_counter()
df = pd.read_parquet(path)
df["amount_k"] = (df["amount"] / 1000).round().astype("int64")
read = time.perf_counter() - t
meta = {"bench": {"bench": {"t": {
    "row_privacy": False, "max_ids": %(k)d, "censor_dims": False, "rows": len(df),
    "person": {"type": "int", "private_id": True},
    "city": {"type": "string"}, "channel": {"type": "string"},
    "amount": {"type": "int", "lower": 0, "upper": %(upper)d},
    "amount_k": {"type": "int", "lower": 0, "upper": %(upper)d // 1000},
}}}}
t = time.perf_counter()
reader = snsql.from_df(df, privacy=Privacy(epsilon=%(eps)r, delta=0.0), metadata=meta)
load = time.perf_counter() - t
out = {"read_seconds": read, "load_seconds": load, "queries": {}}
for name, (sql, nkeys) in queries.items():
    t = time.perf_counter()
    res = reader.execute(sql)
    seconds = time.perf_counter() - t
    scale = 1000 if name == "sum" else 1
    values = {"|".join(str(c) for c in r[:nkeys]): scale * float(r[-1] or 0) for r in res[1:]}
    out["queries"][name] = {"seconds": seconds, "values": values}
print(json.dumps(out))
"""


def run_smartnoise(parquet: Path, rows: int) -> dict:
    python = venv("snsql", ["smartnoise-sql", "pyarrow"])
    code = SNSQL % {"k": K_ROWS, "upper": UPPER, "eps": EPSILON}
    queries = {n: (SNSQL_SQL[n], len(keys)) for n, (keys, _) in QUERIES.items()}
    run = run_child([python, "-c", code, str(parquet), json.dumps(queries)])
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "peak_rss_mb": run.peak_rss_mb}


# --- OpenDP Polars context ------------------------------------------------------------------

OPENDP = """
import json, sys, time
import polars as pl, opendp.prelude as dp
dp.enable_features("contrib")
path, queries = sys.argv[1], json.loads(sys.argv[2])
K, G, EPS, UPPER, CITIES, CHANNELS = %(k)d, %(g)d, %(eps)r, %(upper)d, %(cities)r, %(channels)r
t = time.perf_counter()
lf = pl.scan_parquet(path)
n = lf.select(pl.len()).collect().item()
load = time.perf_counter() - t
city_keys = pl.LazyFrame({"city": CITIES})
pair_keys = city_keys.join(pl.LazyFrame({"channel": CHANNELS}), how="cross")

def context():
    return dp.Context.compositor(
        data=lf,
        privacy_unit=dp.unit_of(contributions=1, identifier=pl.col("person")),
        privacy_loss=dp.loss_of(epsilon=EPS),
        split_evenly_over=1,
        margins=[dp.polars.Margin(max_length=n)],
    )

def query(name):
    q = context().query()
    if name == "count":
        return q.truncate_per_group(K).group_by("city").agg(dp.len()).with_keys(city_keys)
    if name == "sum":
        return (q.truncate_per_group(K).group_by("city")
                .agg(pl.col("amount").fill_null(0).dp.sum((0, UPPER)).alias("len"))
                .with_keys(city_keys))
    # COUNT(DISTINCT person): one row per person and group, at most G groups per person.
    # keep="first": keep="sample" builds a struct with two fields of one name in this
    # version and polars refuses it ("multiple fields with name 'city'").
    return (q.truncate_per_group(1, by=["city", "channel"])
            .truncate_num_groups(G, by=["city", "channel"], keep="first")
            .group_by("city", "channel").agg(dp.len()).with_keys(pair_keys))

out = {"load_seconds": load, "queries": {}}
for name, nkeys in queries.items():
    t = time.perf_counter()
    df = query(name).release().collect()
    seconds = time.perf_counter() - t
    rows = df.rows()
    values = {"|".join(str(c) for c in r[:nkeys]): float(r[-1] or 0) for r in rows}
    out["queries"][name] = {"seconds": seconds, "values": values}
print(json.dumps(out))
"""


def run_opendp(parquet: Path, rows: int) -> dict:
    python = venv("opendp", ["opendp[polars]", "pyarrow"])
    code = OPENDP % {
        "k": K_ROWS,
        "g": G_GROUPS,
        "eps": EPSILON,
        "upper": UPPER,
        "cities": CITIES,
        "channels": CHANNELS,
    }
    queries = {n: len(keys) for n, (keys, _) in QUERIES.items()}
    run = run_child([python, "-c", code, str(parquet), json.dumps(queries)])
    return {**json.loads(run.stdout.strip().splitlines()[-1]), "peak_rss_mb": run.peak_rss_mb}


def venv(name: str, packages: list[str]) -> str:
    """bench/out/venv-<name>, created and filled on first use; its python."""
    path = OUT / f"venv-{name}"
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", *packages], check=True)
    return str(python)


# --- main -----------------------------------------------------------------------------------

SYSTEMS = {
    "cleanroom": run_cleanroom,
    "cleanroom-fixed": run_cleanroom_fixed,
    "smartnoise-sql": run_smartnoise,
    "opendp-polars": run_opendp,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[5_000_000])
    parser.add_argument(
        "--systems",
        nargs="+",
        default=["cleanroom", "smartnoise-sql", "opendp-polars"],
        choices=list(SYSTEMS),
    )
    args = parser.parse_args()
    path = OUT / "dp_query.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for rows in args.rows:
        t = time.perf_counter()
        parquet = generate(rows)
        print(f"{rows:,} rows: data ready in {time.perf_counter() - t:.1f}s", flush=True)
        exact = exact_answers(parquet)
        per_size = results.setdefault(str(rows), {})
        for system in args.systems:
            result = SYSTEMS[system](parquet, rows)
            for name, q in result["queries"].items():
                q["mae"] = mae(q["values"], exact[name])
            per_size[system] = result
            print(
                system,
                json.dumps(
                    {
                        n: (round(q["seconds"], 2), round(q["mae"], 1))
                        for n, q in result["queries"].items()
                    }
                ),
                flush=True,
            )
            save("dp_query", results)
    print(report(results))


def report(results: dict) -> str:
    lines = []
    for rows, systems in results.items():
        base = systems.get("cleanroom", {}).get("queries", {})
        for system, result in systems.items():
            for name, q in result["queries"].items():
                ratio = q["seconds"] / base[name]["seconds"] if name in base else float("nan")
                error = q["mae"] / base[name]["mae"] if name in base else float("nan")
                lines.append(
                    [
                        system,
                        f"{int(rows):,}",
                        name,
                        f"{q['seconds']:.2f}",
                        f"{q['mae']:,.1f}",
                        f"{ratio:.1f}x",
                        f"{error:.1f}x",
                        _bounds(q.get("bounds")),
                    ]
                )
    loads = [
        [
            system,
            f"{int(rows):,}",
            f"{r.get('read_seconds', 0) + r['load_seconds']:.1f}",
            f"{r['peak_rss_mb']:,.0f}" if "peak_rss_mb" in r else "in-process",
        ]
        for rows, systems in results.items()
        for system, r in systems.items()
    ]
    return (
        table(
            [
                "system",
                "rows",
                "query",
                "seconds",
                "MAE",
                "time / cleanroom's",
                "MAE / cleanroom's",
                "bounds",
            ],
            lines,
        )
        + "\n\n"
        + table(
            ["system", "rows", "data loading s (not timed in queries)", "child peak RSS MB"], loads
        )
    )


def _bounds(bounds: dict | None) -> str:
    if not bounds:
        return f"fixed {K_ROWS} rows, {G_GROUPS} groups"
    how = (
        f"adaptive (q {bounds['quantile']}, ε {bounds['epsilon']})"
        if bounds["adaptive"]
        else "fixed"
    )
    return f"{how} {bounds['rows']} rows, {bounds['groups']} groups"


if __name__ == "__main__":
    main()
