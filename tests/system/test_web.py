"""The web UI over real HTTP, without a browser: sessions, cookies, CSRF, roles and escaping.

The room runs with production cookie settings (``__Host-``, ``Secure``); the
client here sends the cookie by hand, since an HTTP library (rightly) keeps
a Secure cookie off a plain-http connection. The browser tests
(``tests/browser``) cover the same pages as people use them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from fastapi.routing import APIRoute

from cleanroom.room.auth import Role
from cleanroom.room.state import Room
from cleanroom.room.web import routes as web_routes
from cleanroom.room.web.capabilities import CAPABILITIES, roles_for
from cleanroom.room.web.render import PREFIX
from tests.system.world import LiveServer, World, build_group, open_room

REPORTS = {
    "overlap-weekly": {
        "title": "Weekly overlap",
        "recipients": ["okala", "reviewers"],
        "sections": [{"template": "overlap", "epsilon": 0.2}],
    }
}
SCRIPT = "<script>alert('pwned')</script>"
ROLES = {
    "okala_admin": Role.party_admin,
    "okala_analyst": Role.analyst,
    "reviewer": Role.reviewer,
    "room_admin": Role.room_admin,
    "reporter": Role.reporter,
}
# Every page, with the capability (the API route's role rule) it follows.
PAGES = {
    "/ui/": "dashboard",
    "/ui/console": "console",
    "/ui/queries": "history",
    "/ui/policies": "policy.active",
    "/ui/policies/new": "policy.propose",
    "/ui/policies/1": "policy.history",
    "/ui/policies/diff?to=1": "policy.history",
    "/ui/audit": "audit",
    "/ui/reports": "reports",
    "/ui/reports/overlap-weekly": "reports",
}
# What each capability shows, so its absence can be checked too.
MARKERS = {
    "console": 'href="/ui/console"',
    "history": 'href="/ui/queries"',
    "audit": 'href="/ui/audit"',
    "reports": 'href="/ui/reports"',
    "policy.propose": 'href="/ui/policies/new"',
}


class Visitor:
    """A browser's cookie handling, by hand (so Secure cookies travel over test http)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = httpx.request(
            method, self.url + path, headers=headers, follow_redirects=False, timeout=60, **kw
        )
        for raw in response.headers.get_list("set-cookie"):
            self.set_cookies.append(raw)
            name, _, rest = raw.partition("=")
            if "Max-Age=0" in raw:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = rest.split(";")[0]
        return response

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.request("POST", path, data=data)

    def sign_in(self, token: str) -> httpx.Response:
        form = self.get("/ui/signin")
        return self.post("/ui/signin", {"csrf": csrf_of(form.text), "token": token, "next": "/ui/"})


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_group(tmp_path_factory.mktemp("web"), persons=500, seed=29, reports=REPORTS)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[LiveServer, Room, dict[str, str]]]:
    room = open_room(world.room_dir)
    tokens = {
        **world.tokens,
        "bob": room.users.add("reviewer-bob", Role.reviewer)[1],
        "cat": room.users.add("reviewer-cat", Role.reviewer)[1],
    }
    try:
        with LiveServer(room) as server:
            yield server, room, tokens
    finally:
        room.close()


def visitor(live: tuple[LiveServer, Room, dict[str, str]], who: str) -> Visitor:
    server, _, tokens = live
    v = Visitor(server.url)
    assert v.sign_in(tokens[who]).status_code == 303
    return v


