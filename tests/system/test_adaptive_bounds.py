"""Bounds that fit the data, over HTTP: reviewers approve the option, a match chooses the
bounds with a DP quantile and pays for it first, and the queries on that generation use them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import httpx
import pytest
import yaml

from cleanroom.room.auth import Role
from cleanroom.room.recovery import check_ledger
from cleanroom.room.state import Room
from tests.system.test_web import Visitor, csrf_of
from tests.system.world import LiveServer, World, build_world, open_room

SQL = "SELECT city, COUNT(*) AS orders FROM okala.orders GROUP BY city"
ADAPTIVE = {
    "epsilon": 0.2,
    "charged_to": "reporter",
    "quantile": 0.95,
    "max_rows_per_person": 200,
    "max_groups_per_person": 20,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("adaptive"), persons=1_500, seed=23)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[LiveServer, Room, dict[str, str]]]:
    room = open_room(world.room_dir)
    tokens = {
        "ana": world.tokens["reviewer"],
        "bob": room.users.add("reviewer-bob", Role.reviewer)[1],
        "cat": room.users.add("reviewer-cat", Role.reviewer)[1],
        "analyst": world.tokens["okala_analyst"],
        "admin": world.tokens["room_admin"],
    }
    try:
        with LiveServer(room) as server:
            for (party, _), bundle in sorted(world.bundles.items()):
                r = call(
                    server,
                    "POST",
                    "/api/v1/datasets",
                    world.tokens[f"{party}_admin"],
                    content=bundle.read_bytes(),
                )
                assert r.status_code == 201, r.text
            yield server, room, tokens
    finally:
        room.close()


def call(server: LiveServer, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)


def count_error(server: LiveServer, token: str) -> tuple[float, dict[str, Any]]:
    """A free dry run of SQL: the COUNT's expected 95% error and the bounds it would use."""
    r = call(server, "POST", "/api/v1/queries", token, json={"sql": SQL, "dry_run": True})
    assert r.status_code == 200, r.text
    return float(r.json()["aggregates"]["orders"]["error95"]), r.json()["bounds"]


