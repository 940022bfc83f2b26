"""Attacks a malicious analyst would try, each a test that must extract nothing.

One room with five brands' generated data; attacks go through the engine
(thousands of queries) and over HTTP (what an analyst really has). What
"extracts nothing" means per attack is in each docstring; the figures each
test reaches are printed (``-s``) for SECURITY.md.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanroom.room.budget import BudgetExceeded
from cleanroom.room.query.check import QueryRejected, check_sql
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, build_world, load_and_match, open_room

BASE = "SELECT city, COUNT(*) AS n FROM okala.orders WHERE channel = 'app' GROUP BY city"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("attacks"), persons=2_000, seed=41)


@pytest.fixture(scope="module")
def room(world: World) -> Iterator[Room]:
    room = open_room(world.room_dir)
    load_and_match(room, world)
    yield room
    room.close()


def spent(room: Room, party: str) -> Fraction:
    rows = room.store.connection().execute(
        "SELECT epsilon_num, epsilon_den FROM budget_charges"
        " WHERE party = ? AND refunded_at IS NULL",
        (party,),
    )
    return sum((Fraction(r[0], r[1]) for r in rows), Fraction(0))


def variants(n: int, seed: int = 1) -> list[str]:
    """Trivial rewrites of BASE: whitespace, case, aliases, parentheses, quoting, order."""
    rng = random.Random(seed)
    out = set()
    while len(out) < n:
        kw = [
            rng.choice([w, w.lower(), w.title()]) for w in ("SELECT", "FROM", "WHERE", "GROUP BY")
        ]
        ws = rng.choice([" ", "  ", "\n", "\t", " \n "])
        alias = rng.choice(["", " o", " AS o", " AS t1"])
        prefix = alias.split()[-1] + "." if alias else ""
        city = rng.choice([f"{prefix}city", f'{prefix}"city"'])
        count = rng.choice(["COUNT(*)", "count(*)", "COUNT( * )"])
        name = rng.choice(["n", "N", "orders", "x"])
        cond = rng.choice(
            [
                f"{prefix}channel = 'app'",
                f"'app' = {prefix}channel",
                f"({prefix}channel = 'app')",
                f"{prefix}channel IN ('app')",
            ]
        )
        out.add(
            f"{kw[0]}{ws}{city},{ws}{count} AS {name}{ws}{kw[1]} okala.orders{alias}{ws}"
            f"{kw[2]} {cond}{ws}{kw[3]} {city}"
        )
    return sorted(out)


def test_averaging_the_same_query_a_thousand_times_pays_once(room: Room) -> None:
    """1,000 identical queries: one charge, one noisy answer, 999 cached copies of it."""
    engine = Engine(room)
    analyst = room.users.get("okala-analyst")
    before = spent(room, "okala")
    answers = set()
    for _ in range(1_000):
        r = engine.run(QueryRequest(sql=BASE, epsilon=Fraction(1, 10)), analyst)
        answers.add(tuple((row["city"], row["n"]["value"]) for row in r["rows"]))
    assert len(answers) == 1
    assert spent(room, "okala") - before == Fraction(1, 10)
    print("averaging: 1000 identical queries -> 1 charge, 1 distinct answer")


def test_averaging_over_rewritten_variants_pays_for_every_new_answer(room: Room) -> None:
    """1,000 trivially rewritten variants: every distinct noisy answer was paid for, so the
    noise cannot be averaged away for free (most variants share one canonical form)."""
    engine = Engine(room)
    analyst = room.users.get("okala-analyst")
    before = spent(room, "okala")
    answers, fresh, refused = set(), 0, 0
    for sql in variants(1_000):
        try:
            r = engine.run(QueryRequest(sql=sql, epsilon=Fraction(1, 10)), analyst)
        except BudgetExceeded:
            refused += 1
            continue
        answers.add(
            tuple(sorted((row["city"], row[r["columns"][1]]["value"]) for row in r["rows"]))
        )
        fresh += not r["cached"]
    paid = spent(room, "okala") - before
    assert paid == fresh * Fraction(1, 10)
    assert len(answers) <= max(fresh, 1) + 1  # +1: the answer cached by the previous test
    print(
        f"averaging: 1000 variants -> {fresh} charged, {len(answers)} distinct answers, "
        f"{refused} refused for budget"
    )


def test_differencing_two_queries_one_person_apart_pays_twice_and_hides_the_person(
    room: Room,
) -> None:
    """Two queries whose filters differ by one person's rows: both are charged, and the
    difference of the answers is dominated by noise (its bound exceeds what the person
    could contribute), so membership is not revealed beyond what epsilon allows."""
    engine = Engine(room)
    analyst = room.users.get("okala-analyst")
    before = spent(room, "okala")
    q1 = "SELECT COUNT(*) AS n FROM okala.orders WHERE amount >= 0"
    q2 = "SELECT COUNT(*) AS n FROM okala.orders WHERE amount >= 0 AND amount <> 123456"
    a = engine.run(QueryRequest(sql=q1, epsilon=Fraction(1, 10)), analyst)
    b = engine.run(QueryRequest(sql=q2, epsilon=Fraction(1, 10)), analyst)
    assert spent(room, "okala") - before == Fraction(2, 10)
    bound = a["rows"][0]["n"]["error95"] + b["rows"][0]["n"]["error95"]
    privacy = room.active_policy().policy.privacy
    assert privacy is not None
    assert bound > privacy.max_rows_per_person  # one person moves the count by at most k
    print(
        f"differencing: difference bound ±{bound:g} vs one person's at most "
        f"{privacy.max_rows_per_person} rows"
    )


def test_a_dimension_value_held_by_one_person_is_never_a_key_unless_declared(
    room: Room,
) -> None:
    """Keys come from the policy's declared domain only: released keys are the same set
    whatever the data, and one person's group is a noisy count whose bound covers 0."""
    engine = Engine(room)
    analyst = room.users.get("okala-analyst")
    domain = set(
        room.active_policy().policy.parties["okala"].datasets["orders"].columns["city"].domain or []
    )
    r = engine.run(
        QueryRequest(
            sql="SELECT city, COUNT(DISTINCT person) AS p FROM okala.orders "
            "WHERE amount = 123457 GROUP BY city",
            epsilon=Fraction(1, 10),
        ),
        analyst,
    )
    released = {row["city"] for row in r["rows"]}
    assert released <= domain
    assert len(released) + r["suppressed_groups"] == len(domain)
    for row in r["rows"]:
        assert row["p"]["error95"] >= 1


