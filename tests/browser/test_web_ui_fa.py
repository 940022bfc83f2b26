"""The web UI in Persian, in a real browser: every page right-to-left, translated, Persian-dated.

A room whose default language is Persian (setting ``language: fa``) serves
every page a person of each role can reach; on each one the browser checks
``<html lang="fa" dir="rtl">``, that numbers are in Persian digits, that
dates are Solar Hijri (in the room's time zone, Asia/Tehran), and that no
user-visible text is left in English (:func:`untranslated`). A person who
switches to English keeps that choice across sign-outs, while others keep
the room's default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from cleanroom.i18n import translations
from cleanroom.room.auth import Role
from cleanroom.room.config import load_settings
from cleanroom.room.state import Room
from tests.browser.harness import CHROMIUM, VIEWPORT, Screens, sign_in, sign_out
from tests.system.world import LiveServer, World, build_group

pytestmark = pytest.mark.browser

REPORTS = {
    "overlap-weekly": {
        "title": "هم‌پوشانی هفتگی برندها",
        "recipients": ["okala", "reviewers"],
        "sections": [
            {"template": "overlap", "params": {"parties": "filimo,ofogh,okala"}, "epsilon": 0.2}
        ],
    }
}
PERSIAN_DIGIT = re.compile(r"[۰-۹]")
# A Solar Hijri date as the pages write it: ۱۴۰۵/۰۹/۱۱ (years 1300-1499 in Persian digits).
JALALI = re.compile(r"۱[۳۴][۰-۹]{2}/[۰-۱][۰-۹]/[۰-۳][۰-۹]")

# Every text node a person reads, except what is data rather than interface: user and
# party input, identifiers and code (bdi, code, pre, textarea, input values, .data),
# and messages the room marks as English (lang="en": server errors and rule texts).
VISIBLE_TEXT = """
() => {
  const skip = (el) => el.closest(
    'script, style, code, pre, textarea, bdi, .data, [lang="en"], datalist, option[value=""]');
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || skip(el)) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const text = node.textContent.trim();
    if (text) out.push(text);
  }
  for (const el of document.querySelectorAll('[aria-label]')) {
    if (!skip(el)) out.push(el.getAttribute('aria-label'));
  }
  return out;
}
"""


def kept_latin() -> set[str]:
    """Latin words the Persian catalog itself keeps (SQL, YAML, PNG, MAC…): not untranslated."""
    catalog = translations("fa")._catalog
    words: set[str] = set()
    for text in catalog.values():
        words.update(re.findall(r"[A-Za-z][A-Za-z0-9_.]*", str(text)))
    return words


KEPT = kept_latin()


def untranslated(page: Page) -> list[str]:
    """Visible interface text with a Latin word the Persian catalog does not use, or with
    ASCII digits (a number of the interface not written in Persian digits)."""
    found = []
    for text in page.evaluate(VISIBLE_TEXT):
        words = re.findall(r"[A-Za-z][A-Za-z0-9_.]*", text)
        rest = re.sub(r"[A-Za-z][A-Za-z0-9_.]*", "", text)
        if any(w not in KEPT for w in words) or re.search(r"[0-9]", rest):
            found.append(text)
    return found


def check_persian(page: Page, *, dated: bool = True, numbered: bool = True) -> None:
    """The page is Persian: rtl, Persian digits, Solar Hijri dates, nothing left in English."""
    html = page.locator("html")
    expect(html).to_have_attribute("lang", "fa")
    expect(html).to_have_attribute("dir", "rtl")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    font = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Vazirmatn" in font, font
    text = page.locator("main").inner_text()
    if numbered:
        assert PERSIAN_DIGIT.search(text), "no Persian digit on the page"
    if dated:
        assert JALALI.search(text), "no Solar Hijri date on the page"
        # No Gregorian date outside the reviewer's "(2026-12-01)" beside a Solar Hijri one.
        bare = re.sub(r"\([۰-۹]{4}-[۰-۹]{2}-[۰-۹]{2}\)", "", text)
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", bare), "a Gregorian ASCII date"
    left = untranslated(page)
    assert not left, f"untranslated on {page.url}: {left}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_group(
        tmp_path_factory.mktemp("browser-fa"), persons=2_000, seed=29, reports=REPORTS
    )


@pytest.fixture(scope="module")
def live(world: World) -> Iterator[tuple[str, dict[str, str]]]:
    settings = load_settings(
        world.room_dir,
        environment="development",
        web_secure_cookies=False,
        scheduler=False,
        language="fa",
        timezone="Asia/Tehran",
    )
    room = Room(settings)
    tokens = {**world.tokens, "bob": room.users.add("reviewer-bob", Role.reviewer)[1]}
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
    yield tab
    context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Screens:
    return Screens(request.node.name)


def test_a_reviewer_reads_and_changes_the_policy_in_persian(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    page.goto(f"{url}/ui/signin")
    check_persian(page, dated=False, numbered=False)
    shot(page, "signin", docs="fa/signin")
    sign_in(page, url, tokens["reviewer"])
    check_persian(page)  # the dashboard: budgets reset on a Solar Hijri date
    expect(page.locator("nav")).to_contain_text("پیشخوان")
    page.click("nav >> text=سیاست")
    check_persian(page)
    shot(page, "policy", docs="fa/policy")
    page.click("#propose-new")
    check_persian(page, dated=False)
    doc = yaml.safe_load(page.input_value("#yaml"))
    doc["privacy"]["budget"]["epsilon"] = 12.0
    doc["privacy"]["min_noisy_persons"] = 5
    page.fill("#yaml", yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    page.fill("#comment", "سهم بیشتر برای کارزار پاییز")
    page.click("#propose")
    expect(page.locator("#done")).to_contain_text("پیشنهاد شد")
    expect(page.locator("#two-person")).to_contain_text("قاعدهٔ دو نفر")
    check_persian(page)
    shot(page, "proposed", docs="fa/policy-review")
    version = page.url.split("?")[0].rsplit("/", 1)[-1]
    page.goto(f"{url}/ui/policies/diff?from=1&to={version}")
    check_persian(page, dated=False)
    sign_out(page)


def test_b_an_analyst_runs_a_template_in_persian(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["okala_analyst"])
    check_persian(page)
    shot(page, "dashboard", docs="fa/dashboard")
    expect(page.locator("#budgets")).to_contain_text("اکالا")  # the brand's Persian name
    page.click("nav >> text=میز پرسش")
    check_persian(page)
    form = page.locator("#template-overlap")
    form.locator("summary").click()
    form.locator("input[name=epsilon]").fill("0.4")
    form.locator("button[value=run]").click()
    chart = page.locator("#result img.chart")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 0
    expect(chart).to_have_attribute("alt", re.compile("در هر گروه"))  # from the catalog
    expect(page.locator("#epsilon-spent")).to_have_text("۰٫۴")
    cells = page.locator("#result-table td.num")
    assert cells.count() > 0
    assert all(PERSIAN_DIGIT.search(t) and "±" in t for t in cells.all_inner_texts())
    check_persian(page)
    shot(page, "result", docs="fa/console-result")
    page.fill("#sql", "SELECT person, city FROM okala.orders")
    page.click("form:has(#sql) button[value=run]")
    expect(page.locator("#refusal")).to_contain_text("پرسش رد شد")
    # The room's own sentence is Persian too (not only its heading), the query's
    # pieces in <bdi>; the rule's id stays as scripts read it.
    reason = page.locator("#refusal span[dir=auto]")
    expect(reason).to_have_attribute("lang", "fa")
    expect(reason).to_contain_text("آشکار")
    expect(reason.locator("bdi.data").first).to_be_visible()
    check_persian(page)
    shot(page, "refused", docs="fa/console-refused")
    page.goto(f"{url}/ui/audit")  # not for an analyst: the error page, in Persian
    expect(page.locator("h1")).to_have_text("برای نقش شما نیست")
    check_persian(page, dated=False)


def test_c_reports_and_audit_in_persian(
    page: Page, live: tuple[str, dict[str, str]], shot: Screens
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["reporter"])
    page.click("nav >> text=گزارش‌ها")
    check_persian(page, dated=False)  # no run yet: nothing dated
    shot(page, "reports", docs="fa/reports")
    page.click("text=هم‌پوشانی هفتگی برندها")
    check_persian(page, dated=False)
    page.click("#run-now")
    expect(page.locator("h1 .badge")).to_have_text("انجام‌شده")
    check_persian(page)
    report = page.frame_locator("iframe.report")
    expect(report.locator("html")).to_have_attribute("dir", "rtl")
    expect(report.locator("body")).to_contain_text("افراد")
    shot(page, "report-run", docs="fa/report-run")
    page.goto(f"{url}/ui/reports/overlap-weekly")
    check_persian(page)
    sign_out(page)

    sign_in(page, url, tokens["reviewer"])
    page.click("nav >> text=ممیزی")
    expect(page.locator("#chain")).to_contain_text("زنجیره تأیید شد")
    check_persian(page)
    # Reviewers compare with other records: the Gregorian date stands beside the Solar Hijri.
    first = page.locator("#entries tbody tr td time").first
    stamp = first.get_attribute("datetime") or ""
    assert stamp[:10].translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")) in first.inner_text()
    shot(page, "audit", docs="fa/audit")


def test_d_the_language_choice_is_kept_per_person(
    page: Page, live: tuple[str, dict[str, str]]
) -> None:
    url, tokens = live
    sign_in(page, url, tokens["bob"])
    expect(page.locator("html")).to_have_attribute("lang", "fa")  # the room's default
    page.click("#language button[value=en]")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    expect(page.locator("nav")).to_contain_text("Dashboard")
    page.click("nav >> text=Policy")
    sign_out(page)
    sign_in(page, url, tokens["bob"])  # a new session: the choice was kept server-side
    expect(page.locator("html")).to_have_attribute("lang", "en")
    sign_out(page)
    sign_in(page, url, tokens["reviewer"])  # someone else still reads the room's default
    expect(page.locator("html")).to_have_attribute("lang", "fa")
    page.click("#language button[value=fa]")
    expect(page.locator("html")).to_have_attribute("lang", "fa")
