"""Analysts' queries over HTTP: DP answers with error bounds, cache, dry run, budget, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from cleanroom import clock
from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, build_world, open_room, run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("queries"), persons=3_000, seed=5)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[LiveServer, Room]]:
    room = open_room(world.room_dir)
    with LiveServer(room) as server:
        for (party, _), bundle in sorted(world.bundles.items()):
            r = post(
                server,
                world.tokens[f"{party}_admin"],
                "/api/v1/datasets",
                content=bundle.read_bytes(),
            )
            assert r.status_code == 201, r.text
        assert post(server, world.tokens["room_admin"], "/api/v1/matches").status_code == 201
        yield server, room
    room.close()


def post(server: LiveServer, token: str, path: str, **kw: object) -> httpx.Response:
    return httpx.post(
        server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=120, **kw
    )  # type: ignore[arg-type]


def ask(server: LiveServer, token: str, **body: object) -> httpx.Response:
    return post(server, token, "/api/v1/queries", json=body)


def budget_left(server: LiveServer, token: str) -> float:
    r = httpx.get(
        server.url + "/api/v1/budget", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return float(r.json()["parties"][0]["left"])


SQL = (
    "SELECT city, COUNT(*) AS orders, COUNT(DISTINCT person) AS buyers, AVG(amount) "
    "FROM okala.orders GROUP BY city"
)


def test_grouped_query_releases_every_declared_key_with_error_bounds(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    server, _ = live
    token = world.tokens["okala_analyst"]
    before = budget_left(server, token)
    r = ask(server, token, sql=SQL, epsilon=0.5)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["cached"] is False and result["epsilon_float"] <= 0.5
    domain = json.loads((world.data.out / "truth" / "summary.json").read_text())["domains"][
        "okala/orders"
    ]["city"]
    released = {row["city"] for row in result["rows"]}
    assert released <= set(domain)
    assert len(released) + result["suppressed_groups"] == len(domain)
    for row in result["rows"]:
        assert row["orders"]["error95"] > 0 and row["buyers"]["error95"] > 0
        avg = row["avg_amount"]
        if avg["value"] is None:  # the noisy count of values came out <= 0: only the bounds
            assert (avg["low"], avg["high"]) == (0, 20_000_000)
        else:
            assert avg["low"] <= avg["value"] <= avg["high"]
    assert budget_left(server, token) == pytest.approx(before - 0.5)
    cut = result["cut"]  # the row bound's cut, disclosed with its bounds
    assert cut["possible"] and cut["unit"] == "rows" and cut["bound"] == cut["cap"] // 10
    assert cut["cut"]["error95"] > 0 and cut["persons"]["error95"] > 0
    assert 0 <= cut["share"]["low"] <= cut["share"]["high"] <= 1


def test_same_question_is_answered_from_the_cache_for_free(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    server, _ = live
    token = world.tokens["okala_analyst"]
    first = ask(
        server,
        token,
        sql="SELECT channel, COUNT(*) FROM okala.orders GROUP BY channel",
        epsilon=0.2,
    ).json()
    before = budget_left(server, token)
    again = ask(
        server,
        token,
        sql="select  o.channel , count(*)  from okala.orders AS o group by o.channel",
        epsilon=0.2,
    )
    assert again.status_code == 200, again.text
    cached = again.json()
    assert cached["cached"] is True and cached["rows"] == first["rows"]
    assert budget_left(server, token) == before


def test_dry_run_prices_without_spending(world: World, live: tuple[LiveServer, Room]) -> None:
    server, _ = live
    token = world.tokens["okala_analyst"]
    before = budget_left(server, token)
    r = ask(server, token, sql=SQL, epsilon=0.4, dry_run=True)
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["dry_run"] is True and preview["epsilon_float"] == pytest.approx(0.4)
    assert preview["aggregates"]["orders"]["error95"] > 0
    assert preview["cut"]["epsilon_share"] == "1/10" and preview["cut"]["cut_error95"] > 0
    assert budget_left(server, token) == before


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("SELECT person FROM okala.orders", "person_in_output"),
        ("SELECT * FROM okala.orders", "select_star"),
        ("SELECT city, amount FROM okala.orders", "row_level_output"),
        ("SELECT COUNT(*) FROM okala.orders; DROP TABLE x", "multiple_statements"),
        ("SELECT amount, COUNT(*) FROM okala.orders GROUP BY amount", "group_by_not_dimension"),
        ("SELECT COUNT(*) FROM okala.orders WHERE city = 'Atlantis'", "domain_value_undeclared"),
        ("SELECT COUNT(*) FROM read_csv('/etc/passwd')", "table_function"),
    ],
)
def test_refused_queries_name_the_rule_and_cost_nothing(
    world: World, live: tuple[LiveServer, Room], sql: str, rule: str
) -> None:
    server, room = live
    token = world.tokens["okala_analyst"]
    before = budget_left(server, token)
    r = ask(server, token, sql=sql)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "query_rejected"
    assert error["details"]["rule"] == rule
    assert budget_left(server, token) == before
    refusals = room.audit.entries(action="query.refused", limit=1000)
    assert refusals and refusals[-1].details["rule"] == rule
    cli = run_cli("query", "--url", server.url, "--token", token, "--sql", sql, cwd=world.root)
    assert cli.returncode == 1, cli.stdout
    assert f"rule {rule}" in cli.stderr and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert budget_left(server, token) == before


def test_epsilon_over_the_per_query_cap(world: World, live: tuple[LiveServer, Room]) -> None:
    server, _ = live
    r = ask(server, world.tokens["okala_analyst"], sql=SQL, epsilon=5)
    assert r.status_code == 400 and "cap" in r.json()["error"]["message"]


def test_overlap_template_matches_ground_truth_within_bounds(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    server, _ = live
    r = ask(server, world.tokens["ofogh_analyst"], template="overlap", epsilon=1.0)
    assert r.status_code == 200, r.text
    result = r.json()
    truth = json.loads((world.data.out / "truth" / "summary.json").read_text())["combinations"]
    assert result["rows"]
    for row in result["rows"]:
        combo = row["combination"]
        assert "ofogh" in combo.split("+")  # join required: only ofogh's own persons
        expected = truth.get("+".join(sorted(combo.split("+"))), 0)
        assert abs(row["persons"]["value"] - expected) <= 3 * row["persons"]["error95"] + 1
    assert result["cut"] == {"possible": False, "material": False}  # one cell a person
    # Under join_required only ofogh's persons are counted: no brand's own size, so no
    # pairwise rate, and the answer says which rule left what out.
    assert result["pairwise"] and all(
        p["rate"]["value"] is None and p["rate"]["withheld"] == "join_required"
        for p in result["pairwise"]
    )
    assert [r["rule"] for r in result["rules"]][-1] == "join_required"
    assert result["rules"][-1]["party"] == "ofogh"


def test_template_parameters_are_checked(world: World, live: tuple[LiveServer, Room]) -> None:
    server, _ = live
    token = world.tokens["okala_analyst"]
    for params in (
        {"parties": "okala,x'; DROP TABLE users; --"},
        {"bogus": "1"},
        {"parties": "ofogh,tapsi"},
    ):
        r = ask(server, token, template="overlap", params=params)
        assert r.status_code == 400, (params, r.text)


def test_only_analysts_and_reporters_ask(world: World, live: tuple[LiveServer, Room]) -> None:
    server, _ = live
    for name in ("reviewer", "room_admin", "okala_admin"):
        assert ask(server, world.tokens[name], sql=SQL).status_code == 403


def test_budget_exhaustion_under_concurrency(world: World, live: tuple[LiveServer, Room]) -> None:
    server, room = live
    token = world.tokens["tapsi_analyst"]
    left = budget_left(server, token)
    sqls = [f"SELECT COUNT(*) FROM tapsi.rides WHERE fare >= {i}" for i in range(50)]
    started = clock.now()
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda s: ask(server, token, sql=s, epsilon=0.2), sqls))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 50, {r.status_code for r in responses}
    assert len(ok) == round(left / 0.2 + 1e-9)
    assert budget_left(server, token) == pytest.approx(left - 0.2 * len(ok))
    error = refused[0].json()["error"]
    assert "budget" in error["message"]
    assert error["details"]["budget_left"] < 0.2 and error["details"]["party"] == "tapsi"
    resets = datetime.fromisoformat(error["details"]["resets_at"])
    wait = int(refused[0].headers["Retry-After"])
    assert wait == error["details"]["retry_after"]
    assert (resets - clock.now()).total_seconds() - 1 <= wait  # until the reset, asked
    assert wait <= (resets - started).total_seconds() + 1  # between these two instants
    charges = (
        room.store.connection()
        .execute(
            "SELECT count(*) FROM budget_charges WHERE party = 'tapsi' AND refunded_at IS NULL"
        )
        .fetchone()[0]
    )
    assert charges == len(ok)


def test_queries_are_audited_with_policy_version_and_result_hash(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    server, room = live
    result = ask(
        server,
        world.tokens["filimo_analyst"],
        sql="SELECT plan, COUNT(*) FROM filimo.views GROUP BY plan",
    ).json()
    entries = [
        e
        for e in room.audit.entries(action="query.run", limit=1000)
        if e.details.get("query_id") == result["query_id"]
    ]
    assert (
        entries
        and entries[0].details["policy_version"] == 1
        and len(entries[0].details["result_sha256"]) == 64
    )
    fetched = httpx.get(
        f"{server.url}/api/v1/queries/{result['query_id']}",
        headers={"Authorization": f"Bearer {world.tokens['filimo_analyst']}"},
        timeout=30,
    ).json()
    assert fetched["rows"] == result["rows"]
    other = httpx.get(
        f"{server.url}/api/v1/queries/{result['query_id']}",
        headers={"Authorization": f"Bearer {world.tokens['okala_analyst']}"},
        timeout=30,
    )
    assert other.status_code == 404


def test_error_bounds_cover_the_truth_95_percent_of_the_time(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    """1,000 overlap releases, no cache: the 95% bounds hold 93–97% of the time."""
    from fractions import Fraction

    from cleanroom.room.analyses.overlap import prepare_overlap
    from cleanroom.room.matching import live_generation

    _, room = live
    policy = room.active_policy().policy
    assert policy.privacy is not None
    privacy = policy.privacy.model_copy(update={"min_noisy_persons": -(10**9)})  # keep every cell
    query = prepare_overlap({}, policy=policy, party="okala")
    generation = live_generation(room)
    assert generation is not None
    truth = json.loads((world.data.out / "truth" / "summary.json").read_text())["combinations"]
    cursor = room.backend.cursor()
    inside = total = 0
    for _ in range(1_000):
        released = query.execute(cursor, generation.tables, Fraction(1, 2), privacy)
        for row in released.rows:
            expected = truth.get("+".join(sorted(row["combination"].split("+"))), 0)
            inside += abs(row["persons"]["value"] - expected) <= row["persons"]["error95"]
            total += 1
    assert total == 1_000 * len(query.cells)
    assert 0.93 <= inside / total <= 0.97, inside / total


def _get(server: LiveServer, token: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(
        server.url + path,
        headers={"Authorization": f"Bearer {token}"},
        params=params,  # type: ignore[arg-type]
        timeout=60,
    )


def _flat(result: dict[str, object]) -> dict[tuple[str, str], tuple[object, object]]:
    """(city, measure) -> (value, error95) from the API's rows."""
    out = {}
    for row in result["rows"]:  # type: ignore[attr-defined]
        for name in ("orders", "buyers", "avg_amount"):
            out[(row["city"], name)] = (row[name]["value"], row[name]["error95"])
    return out


