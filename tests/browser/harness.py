"""What the browser tests share: a live room with data, Chromium, sign-in, screenshots.

Chromium is Debian's (``/usr/bin/chromium``), never a downloaded build: CI
installs it with apt (``.ci/run``). Every page a test visits is saved as a
full-page PNG under ``tests/browser/artifacts/`` (ignored by git); with
``CLEANROOM_UPDATE_SCREENSHOTS=1`` the named ones are also written, at a laptop's
viewport, to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 850}
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DOCS = ROOT / "docs" / "screenshots"


class Screens:
    """Saves a screenshot of every page visited (and the README's, when asked)."""

    def __init__(self, test: str) -> None:
        self.test = re.sub(r"[^a-z0-9_]+", "_", test.lower())
        self.count = 0
        self.update_docs = os.environ.get("CLEANROOM_UPDATE_SCREENSHOTS") == "1"
        ARTIFACTS.mkdir(exist_ok=True)

    def __call__(self, page: Page, name: str, *, docs: str | None = None) -> None:
        self.count += 1
        page.screenshot(path=ARTIFACTS / f"{self.test}-{self.count:02d}-{name}.png", full_page=True)
        if docs and self.update_docs:
            target = DOCS / f"{docs}.png"  # "fa/dashboard": the Persian set, beside the English
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=target, full_page=False)


def sign_in(page: Page, url: str, token: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(f"{url}/ui/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/($|\?)"))


def sign_out(page: Page) -> None:
    """Sign out with the header's button."""
    page.click("#signout")
    page.wait_for_url(re.compile(r".*/ui/signin"))
