"""Compliance reviewers change the policy over real HTTP: propose, review the flagged diff,
approve with two other reviewers, and the next query runs under the new version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cleanroom.room.auth import Role
from cleanroom.room.query.engine import Engine, QueryRequest
from cleanroom.room.state import Room
from tests.system.world import LiveServer, World, build_world, open_room, run_cli

SQL = "SELECT city, COUNT(DISTINCT person) AS buyers FROM okala.orders GROUP BY city"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("policies"), persons=1_000, seed=17)


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
            assert call(server, "POST", "/api/v1/matches", tokens["admin"]).status_code == 201
            yield server, room, tokens
    finally:
        room.close()


def call(server: LiveServer, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, server.url + path, headers=headers, timeout=120, **kw)


def loosened(active_yaml: str) -> str:
    doc = yaml.safe_load(active_yaml)
    privacy = doc["privacy"]
    privacy["budget"]["epsilon"] = 12.0
    privacy["budget"]["shares"]["okala"] = 2.0
    privacy["max_epsilon_per_query"] = 1.5
    return yaml.safe_dump(doc, sort_keys=False)


def test_reviewers_activate_a_loosening_version_and_queries_record_it(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, room, t = live
    active = call(server, "GET", "/api/v1/policies/active", t["analyst"])
    assert active.status_code == 200, active.text  # analysts read the contract they query under
    assert active.json()["version"] == 1
    over_cap = {"sql": SQL, "epsilon": 1.2}
    refused = call(server, "POST", "/api/v1/queries", t["analyst"], json=over_cap)
    assert refused.status_code == 400 and "cap" in refused.json()["error"]["message"]

    # Reviewer A proposes: the answer already flags what loosens.
    proposed = call(
        server,
        "POST",
        "/api/v1/policies",
        t["ana"],
        json={"yaml": loosened(active.json()["yaml"]), "comment": "okala's Q3 campaign"},
    )
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]
    assert proposed.json()["status"] == "proposed"
    assert proposed.json()["approvals_required"] == 2
    assert proposed.json()["summary"]["loosens"] == 3

    # A alone cannot make it happen.
    alone = call(server, "POST", f"/api/v1/policies/{version}/approve", t["ana"])
    assert alone.status_code == 403 and "two-person rule" in alone.json()["error"]["message"]
    assert (
        call(server, "POST", "/api/v1/policies", t["analyst"], json={"yaml": "x"}).status_code
        == 403
    )

    # Reviewer B sees each loosening change flagged, with the reason, and approves.
    diff = call(server, "GET", f"/api/v1/policies/diff?to={version}", t["bob"]).json()
    flagged = {c["path"]: c for c in diff["changes"] if c["privacy"] == "loosens"}
    assert set(flagged) == {
        "privacy.budget.epsilon",
        "privacy.budget.shares.okala",
        "privacy.max_epsilon_per_query",
    }
    assert flagged["privacy.budget.epsilon"]["old"] == 10.0
    assert flagged["privacy.budget.epsilon"]["new"] == 12.0
    assert "more privacy" in flagged["privacy.budget.epsilon"]["reason"]
    first = call(
        server, "POST", f"/api/v1/policies/{version}/approve", t["bob"], json={"comment": "ok"}
    )
    assert first.status_code == 200 and first.json()["status"] == "proposed"
    again = call(server, "POST", f"/api/v1/policies/{version}/approve", t["bob"], json={})
    assert again.status_code == 409
    assert call(server, "GET", "/api/v1/policies/active", t["analyst"]).json()["version"] == 1

    # The second reviewer's approval activates it, in the same step.
    second = call(server, "POST", f"/api/v1/policies/{version}/approve", t["cat"], json={})
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "active"
    assert second.json()["approvals"] == ["reviewer-bob", "reviewer-cat"]
    assert call(server, "GET", "/api/v1/policies/active", t["analyst"]).json()["version"] == version
    history = call(server, "GET", "/api/v1/policies", t["admin"]).json()
    assert [(h["version"], h["status"]) for h in history][:2] == [(1, "superseded"), (2, "active")]

    # A query afterwards runs under, and records, the new version.
    answered = call(server, "POST", "/api/v1/queries", t["analyst"], json=over_cap)
    assert answered.status_code == 200, answered.text
    assert answered.json()["policy_version"] == version
    row = (
        room.store.connection()
        .execute("SELECT policy_version FROM queries WHERE id = ?", (answered.json()["query_id"],))
        .fetchone()
    )
    assert row["policy_version"] == version

    trail = call(server, "GET", "/api/v1/audit?limit=1000", t["bob"]).json()
    actions = [e["action"] for e in trail if e["action"].startswith("policy.")]
    assert actions[:4] == [
        "policy.proposed",
        "policy.approved",
        "policy.approved",
        "policy.activated",
    ]
    assert call(server, "GET", "/api/v1/audit/verify", t["bob"]).json()["ok"] is True


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda doc: doc["privacy"]["budget"].update(epsilon=-1), "privacy.budget.epsilon"),
        (lambda doc: doc["parties"]["okala"].update(nickname="o"), "parties.okala.nickname"),
        (None, "proposal: line"),
    ],
)
def test_invalid_proposals_get_4xx_naming_the_path(
    live: tuple[LiveServer, Room, dict[str, str]], mutate: Any, fragment: str
) -> None:
    server, _, t = live
    body = call(server, "GET", "/api/v1/policies/active", t["ana"]).json()["yaml"]
    if mutate is None:
        text = body + "\n  broken: [indentation\n"
    else:
        doc = yaml.safe_load(body)
        mutate(doc)
        text = yaml.safe_dump(doc)
    before = len(call(server, "GET", "/api/v1/policies", t["ana"]).json())
    response = call(server, "POST", "/api/v1/policies", t["ana"], json={"yaml": text})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]
    assert len(call(server, "GET", "/api/v1/policies", t["ana"]).json()) == before


def test_a_query_keeps_the_policy_version_it_started_with(
    live: tuple[LiveServer, Room, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine reads the active policy once and passes that snapshot on."""
    _, room, _ = live
    snapshot = room.active_policy()
    reads: list[int] = []

    def once() -> Any:
        reads.append(1)
        if len(reads) > 1:
            raise AssertionError("the engine read the active policy twice in one query")
        return snapshot

    monkeypatch.setattr(room, "active_policy", once)
    result = Engine(room).run(
        QueryRequest(sql=SQL + " ", epsilon=None), room.users.get("okala-analyst")
    )
    assert result["policy_version"] == snapshot.version and reads == [1]