def test_reconstruction_through_narrow_filters_stops_at_the_budget(
    world: World, room: Room
) -> None:
    """Many narrow filters (one amount band each) over HTTP until the budget says no: the
    analyst gets at most share / epsilon answers and the ledger never overspends."""
    with LiveServer(room) as server:
        token = world.tokens["ofogh_analyst"]
        headers = {"Authorization": f"Bearer {token}"}
        budget = httpx.get(server.url + "/api/v1/budget", headers=headers, timeout=30).json()
        left = Fraction(str(budget["parties"][0]["left"]))
        answered = refused = 0
        for band in range(200):
            low = band * 10_000
            sql = (
                f"SELECT COUNT(*) AS n FROM ofogh.purchases "
                f"WHERE amount >= {low} AND amount < {low + 10_000}"
            )
            r = httpx.post(
                server.url + "/api/v1/queries",
                headers=headers,
                json={"sql": sql, "epsilon": 0.1},
                timeout=60,
            )
            if r.status_code == 429:
                refused += 1
                assert "budget" in r.json()["error"]["message"]
                if refused >= 3:
                    break
                continue
            assert r.status_code == 200, r.text
            answered += 1
        assert answered == math.floor(left / Fraction(1, 10))
        after = httpx.get(server.url + "/api/v1/budget", headers=headers, timeout=30).json()
        assert Fraction(str(after["parties"][0]["left"])) >= 0
        assert spent(room, "ofogh") <= Fraction(str(budget["parties"][0]["share"]))
    print(f"reconstruction: {answered} narrow queries answered, then refused (budget)")


