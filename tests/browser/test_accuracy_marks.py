"""Readable accuracy on the console's result page, in a real browser, in English and Persian.

An analyst runs a query whose numbers are mostly noise and whose small groups
are withheld, then an overlap under ``join_required``: each number that is
mostly noise carries the † mark, the legend under the table says what it
means, and each rule that withheld or narrowed cells is named — in both
languages, with Persian digits and nothing left in English on the Persian page.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from cleanroom.room.config import load_settings
from cleanroom.room.state import Room
from tests.browser.harness import CHROMIUM, VIEWPORT, Screens, sign_in
from tests.browser.test_web_ui_fa import check_persian
from tests.system.world import LiveServer, World, build_group

pytestmark = pytest.mark.browser

# Sixteen city × channel groups at an epsilon that buys only noise: every count is
# mostly noise, every average only a range, and some groups fall under the minimum.
NOISY_SQL = (
    "SELECT city, channel, COUNT(DISTINCT person) AS buyers, AVG(amount) AS basket "
    "FROM okala.orders GROUP BY city, channel"
)
EPSILON = "0.001"  # the form's smallest
PERSIAN_DIGIT = re.compile(r"[۰-۹]")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_group(tmp_path_factory.mktemp("browser-accuracy"), persons=1_200, seed=43)


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[str, dict[str, str]]]:
    settings = load_settings(
        world.room_dir, environment="development", web_secure_cookies=False, scheduler=False
    )
    room = Room(settings)
    try:
        with LiveServer(room) as server:
            for (party, _), bundle in sorted(world.bundles.items()):
                _api(server.url, "/api/v1/datasets", world.tokens[f"{party}_admin"], bundle)
            _api(server.url, "/api/v1/matches", world.tokens["room_admin"])
            yield server.url, world.tokens
    finally:
        room.close()


def _api(url: str, path: str, token: str, bundle: object = None) -> None:
    content = bundle.read_bytes() if bundle is not None else None  # type: ignore[attr-defined]
    response = httpx.post(
        url + path, headers={"Authorization": f"Bearer {token}"}, content=content, timeout=120
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
    yield tab
    context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screens:
    return Screens(request.node.name)


def run_sql(page: Page, url: str, sql: str, epsilon: str) -> None:
    page.goto(f"{url}/ui/console")
    page.fill("#sql", sql)
    page.fill("#sql-epsilon", epsilon)
    page.click("form:has(#sql) button[value=run]")
    expect(page.locator("#result-table")).to_be_visible()


def run_overlap(page: Page, url: str) -> None:
    page.goto(f"{url}/ui/console")
    form = page.locator("#template-overlap")
    form.locator("summary").click()
    for brand in ("filimo", "ofogh", "okala"):
        form.locator(f"input[name='p.parties'][value='{brand}']").check()
    form.locator("input[name=epsilon]").fill("0.3")
    form.locator("button[value=run]").click()
    expect(page.locator("#result-table")).to_be_visible()


def test_the_mark_legend_and_rules_show_in_english_and_persian(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["okala_analyst"])
    run_sql(page, url, NOISY_SQL, EPSILON)
    marks = page.locator("#result-table abbr.noise")
    expect(marks.first).to_be_visible()
    expect(marks.first).to_have_attribute("title", "mostly noise")
    expect(page.locator("#result-table .range").first).to_contain_text("between")
    notes = page.locator("#accuracy-notes")
    expect(notes).to_contain_text("† mostly noise: its 95% error bound is as large as")
    expect(notes).to_contain_text("only the range is known")
    minimum = page.locator("#rules li[data-rule=min_noisy_persons]")
    expect(minimum).to_contain_text("withheld")
    expect(minimum).to_contain_text("minimum of 10 (rule min_noisy_persons)")
    shot(page, "noisy-en")

    run_overlap(page, url)
    join = page.locator("#rules li[data-rule=join_required]")
    expect(join).to_contain_text("(rule join_required)")
    expect(join).to_contain_text("Okala online grocery")  # the party by its display name
    rates = page.locator("#result .cell-rule", has_text="withheld (rule join_required)")
    expect(rates.first).to_be_visible()  # the pairwise rates
    expect(page.locator("#result .cell-rule", has_text="restricted by rule").first).to_be_visible()
    shot(page, "overlap-en")

    page.click("#language button[value=fa]")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
    run_sql(page, url, NOISY_SQL, EPSILON)  # the same question: cached, same numbers
    marks = page.locator("#result-table abbr.noise")
    expect(marks.first).to_be_visible()
    expect(marks.first).to_have_attribute("title", "بیشتر نویز")
    notes = page.locator("#accuracy-notes")
    expect(notes).to_contain_text("† بیشتر نویز")
    minimum = page.locator("#rules li[data-rule=min_noisy_persons]")
    expect(minimum).to_contain_text("min_noisy_persons")
    expect(minimum).to_contain_text("کمینهٔ سیاست، ۱۰ نفر")
    # The SQL's own labels (cities, channels, aliases) are data in English; what the room
    # writes about the numbers is Persian, with Persian digits and nothing else in Latin
    # but the rules' ids.
    for cell in page.locator("#result-table td.num").all_inner_texts():
        assert not re.search(r"[0-9A-Za-z]", cell), cell
    assert PERSIAN_DIGIT.search(page.locator("#result-table").inner_text())
    said = page.locator("#accuracy-notes").inner_text()
    latin = set(re.findall(r"[A-Za-z_]+", said))
    assert latin <= {"min_noisy_persons"} and not re.search(r"[0-9]", said), said
    shot(page, "noisy-fa")

    run_overlap(page, url)
    join = page.locator("#rules li[data-rule=join_required]")
    expect(join).to_contain_text("قاعدهٔ join_required")
    expect(join).to_contain_text("اکالا")
    check_persian(page)
    shot(page, "overlap-fa")