def test_policy_commands_over_http(
    world: World, live: tuple[LiveServer, Room, dict[str, str]], tmp_path: Path
) -> None:
    server, _, t = live
    common = ("--url", server.url, "--token", t["ana"])

    def cli(*args: str) -> Any:
        return run_cli(*args, cwd=tmp_path, env={"COLUMNS": "220"})

    history = cli("policy", "history", *common)
    assert history.returncode == 0, history.stderr
    assert "superseded" in history.stdout and "reviewer-bob" in history.stdout

    diff = cli("policy", "diff", "1", "2", *common)
    assert diff.returncode == 0, diff.stderr
    assert "loosens" in diff.stdout and "privacy.budget.epsilon" in diff.stdout
    assert "3 loosening" in diff.stdout

    # A file with key files next to it: the CLI inlines them before sending.
    doc = yaml.safe_load(call(server, "GET", "/api/v1/policies/active", t["ana"]).json()["yaml"])
    for party in doc["parties"].values():
        del party["public_key"]
    for party in doc["parties"]:
        doc["parties"][party]["public_key_file"] = str(world.key(party, "pub"))
    doc["privacy"]["min_noisy_persons"] = 5
    (tmp_path / "next.yaml").write_text(yaml.safe_dump(doc))
    proposed = cli("policy", "propose", "next.yaml", "--comment", "smaller groups", *common)
    assert proposed.returncode == 0, proposed.stderr
    assert "privacy.min_noisy_persons" in proposed.stdout and "loosens" in proposed.stdout

    doc["privacy"]["min_noisy_persons"] = -5
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    bad = cli("policy", "propose", "bad.yaml", *common)
    assert bad.returncode == 1 and "privacy.min_noisy_persons" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    version = proposed.stdout.split("proposed version ")[1].split()[0]
    shown = cli("policy", "show", version, *common)
    assert shown.returncode == 0 and "min_noisy_persons: 5" in shown.stdout
    rejected = cli(
        "policy",
        "reject",
        version,
        "--comment",
        "not agreed",
        "--url",
        server.url,
        "--token",
        t["bob"],
    )
    assert rejected.returncode == 0, rejected.stderr
    assert f"version {version}: rejected" in rejected.stdout


def test_rollback_over_http_is_a_proposal_reviewed_like_any(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, _, t = live
    rollback = call(server, "POST", "/api/v1/policies/1/rollback", t["ana"])
    assert rollback.status_code == 201, rollback.text
    proposed = rollback.json()
    assert proposed["status"] == "proposed" and proposed["base_version"] == 2
    assert proposed["summary"] == {"loosens": 0, "tightens": 3, "neutral": 0}
    version = proposed["version"]
    shown = call(server, "GET", f"/api/v1/policies/{version}", t["admin"]).json()
    assert shown["yaml"] == call(server, "GET", "/api/v1/policies/1", t["admin"]).json()["yaml"]
    assert call(server, "POST", f"/api/v1/policies/{version}/approve", t["ana"]).status_code == 403
    assert (
        call(server, "POST", f"/api/v1/policies/{version}/approve", t["analyst"]).status_code == 403
    )
    closed = call(
        server, "POST", f"/api/v1/policies/{version}/reject", t["bob"], json={"comment": "keep v2"}
    )
    assert closed.status_code == 200 and closed.json()["status"] == "rejected"
    again = call(server, "POST", f"/api/v1/policies/{version}/approve", t["cat"])
    assert again.status_code == 409


def test_switching_to_the_gaussian_mechanism_answers_with_delta_over_http(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    """Reviewers move the collaboration to Gaussian noise under zCDP; the next query over
    HTTP is released with it: a positive delta, within the policy's, and 95% bounds."""
    server, _, t = live
    doc = yaml.safe_load(
        call(server, "GET", "/api/v1/policies/active", t["analyst"]).json()["yaml"]
    )
    doc["privacy"]["mechanism"] = "gaussian"
    doc["privacy"]["delta"] = 1e-7
    proposed = call(
        server, "POST", "/api/v1/policies", t["ana"],
        json={"yaml": yaml.safe_dump(doc, sort_keys=False), "comment": "gaussian"},
    )  # fmt: skip
    assert proposed.status_code == 201, proposed.text
    version = proposed.json()["version"]
    for reviewer in ("bob", "cat"):
        r = call(server, "POST", f"/api/v1/policies/{version}/approve", t[reviewer], json={})
        assert r.status_code == 200, r.text
    answer = call(
        server, "POST", "/api/v1/queries", t["analyst"], json={"sql": SQL, "epsilon": 0.3}
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["mechanism"] == "gaussian" and result["policy_version"] == version
    assert 0 < result["delta"] <= 1e-7
    assert all(row["buyers"]["error95"] > 0 for row in result["rows"])