DANGEROUS = [
    "(SELECT person FROM okala.orders LIMIT 1)",
    "read_csv('/etc/passwd')",
    "person",
    "(WITH x AS (SELECT * FROM okala.orders) SELECT count(*) FROM x)",
    "current_setting('memory_limit')",
    "getenv('HOME')",
    "'a' || (SELECT city FROM okala.orders LIMIT 1)",
    "sum(amount) OVER ()",
    "list(person)",
    "string_agg(city, ',')",
    "first(person)",
    "min(person)",
    "arbitrary(city)",
    "approx_count_distinct(person)",
    "hash(person)",
    "$$x$$",
    "E'\\x27'",
    "/* c */ 1",
    "-- c\n 1",
]
TAILS = [
    "",
    "; DROP TABLE x",
    "; ATTACH 'x.db' AS y",
    "; COPY okala.orders TO '/tmp/x'",
    "; PRAGMA database_list",
    " UNION SELECT person FROM okala.orders",
    " LIMIT 1",
    ", LATERAL (SELECT 1)",
    " FROM read_parquet('x')",
]


@pytest.fixture(scope="module")
def smuggled() -> Iterator[Counter[str]]:
    """How the generated smuggling attempts ended, printed for SECURITY.md (-s)."""
    tally: Counter[str] = Counter()
    yield tally
    rules = sorted(k.removeprefix("rule ") for k in tally if k.startswith("rule "))
    print(
        f"smuggling: {tally['refused'] + tally['aggregated']} generated queries -> "
        f"{tally['refused']} refused by a named rule ({', '.join(rules)}), "
        f"{tally['aggregated']} checked into noisy aggregates only"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inject=st.sampled_from(DANGEROUS),
    where=st.sampled_from(["select", "where", "group", "from"]),
    tail=st.sampled_from(TAILS),
    noise=st.text(max_size=20),
)
def test_smuggled_sql_is_refused_or_only_aggregated(
    room: Room, smuggled: Counter[str], inject: str, where: str, tail: str, noise: str
) -> None:
    """Generated queries with subqueries, CTEs, lateral joins, table functions, read_csv,
    COPY, ATTACH, pragmas, comments and string escapes: each is refused by a named rule,
    or (if harmless) checked into a plan that only releases noisy aggregates."""
    sql = {
        "select": f"SELECT city, {inject} AS v FROM okala.orders GROUP BY city{tail}",
        "where": f"SELECT COUNT(*) AS v FROM okala.orders WHERE city = {inject}{tail}",
        "group": f"SELECT COUNT(*) AS v FROM okala.orders GROUP BY {inject}{tail}",
        "from": f"SELECT COUNT(*) AS v FROM {inject}{tail}",
    }[where] + noise
    policy = room.active_policy().policy
    try:
        plan = check_sql(sql, policy=policy, party="okala")
    except QueryRejected as err:
        assert err.rule and "Traceback" not in str(err)
        smuggled.update(["refused", f"rule {err.rule}"])
        return
    assert plan.aggregates, sql
    assert all(a.kind in ("count", "count_persons", "sum", "avg") for a in plan.aggregates)
    smuggled["aggregated"] += 1


def test_other_parties_resources_are_out_of_reach(world: World, room: Room) -> None:
    """A party's analyst cannot read another party's query results, nor upload for it."""
    engine = Engine(room)
    theirs = engine.run(
        QueryRequest(sql="SELECT COUNT(*) AS n FROM tapsi.rides", epsilon=Fraction(1, 10)),
        room.users.get("tapsi-analyst"),
    )
    with LiveServer(room) as server:
        for token in ("okala_analyst", "okala_admin", "ofogh_analyst"):
            r = httpx.get(
                f"{server.url}/api/v1/queries/{theirs['query_id']}",
                headers={"Authorization": f"Bearer {world.tokens[token]}"},
                timeout=30,
            )
            assert r.status_code in (403, 404), (token, r.status_code)
            assert "tapsi" not in r.text or r.status_code == 403
        bundle = world.bundles[("ofogh", "purchases")]
        r = httpx.post(
            f"{server.url}/api/v1/datasets",
            headers={"Authorization": f"Bearer {world.tokens['okala_admin']}"},
            content=bundle.read_bytes(),
            timeout=60,
        )
        assert r.status_code == 403