def test_reviewers_turn_on_adaptive_bounds_and_queries_use_the_chosen_ones(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, room, t = live
    first = call(server, "POST", "/api/v1/matches", t["admin"])
    assert first.status_code == 201, first.text
    assert "bounds" not in first.json()  # fixed bounds: nothing chosen, nothing charged
    fixed_error, fixed = count_error(server, t["analyst"])
    assert fixed == {
        "rows": 10,
        "groups": 5,
        "adaptive": False,
        "quantile": None,
        "epsilon": None,
        "charged_to": None,
        "pairs": None,
    }

    # A reviewer proposes the option; the diff flags it; two others approve.
    active = call(server, "GET", "/api/v1/policies/active", t["analyst"]).json()
    doc = yaml.safe_load(active["yaml"])
    doc["privacy"]["adaptive_bounds"] = ADAPTIVE
    proposed = call(
        server,
        "POST",
        "/api/v1/policies",
        t["ana"],
        json={"yaml": yaml.safe_dump(doc, sort_keys=False), "comment": "bounds from the data"},
    )
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]
    diff = call(server, "GET", f"/api/v1/policies/diff?to={version}", t["bob"]).json()
    flagged = {c["path"]: c for c in diff["changes"]}
    assert set(flagged) == {"privacy.adaptive_bounds"}
    assert flagged["privacy.adaptive_bounds"]["privacy"] == "loosens"
    for reviewer in ("bob", "cat"):
        r = call(server, "POST", f"/api/v1/policies/{version}/approve", t[reviewer], json={})
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"

    # The generation matched before the option keeps the fixed bounds.
    assert count_error(server, t["analyst"]) == (fixed_error, fixed)

    # A new match chooses the bounds from the data, pays first, records them.
    matched = call(server, "POST", "/api/v1/matches", t["admin"])
    assert matched.status_code == 201, matched.text
    generation = matched.json()["generation"]
    chosen = matched.json()["bounds"]
    assert chosen["adaptive"] is True and chosen["quantile"] == 0.95
    assert chosen["epsilon"] == "1/5" and chosen["charged_to"] == "reporter"
    assert 1 <= chosen["groups"] <= chosen["rows"] <= 200
    assert 1 <= chosen["pairs"] <= 10  # five brands with timed activity: transitions have pairs
    db = room.store.connection()
    charges = db.execute(
        "SELECT party, epsilon_num, epsilon_den, refunded_at, query_id, report_run "
        "FROM budget_charges WHERE generation = ?",
        (generation,),
    ).fetchall()
    assert [tuple(c) for c in charges] == [("reporter", 1, 5, None, None, None)]
    entries = [
        (row["action"], json.loads(row["details"]))
        for row in db.execute("SELECT action, details FROM audit ORDER BY seq")
    ]
    actions = [a for a, _ in entries]
    match_at = max(i for i, a in enumerate(actions) if a == "match.run")
    charge_at = max(i for i, a in enumerate(actions) if a == "budget.charge")
    assert charge_at < match_at  # charged before the generation (and its bounds) went live
    assert entries[match_at][1]["bounds"] == chosen
    assert Fraction(entries[charge_at][1]["epsilon"]) == Fraction(1, 5)

    # Queries on it use the chosen bounds: the preview's error scales with the row bound,
    # and the answer says which bounds applied and that they were chosen from the data.
    adaptive_error, shown = count_error(server, t["analyst"])
    assert shown == chosen
    assert adaptive_error == pytest.approx(fixed_error * chosen["rows"] / 10, rel=0.02)
    answer = call(server, "POST", "/api/v1/queries", t["analyst"], json={"sql": SQL})
    assert answer.status_code == 200, answer.text
    assert answer.json()["bounds"] == chosen
    assert answer.json()["generation"] == generation
    ran = next(d for a, d in reversed(entries) if a == "match.run")
    assert ran["bounds"]["rows"] == chosen["rows"]
    query_entry = db.execute(
        "SELECT details FROM audit WHERE action = 'query.run' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    assert json.loads(query_entry["details"])["bounds"] == chosen

    # transitions without max_transitions: the chosen pairs bound, recorded with the request.
    moved = call(
        server,
        "POST",
        "/api/v1/queries",
        t["analyst"],
        json={"template": "transitions", "params": {}, "epsilon": 0.1},
    )
    assert moved.status_code == 200, moved.text
    request = db.execute(
        "SELECT request FROM queries WHERE id = ?", (moved.json()["query_id"],)
    ).fetchone()
    assert json.loads(request["request"])["params"] == {"max_transitions": str(chosen["pairs"])}

    # The web pages say it too: the policy page shows the option, the console the bounds used.
    reviewer = Visitor(server.url)
    assert reviewer.sign_in(t["bob"]).status_code == 303
    page = reviewer.get("/ui/policies").text
    assert 'id="adaptive-bounds"' in page and "to cover 95% of persons" in page
    analyst = Visitor(server.url)
    analyst.sign_in(t["analyst"])
    form = analyst.get("/ui/console").text
    shown_page = analyst.post("/ui/console", {"csrf": csrf_of(form), "sql": SQL}).text
    assert 'id="result-bounds"' in shown_page
    assert (
        f"{chosen['rows']} / {chosen['groups']} · {chosen['pairs']} transition pairs"
        " · chosen from the data"
    ) in shown_page


def test_a_match_whose_bounds_the_budget_refuses_publishes_nothing(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    """The reporter share cannot pay for ever more matches: the match fails whole, nothing lost."""
    server, room, t = live
    before = call(server, "GET", "/api/v1/matches/latest", t["admin"]).json()
    # The demo's reporter share is 2.0 a month; each match costs 0.2 of it.
    refused = None
    for _ in range(12):
        r = call(server, "POST", "/api/v1/matches", t["admin"])
        if r.status_code != 201:
            refused = r
            break
    assert refused is not None and refused.status_code == 429, refused
    latest = call(server, "GET", "/api/v1/matches/latest", t["admin"]).json()
    assert latest["generation"] >= before["generation"]  # the live generation is still served
    db = room.store.connection()
    assert db.execute("SELECT count(*) FROM matches WHERE status = 'running'").fetchone()[0] == 0
    answer = call(server, "POST", "/api/v1/queries", t["analyst"], json={"sql": SQL})
    assert answer.status_code == 200, answer.text
    assert answer.json()["bounds"]["adaptive"] is True
    assert check_ledger(room, idle=True).problems == []  # every bounds charge accounted for
