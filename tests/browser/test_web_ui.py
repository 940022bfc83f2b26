"""The web UI in a real browser (Debian's Chromium, headless) against a live room on localhost.

One group, one room and one server for the module: the five brands' data
uploaded and matched, as `cleanroom demo` does, then people sign in and use
the pages. The room runs with the development setting that lets session
cookies travel over plain http://127.0.0.1 (``web_secure_cookies: false``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from cleanroom.room.auth import Role
from cleanroom.room.config import load_settings
from cleanroom.room.state import Room
from tests.browser.harness import CHROMIUM, VIEWPORT, Screens, sign_in, sign_out
from tests.system.world import LiveServer, World, build_group

pytestmark = pytest.mark.browser

REPORTS = {
    "overlap-weekly": {
        "title": "Weekly cross-brand overlap",
        "recipients": ["okala", "reviewers"],
        "sections": [
            {"template": "overlap", "params": {"parties": "filimo,ofogh,okala"}, "epsilon": 0.2}
        ],
    }
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_group(tmp_path_factory.mktemp("browser"), persons=2_000, seed=23, reports=REPORTS)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[str, dict[str, str]]]:
    settings = load_settings(
        world.room_dir, environment="development", web_secure_cookies=False, scheduler=False
    )
    room = Room(settings)
    tokens = {
        **world.tokens,
        "bob": room.users.add("reviewer-bob", Role.reviewer)[1],
        "cat": room.users.add("reviewer-cat", Role.reviewer)[1],
    }
    try:
        with LiveServer(room) as server:
            for (party, _), bundle in sorted(world.bundles.items()):
                _api(server.url, "POST", "/api/v1/datasets", tokens[f"{party}_admin"], bundle)
            _api(server.url, "POST", "/api/v1/matches", tokens["room_admin"])
            yield server.url, tokens
    finally:
        room.close()


def _api(url: str, method: str, path: str, token: str, body: Any = None) -> None:
    content = body.read_bytes() if body is not None else None
    response = httpx.request(
        method,
        url + path,
        headers={"Authorization": f"Bearer {token}"},
        content=content,
        timeout=120,
    )
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CLEANROOM_REQUIRE_BROWSER") or os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing; .ci/run installs it with apt")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield tab
    context.close()
    assert not dialogs, f"a script ran on a page: {dialogs}"  # escaping held everywhere


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screens:
    return Screens(request.node.name)


def loosened(text: str) -> str:
    doc = yaml.safe_load(text)
    doc["privacy"]["budget"]["epsilon"] = 12.0
    doc["privacy"]["max_epsilon_per_query"] = 1.5
    doc["privacy"]["budget"]["shares"]["okala"] = 2.0
    doc["privacy"]["min_noisy_persons"] = 5
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def test_a_loosening_needs_a_second_reviewer(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    page.goto(f"{url}/ui/signin")
    shot(page, "signin", docs="signin")
    sign_in(page, url, tokens["reviewer"])
    page.click("nav >> text=Policy")
    shot(page, "policy")
    page.click("text=Propose a new version")
    page.fill("#yaml", loosened(page.input_value("#yaml")))
    page.fill("#comment", "Q3 campaign: a larger share for okala — سهم بیشتر برای اکالا")
    shot(page, "propose")
    page.click("#propose")
    expect(page.locator("#done")).to_contain_text("Proposed")
    expect(page.locator("#loosening-count")).to_have_text("4")
    expect(page.locator("#two-person")).to_contain_text("cannot approve it")
    assert page.locator("#approve").count() == 0  # the author is not offered the button
    shot(page, "proposed-by-author")
    proposal = page.url.split("?")[0]
    sign_out(page)

    sign_in(page, url, tokens["bob"])
    page.click("nav >> text=Policy")
    flagged = page.locator("#proposals tr.loosens")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text("4 loosen")
    flagged.locator("a").click()
    expect(page.locator("#changes tr.loosens")).to_have_count(4)
    expect(page.locator("#changes")).to_contain_text("privacy.max_epsilon_per_query")
    shot(page, "review", docs="policy-review")
    page.fill("#approve-comment", "checked with okala's DPO")
    page.click("#approve")
    expect(page.locator("#done")).to_contain_text("More approvals are needed")
    expect(page.locator("#approvals")).to_have_text("1 of 2")
    shot(page, "approved-once")
    sign_out(page)

    sign_in(page, url, tokens["cat"])
    page.goto(proposal)
    page.click("#approve")
    expect(page.locator("#done")).to_contain_text("now active")
    expect(page.locator("h1 .badge")).to_have_text("active")
    shot(page, "activated")


def test_b_an_analyst_runs_a_template_from_its_form(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["okala_analyst"])
    shot(page, "dashboard", docs="dashboard")
    page.click("nav >> text=Query console")
    shot(page, "console")
    form = page.locator("#template-transitions")
    form.locator("summary").click()
    for brand in ("okala", "ofogh", "ozone"):
        form.locator(f"input[name='p.brands'][value='{brand}']").check()
    form.locator("input[name='p.window_days']").fill("30")
    form.locator("input[name=epsilon]").fill("0.4")
    form.locator("button[value=run]").click()
    chart = page.locator("#result img.chart")
    expect(chart).to_be_visible()  # drawn by the reports' chart stack, as an SVG image
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 0
    expect(chart).to_have_attribute("alt", re.compile(r"per group$"))
    expect(page.locator("#epsilon-spent")).to_have_text("0.4")
    expect(page.locator("#cached")).to_have_text("no")
    cells = page.locator("#result-table td.num")
    assert cells.count() > 0
    assert all("±" in text for text in cells.all_inner_texts())
    shot(page, "template-result", docs="console-result")

    # The same question again: the stored answer, marked cached, at no cost.
    page.locator("#template-transitions button[value=run]").click()
    expect(page.locator("#cached")).to_contain_text("yes")
    expect(page.locator("#epsilon-spent")).to_have_text("0 (cached)")


def test_c_disallowed_sql_names_the_broken_rule(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["ofogh_analyst"])
    page.goto(f"{url}/ui/console")
    page.click("button.insert[data-insert='ofogh.purchases']")
    assert page.input_value("#sql") == "ofogh.purchases"  # the script inserts at the cursor
    page.fill("#sql", "SELECT person, city FROM ofogh.purchases")
    page.click("form:has(#sql) button[value=run]")
    refusal = page.locator("#refusal")
    expect(refusal).to_contain_text("Query refused")
    expect(refusal.locator(".rule")).to_have_text("person_in_output")
    expect(refusal).to_contain_text("person is never released")
    expect(page.locator("#sql")).to_have_value("SELECT person, city FROM ofogh.purchases")
    shot(page, "sql-refused", docs="console-refused")


def test_d_an_exhausted_budget_says_so_and_when_it_resets(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["tapsi_analyst"])
    page.goto(f"{url}/ui/console")
    left = float(page.locator("#budget-left").inner_text())
    form = page.locator("#template-overlap")
    form.locator("summary").click()
    form.locator("input[name=epsilon]").fill("1")
    form.locator("button[value=run]").click()
    expect(page.locator("#budget-left")).to_have_text(re.compile(rf"^{left - 1:.1f}"))
    form = page.locator("#template-segments")
    form.locator("summary").click()
    form.locator("input[name=epsilon]").fill("1")
    form.locator("button[value=run]").click()
    refusal = page.locator("#refusal")
    expect(refusal).to_contain_text("Privacy budget exhausted for Tapsi rides")  # brand name
    expect(refusal).to_contain_text("The budget resets at")
    expect(refusal.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-01T"))
    shot(page, "budget-exhausted", docs="console-budget")


def test_e_pages_follow_the_role(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    # A reporter runs the report on demand; the run page shows the rendered report.
    sign_in(page, url, tokens["reporter"])
    nav = page.locator("header nav")
    expect(nav).not_to_contain_text("Audit")
    page.click("nav >> text=Reports")
    shot(page, "reports", docs="reports")
    page.click("text=Weekly cross-brand overlap")
    page.click("#run-now")
    expect(page.locator("h1 .badge")).to_have_text("done")
    expect(page.frame_locator("iframe.report").locator("body")).to_contain_text("overlap")
    shot(page, "report-run", docs="report-run")
    page.click("text=Charts as PNG files")
    chart = page.locator("img.chart-png").first
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.naturalWidth") > 0  # served from the run's directory
    sign_out(page)

    # An analyst of a recipient party reads it, but is offered no run button.
    sign_in(page, url, tokens["okala_analyst"])
    page.goto(f"{url}/ui/reports/overlap-weekly")
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    assert page.locator("#run-now").count() == 0
    expect(page.locator("header nav")).not_to_contain_text("Audit")
    page.goto(f"{url}/ui/audit")
    expect(page.locator("h1")).to_have_text("Not for your role")
    shot(page, "forbidden")
    sign_out(page)

    # A party's data engineer sees the dashboard and the policy, no console and no reports.
    sign_in(page, url, tokens["okala_admin"])
    expect(nav).not_to_contain_text("Query console")
    expect(nav).not_to_contain_text("Reports")
    page.click("nav >> text=Policy")
    assert page.locator("text=Propose a new version").count() == 0
    sign_out(page)

    # A reviewer reads the trail: every step above is there, and the chain verifies.
    sign_in(page, url, tokens["reviewer"])
    page.click("nav >> text=Policy")
    expect(page.locator("h2").first).to_contain_text("Version 2")
    shot(page, "policy", docs="policy")
    # A comment with a script in it is shown as text, and nothing runs (see the page fixture).
    page.click("text=Propose a new version")
    doc = yaml.safe_load(page.input_value("#yaml"))
    doc["description"] = "Journeys across the group's brands <script>alert(1)</script>"
    page.fill("#yaml", yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    page.fill("#comment", "<script>alert(document.cookie)</script>")
    page.click("#propose")
    expect(page.locator("#comment")).to_have_text("<script>alert(document.cookie)</script>")
    expect(page.locator("#changes tr.neutral")).to_have_count(1)
    page.fill("#reject-comment", "only a test of escaping")
    page.click("#reject")
    expect(page.locator("#done")).to_contain_text("Rejected")

    page.click("nav >> text=Audit")
    expect(page.locator("#chain")).to_contain_text("Chain verified")
    shot(page, "audit", docs="audit")
    page.fill("#action", "policy.activated")
    page.click("form.row button[type=submit]")
    expect(page.locator("#entries tbody tr")).to_have_count(1)
    expect(page.locator("#entries")).to_contain_text("reviewer-cat")


def test_f_a_console_result_downloads_as_csv_with_the_apis_numbers(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["okala_analyst"])
    page.goto(f"{url}/ui/console")
    page.fill(
        "#sql", "SELECT city, COUNT(*) AS orders, AVG(amount) FROM okala.orders GROUP BY city"
    )
    page.fill("#sql-epsilon", "0.3")
    page.click("form:has(#sql) button[value=run]")
    expect(page.locator("#downloads a[data-format=csv]")).to_be_visible()
    shot(page, "result-with-downloads")
    with page.expect_download() as pending:
        page.click("#downloads a[data-format=csv]")
    download = pending.value
    assert download.suggested_filename.endswith(".csv")
    lines = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    query_id = lines[0]["query_id"]
    assert page.locator("#result code").first.inner_text() == query_id
    api = httpx.get(
        f"{url}/api/v1/queries/{query_id}",
        headers={"Authorization": f"Bearer {tokens['okala_analyst']}"},
        timeout=60,
    ).json()
    expected = {
        (row["city"], name): row[name] for row in api["rows"] for name in ("orders", "avg_amount")
    }
    assert len(lines) == len(expected) > 0
    for line in lines:
        cell = expected[(line["city"], line["measure"])]
        if cell["value"] is None:
            assert line["value"] == "" and "no_estimate" in line["flags"]
            continue
        assert float(line["value"]) == pytest.approx(cell["value"])
        assert float(line["error95"]) == pytest.approx(cell["error95"])
        assert float(line["epsilon"]) == pytest.approx(api["epsilon_float"])

    # The same answer is in the history, and re-opens without a new charge.
    page.click("nav >> text=History")
    opener = page.locator(f"a.open[href$='/queries/{query_id}']")
    expect(opener).to_have_count(1)
    opener.click()
    expect(page.locator("#result-table td.num").first).to_be_visible()
    shot(page, "history-reopened")


def test_g_api_docs_render_with_the_network_off(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, _ = live
    outside: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{url}/docs")
    # A 1.5 MB script parsed on a shared 2-core machine: give it time, not the network.
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=90_000)
    expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/queries")
    expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/budget")
    shot(page, "api-docs")
    assert outside == [], outside  # Swagger UI asked nothing of another host
    page.goto(f"{url}/redoc")
    expect(page.locator(".api-content")).to_contain_text("/api/v1/queries", timeout=90_000)
    # ReDoc's bundle links its own "powered by" logo from its CDN: blocked here, and
    # the page renders without it. Nothing else may be asked of another host.
    assert [u for u in outside if not u.endswith("/logo-mini.svg")] == [], outside