def test_sign_in_sets_a_hardened_session_cookie_and_is_audited(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, room, tokens = live
    v = Visitor(server.url)
    page = v.get("/ui/signin")
    assert "__Host-cleanroom_signin" in v.cookies
    bad = v.post("/ui/signin", {"csrf": csrf_of(page.text), "token": "cr_" + "A" * 43})
    assert bad.status_code == 401 and "unknown or revoked token" in bad.text
    denied = room.audit.entries(action="auth.denied", actor="anonymous", limit=1000)
    assert any(e.target == "POST /ui/signin" for e in denied)

    ok = v.sign_in(tokens["okala_analyst"])
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/"
    cookie = next(c for c in v.set_cookies if c.startswith("__Host-cleanroom_session="))
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    assert "domain" not in attributes
    assert tokens["okala_analyst"] not in cookie  # the token never sits in a cookie
    assert room.audit.entries(action="web.signin", actor="okala-analyst")
    # The sign-in form's own token is spent: the browser forgets it.
    assert "__Host-cleanroom_signin" not in v.cookies


def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, _, _ = live
    v = Visitor(server.url)
    r = v.get("/ui/console")
    assert r.status_code == 303 and r.headers["location"] == "/ui/signin?next=/ui/console"
    assert v.get("/").headers["location"] == "/ui/"
    # A post without a session is refused outright (nothing to come back to).
    r = v.post("/ui/console", {"sql": "SELECT 1"})
    assert r.status_code == 401 and "<h1>Sign in first</h1>" in r.text
    # ``next`` never leads off the site.
    page = v.get("/ui/signin?next=//evil.example/ui/")
    assert 'name="next" value="/ui/"' in page.text


def test_sign_out_ends_the_session_on_the_server(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    v = visitor(live, "okala_analyst")
    stolen = dict(v.cookies)
    page = v.get("/ui/")
    assert v.post("/ui/signout", {"csrf": csrf_of(page.text)}).status_code == 303
    assert not v.cookies.get("__Host-cleanroom_session")
    v.cookies = stolen  # the old cookie, replayed: worthless now
    assert v.get("/ui/").status_code == 303


def test_revocation_and_idleness_end_sessions(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, room, _ = live
    _, token = room.users.add("temp-web", Role.analyst, "okala")
    v = Visitor(server.url)
    v.sign_in(token)
    assert v.get("/ui/").status_code == 200
    room.users.revoke("temp-web")
    assert v.get("/ui/").status_code == 303

    idle = visitor(live, "okala_analyst")
    assert idle.get("/ui/").status_code == 200
    with sqlite3.connect(room.paths.meta) as db:  # an hour without a request
        db.execute("UPDATE web_sessions SET seen_at = '2000-01-01T00:00:00+00:00'")
    assert idle.get("/ui/").status_code == 303


@pytest.mark.parametrize("who", sorted(ROLES))
def test_each_role_sees_only_its_pages_and_buttons(
    live: tuple[LiveServer, Room, dict[str, str]], who: str
) -> None:
    role = ROLES[who]
    v = visitor(live, who)
    for path, capability in PAGES.items():
        status = v.get(path).status_code
        assert status == (200 if role in roles_for(capability) else 403), (path, status)
    dashboard = v.get("/ui/").text
    policy = v.get("/ui/policies").text
    for capability, marker in MARKERS.items():
        shown = marker in dashboard or marker in policy
        assert shown == (role in roles_for(capability)), (capability, shown)


def test_the_web_follows_the_api_role_rules(live: tuple[LiveServer, Room, dict[str, str]]) -> None:
    # The rules are read from the routes the served app mounted (web never imports api).
    assert roles_for("console") == {Role.analyst, Role.reporter}
    assert roles_for("policy.approve") == {Role.reviewer}
    assert roles_for("audit") == {Role.reviewer, Role.room_admin}
    assert roles_for("dashboard") == set(Role)
    assert set(CAPABILITIES) >= set(PAGES.values())


def _posts() -> list[str]:
    paths = []
    for module in web_routes.PAGES:
        for route in module.router.routes:
            if isinstance(route, APIRoute) and "POST" in route.methods:
                paths.append(PREFIX + route.path)
    return sorted(paths)


def test_every_form_is_listed() -> None:
    assert _posts() == [
        "/ui/console",
        "/ui/language",
        "/ui/policies",
        "/ui/policies/{number}/approve",
        "/ui/policies/{number}/reject",
        "/ui/policies/{number}/rollback",
        "/ui/reports/{name}/run",
        "/ui/signin",
        "/ui/signout",
    ]


@pytest.mark.parametrize("path", _posts())
@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_every_form_refuses_a_missing_or_wrong_csrf_token(
    live: tuple[LiveServer, Room, dict[str, str]], path: str, token: str
) -> None:
    _, room, _ = live
    who = {"/ui/console": "okala_analyst", "/ui/reports/{name}/run": "reporter"}.get(path, "bob")
    v = visitor(live, who)
    before = len(room.policies.history())
    data = {"comment": "x", "yaml": "collaboration: x", "sql": "SELECT 1", "token": "t"}
    if token == "wrong":
        data["csrf"] = "0" * 64
    concrete = path.replace("{number}", "1").replace("{name}", "overlap-weekly")
    r = v.post(concrete, data)
    assert r.status_code == 403, (path, r.status_code)
    said = ("missing or wrong", "did not come from this site", "sign-in needs HTTPS")
    assert any(reason in r.text for reason in said), r.text
    assert len(room.policies.history()) == before
    if path != "/ui/signin":
        assert v.get("/ui/").status_code == 200  # still signed in: nothing happened


def test_script_in_a_comment_or_a_description_is_shown_as_text(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    _, room, _ = live
    v = visitor(live, "reviewer")
    form = v.get("/ui/policies/new")
    doc = yaml.safe_load(room.policies.active().body)
    doc["description"] = f"Description {SCRIPT}"
    text = yaml.safe_dump(doc, sort_keys=False)
    r = v.post(
        "/ui/policies", {"csrf": csrf_of(form.text), "yaml": text, "comment": f"why {SCRIPT}"}
    )
    assert r.status_code == 303, r.text
    version = r.headers["location"].split("?")[0]
    pages = [v.get(version).text, v.get("/ui/policies").text]
    for reviewer in ("bob", "cat"):
        other = visitor(live, reviewer)
        page = other.get(version)
        assert other.post(version + "/approve", {"csrf": csrf_of(page.text)}).status_code == 303
    assert room.policies.active().version == int(version.rsplit("/", 1)[1])
    pages += [v.get("/ui/").text, v.get("/ui/policies").text, v.get("/ui/audit").text]
    for html in pages:
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(" in html
    assert "Description &lt;script&gt;" in pages[2]  # the dashboard shows the description


def test_pages_carry_security_headers_and_stay_out_of_openapi(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, _, _ = live
    v = visitor(live, "okala_analyst")
    r = v.get("/ui/console")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert v.get("/ui/static/app.css").headers["content-type"].startswith("text/css")
    assert v.get("/ui/static/..%2Froutes.py").status_code == 404
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    assert not [p for p in spec["paths"] if p == "/" or p.startswith("/ui")]


def test_role_refusals_are_audited(live: tuple[LiveServer, Room, dict[str, str]]) -> None:
    _, room, _ = live
    v = visitor(live, "okala_analyst")
    assert v.get("/ui/audit").status_code == 403
    denied = room.audit.entries(action="auth.denied", actor="okala-analyst", limit=1000)
    assert any(e.target == "GET /ui/audit" and e.details["reason"] == "role" for e in denied)


def test_a_template_form_offers_what_the_template_declares(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    v = visitor(live, "okala_analyst")
    html = v.get("/ui/console").text
    assert 'name="p.window_days" type="number" value="" dir="ltr" placeholder="30" min="1"' in html
    assert 'name="p.steps"' in html and "required" in html
    assert 'type="checkbox" name="p.brands" value="ofogh"' in html
    # A refused template parameter comes back as the rule and the parameter's name.
    r = v.post(
        "/ui/console",
        {"csrf": csrf_of(html), "template": "segments", "p.recent_days": "0", "epsilon": "0.1"},
    )
    assert r.status_code == 400
    assert 'class="rule">bad_parameter<' in r.text
    # The parameter's name is a value of the message: in its own <bdi> on the page.
    assert (
        'parameter &#39;<bdi class="data">recent_days</bdi>&#39; must be between 1 and 365'
        in r.text
    )


def test_a_reviewer_rolls_back_from_the_version_page(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    _, room, _ = live
    superseded = [v.version for v in room.policies.history() if v.status == "superseded"]
    assert superseded, "runs after a version was activated above"
    v = visitor(live, "bob")
    page = v.get(f"/ui/policies/{superseded[0]}")
    assert "Propose a rollback" in page.text
    r = v.post(f"/ui/policies/{superseded[0]}/rollback", {"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=proposed")
    proposal = room.policies.history()[-1]
    assert proposal.status == "proposed" and proposal.author == "reviewer-bob"
    # A room admin reads the proposal but is offered no decision.
    admin = visitor(live, "room_admin").get(f"/ui/policies/{proposal.version}").text
    assert 'id="review"' not in admin and "/approve" not in admin


def test_an_unknown_page_is_a_page(live: tuple[LiveServer, Room, dict[str, str]]) -> None:
    server, _, _ = live
    assert Visitor(server.url).get("/ui/nowhere").status_code == 303  # sign in first
    r = visitor(live, "reviewer").get("/ui/nowhere")
    assert r.status_code == 404 and "there is no page /ui/nowhere" in r.text


def test_pricing_and_bad_epsilons_answer_on_the_console(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    v = visitor(live, "okala_analyst")
    csrf = csrf_of(v.get("/ui/console").text)
    sql = "SELECT city, COUNT(DISTINCT person) AS buyers FROM okala.orders GROUP BY city"
    priced = v.post("/ui/console", {"csrf": csrf, "sql": sql, "action": "price"})
    assert priced.status_code == 200 and "Price (dry run)" in priced.text
    assert "nothing was charged" in priced.text
    assert "threshold_error95" not in priced.text and "error95" not in priced.text  # no raw keys
    assert "such queries" in priced.text and 'id="price-queries-left"' in priced.text
    assert "Expected error" in priced.text and "± " in priced.text
    assert 'id="budget-queries-left"' in priced.text
    assert "more queries at the default" in priced.text
    assert 'id="cut-price"' in priced.text  # a person count by city: groups over the bound
    bad = v.post("/ui/console", {"csrf": csrf, "template": "overlap", "epsilon": "lots"})
    assert bad.status_code == 400 and "epsilon must be a number" in bad.text
    assert 'id="template-overlap" open' in bad.text  # the form comes back as it was sent
    over = v.post("/ui/console", {"csrf": csrf, "sql": sql, "epsilon": "5"})
    assert over.status_code == 400 and 'class="rule">epsilon_over_cap<' in over.text
    assert "okala.orders GROUP BY city</textarea>" in over.text


def test_the_trail_opens_on_its_latest_entries_and_verifies(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    _, room, _ = live
    for i in range(120):  # more than a page
        room.audit.record(actor="test", action="test.filler", target=str(i))
    v = visitor(live, "reviewer")
    html = v.get("/ui/audit").text
    total = room.audit.verify().entries
    seqs = [int(s) for s in re.findall(r'<td class="num">(\d+)</td>', html)]
    assert seqs[0] >= total - 1 and seqs == sorted(seqs, reverse=True)  # the latest first
    assert "Chain verified" in html and "earlier entries" in html
    first = v.get("/ui/audit?after=0").text
    assert "Entries #1–#100, newest first" in first and "later entries" in first
    only = v.get("/ui/audit?action=web.signin&actor=reviewer").text
    assert "that match" in only and "<code>web.signin</code>" in only
    assert "user.add</code>" not in only and "test.filler" not in only


def test_sign_in_over_plain_http_says_the_cookie_needs_https(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, _, tokens = live
    with httpx.Client(
        base_url=server.url
    ) as browser:  # keeps Secure cookies off http, as browsers do
        form = browser.get("/ui/signin")
        assert "__Host-cleanroom_signin" in form.headers["set-cookie"]
        r = browser.post(
            "/ui/signin", data={"csrf": csrf_of(form.text), "token": tokens["okala_analyst"]}
        )
    assert r.status_code == 403
    assert "sign-in needs HTTPS" in r.text and "expired" not in r.text


def test_history_reopens_and_downloads_ones_own_results(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    server, room, tokens = live
    # This module's room has no data: a past answer is stored as the engine stores one.
    query_id = "0123456789abcdef"
    result = {
        "query_id": query_id,
        "columns": ["city", "orders"],
        "rows": [{"city": "Tehran", "orders": {"value": 41, "error95": 6.2}}],
        "suppressed_groups": 0,
        "epsilon": "1/2",
        "epsilon_float": 0.5,
        "delta": 0.0,
        "mechanism": "laplace",
        "cached": False,
        "policy_version": 1,
        "generation": 1,
        "seconds": 0.1,
        "cut": {
            "possible": True,
            "unit": "rows",
            "bound": 10,
            "cap": 100,
            "kept": {"value": 4100, "error95": 900.0},
            "cut": {"value": 2300, "error95": 900.0, "at_least": True},
            "persons": {"value": 120, "error95": 60.0},
            "share": {"value": 0.3594, "low": 0.2, "high": 0.5},
            "material": True,
        },
    }
    room.store.connection().execute(
        "INSERT INTO queries (id, party, user_name, kind, request, cache_key, policy_version, "
        "generation, epsilon, status, result, created_at) VALUES "
        "(?, 'okala', 'okala-analyst', 'sql', ?, 'k', 1, 1, '1/2', 'done', ?, ?)",
        (
            query_id,
            json.dumps({"sql": "SELECT city, COUNT(*) AS orders"}),
            json.dumps(result),
            "2026-11-20T10:00:00+00:00",
        ),
    )
    v = visitor(live, "okala_analyst")
    listed = v.get("/ui/queries")
    assert listed.status_code == 200 and f"/ui/queries/{query_id}" in listed.text
    reopened = v.get(f"/ui/queries/{query_id}")
    assert reopened.status_code == 200 and 'id="result-table"' in reopened.text
    assert 'id="cut-disclosure"' in reopened.text and "≈ 36% of rows" in reopened.text
    assert "the true total is higher" in reopened.text
    assert f"/ui/queries/{query_id}/download?format=csv" in reopened.text
    assert '<img class="chart" alt="orders per group"' in reopened.text
    # Reopened in Persian, the chart is drawn in Persian too (not the English one kept).
    switched = v.post("/ui/language", {"csrf": csrf_of(reopened.text), "language": "fa"})
    assert switched.status_code == 303
    persian = v.get(f"/ui/queries/{query_id}")
    assert '<img class="chart" alt="سفارش\u200cها در هر گروه"' in persian.text
    v.post("/ui/language", {"csrf": csrf_of(persian.text), "language": "en"})
    csv_file = v.get(f"/ui/queries/{query_id}/download?format=csv")
    assert csv_file.status_code == 200 and csv_file.text.startswith("city,measure,value,error95")
    assert "Tehran,orders,41,6.2,34.8,47.2," in csv_file.text
    other = visitor(live, "reviewer")
    assert other.get(f"/ui/queries/{query_id}").status_code == 200  # reviewers see every party
    stranger = Visitor(server.url)
    assert stranger.sign_in(tokens["filimo_analyst"]).status_code == 303
    assert stranger.get(f"/ui/queries/{query_id}").status_code == 404
    assert stranger.get(f"/ui/queries/{query_id}/download?format=csv").status_code == 404


def test_the_console_offers_only_the_templates_the_policy_approves(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    from cleanroom.room.web.pages.console import template_forms

    _, room, _ = live
    policy = room.active_policy().policy
    offered = {f.name for f in template_forms(policy, "okala")}
    assert "overlap" in offered and offered <= set(policy.templates)
    without = policy.model_copy(
        update={"templates": {k: v for k, v in policy.templates.items() if k != "overlap"}}
    )
    assert "overlap" not in {f.name for f in template_forms(without, "okala")}


def test_run_now_is_not_offered_when_the_reporter_share_cannot_pay(
    live: tuple[LiveServer, Room, dict[str, str]],
) -> None:
    from cleanroom.room.budget import Ledger

    _, room, _ = live
    v = visitor(live, "reporter")
    assert 'id="run-now"' in v.get("/ui/reports/overlap-weekly").text
    privacy = room.active_policy().policy.privacy
    assert privacy is not None
    ledger = Ledger(room.store, room.audit)
    left = ledger.status("reporter", privacy.budget).left
    charge = ledger.charge(
        "reporter", left, policy=privacy.budget, query_id="test-spend", actor="test"
    )
    try:
        page = v.get("/ui/reports/overlap-weekly").text
        assert 'id="run-now"' not in page and 'id="cannot-pay"' in page
        assert "less than the 0.2 a run costs" in page
    finally:
        ledger.refund(charge, actor="test", reason="test over")
    assert 'id="run-now"' in v.get("/ui/reports/overlap-weekly").text