def test_history_lists_only_ones_party_and_results_download_with_bounds(
    world: World, live: tuple[LiveServer, Room], tmp_path: Path
) -> None:
    import csv
    import io

    import pyarrow.parquet as pq
    from openpyxl import load_workbook

    server, _ = live
    token = world.tokens["okala_analyst"]
    result = ask(server, token, sql=SQL, epsilon=0.3).json()
    listed = _get(server, token, "/api/v1/queries").json()
    assert listed[0]["query_id"] == result["query_id"] and listed[0]["sql"] == SQL
    assert listed[0]["epsilon"] == pytest.approx(0.3)
    others = _get(server, world.tokens["filimo_analyst"], "/api/v1/queries").json()
    assert result["query_id"] not in {q["query_id"] for q in others}
    path = f"/api/v1/queries/{result['query_id']}"
    assert _get(server, token, path, format="json").json()["rows"] == result["rows"]
    expected = _flat(result)

    r = _get(server, token, path, format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert {k: v for k, v in lines[0].items() if k != "city"}.keys() >= {
        "measure", "value", "error95", "low", "high", "flags", "epsilon", "policy_version"
    }  # fmt: skip
    assert len(lines) == len(expected)
    for line in lines:
        value, error = expected[(line["city"], line["measure"])]
        if value is None:  # an average over no usable count: only its bounds are known
            assert line["value"] == "" and "no_estimate" in line["flags"]
            continue
        assert float(line["value"]) == pytest.approx(value)
        assert float(line["error95"]) == pytest.approx(error)
        assert float(line["low"]) <= float(line["value"]) <= float(line["high"])
        assert (
            float(line["epsilon"]) == pytest.approx(0.3) and line["query_id"] == result["query_id"]
        )

    parquet = pq.read_table(io.BytesIO(_get(server, token, path, format="parquet").content))
    rows = parquet.to_pylist()
    assert len(rows) == len(expected)
    assert all(expected[(x["city"], x["measure"])][0] == pytest.approx(x["value"]) for x in rows)
    assert all((x["value"] is None) == ("no_estimate" in x["flags"]) for x in rows)

    book = load_workbook(io.BytesIO(_get(server, token, path, format="xlsx").content))
    sheet = list(book["result"].values)
    header = sheet[0]
    assert len(sheet) - 1 == len(expected)
    for values in sheet[1:]:
        line = dict(zip(header, values, strict=True))
        assert expected[(line["city"], line["measure"])][0] == pytest.approx(line["value"])
    assert _get(server, token, path, format="pdf").status_code == 422


def test_cli_writes_results_and_lists_history(
    world: World, live: tuple[LiveServer, Room], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    server, _ = live
    token = world.tokens["okala_analyst"]
    auth = ("--url", server.url, "--token", token)
    out = tmp_path / "cities.parquet"
    ran = run_cli("query", *auth, "--sql", SQL, "--epsilon", "0.25", "--out", out, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "the per-person bound of" in ran.stdout  # the cut, disclosed under the table
    table = pq.read_table(out).to_pylist()
    assert table and {r["measure"] for r in table} == {"orders", "buyers", "avg_amount"}
    query_id = table[0]["query_id"]
    listed = run_cli("query", "history", *auth, "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert query_id in {q["query_id"] for q in json.loads(listed.stdout)}
    shown = run_cli("query", "show", query_id, *auth, "--out", tmp_path / "again.csv", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "again.csv").read_text().count("\n") == len(table) + 1
    bad = run_cli("query", *auth, "--sql", SQL, "--out", tmp_path / "x.pdf", cwd=tmp_path)
    assert bad.returncode == 1 and ".csv, .parquet" in bad.stderr
    no_scheme = run_cli(
        "query", "--url", "room.example", "--token", token, "--sql", SQL, cwd=tmp_path
    )
    assert no_scheme.returncode == 1 and "https://room.example" in no_scheme.stderr
    priced = run_cli("query", *auth, "--sql", SQL, "--epsilon", "0.1", "--dry-run", cwd=tmp_path)
    assert priced.returncode == 0, priced.stderr
    assert "such queries" in priced.stdout and "error95" not in priced.stdout
    assert "1/10 of the epsilon" in priced.stdout


def test_python_client_returns_frames_with_bounds_and_typed_refusals(
    world: World, live: tuple[LiveServer, Room]
) -> None:
    from cleanroom.client import Client, QueryRefused
    from cleanroom.errors import UserError

    server, _ = live
    with Client(server.url, world.tokens["ofogh_analyst"]) as client:
        assert client.me()["party"] == "ofogh"
        price = client.price(template="overlap", epsilon=0.2)
        left = client.budget()[0]["left"]
        assert price["budget"]["queries_left"] == Fraction(str(left)) // Fraction("0.2")
        result = client.query(template="overlap", epsilon=0.2)
        df = result.df
        assert list(df.columns[:1]) == ["combination"]
        assert {"value", "error95", "low", "high", "flags"} <= set(df.columns)
        assert (df["low"] <= df["value"]).all() and (df["value"] <= df["high"]).all()
        assert df.attrs["query_id"] == result.query_id and df.attrs["epsilon"] == pytest.approx(0.2)
        assert df.attrs["policy_version"] == 1 and df.attrs["cached"] is False
        assert "pairwise" in result.extras()
        again = client.query(template="overlap", epsilon=0.2)
        assert again.cached and again.epsilon == 0 and "cached" in set(again.df["flags"])
        assert client.history(5)[0]["query_id"] == again.query_id
        with pytest.raises(QueryRefused) as refused:
            client.query("SELECT person FROM ofogh.purchases")
        assert refused.value.rule == "person_in_output" and refused.value.status == 400
        assert isinstance(refused.value, UserError)
