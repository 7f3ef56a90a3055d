"""The dashboard in a real browser: Playwright for Python driving Debian's Chromium, headless.

Chromium comes from Debian (scripts/ensure-chromium.sh installs it), never from Playwright's own download. Without
it the browser tests are skipped with the reason, and fail instead with ``CI=true``.
Each test gets a folder of screenshots (``Shots``); when the test fails, its teardown prints the folder's path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from bench.chromium import CHROMIUM, launch

TIMEOUT_MS = 10_000  # any one wait of the page; the tests' own deadlines are shorter where the issue says so


def chromium_or_skip() -> str:
    unavailable = os.environ.get("DRAAS_CHROMIUM_UNAVAILABLE")
    reason = f"no Chromium: {unavailable}" if unavailable else None
    if reason is None and not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM}; run scripts/ensure-chromium.sh"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Chromium: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@dataclass
class Shots:
    """Where a test's screenshots go."""

    folder: Path

    def take(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    chromium_or_skip()
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium_or_skip()
    launched = launch(playwright)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh profile per test: no cookie carries over."""
    opened = browser.new_context(viewport={"width": 1400, "height": 900})
    opened.set_default_timeout(TIMEOUT_MS)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Iterator[Shots]:
    folder = Path(tempfile.mkdtemp(prefix="draas-dashboard-shots-"))
    failed_before = request.session.testsfailed
    yield Shots(folder)
    # The call's report is logged before teardown: a failure of this test has been counted by now.
    if request.session.testsfailed > failed_before:
        print(f"\ndashboard screenshots of {request.node.name}: {folder}")


def sign_in(page: Page, base_url: str, key: str) -> None:
    """The sign-in form, as an operator fills it in: the key field is a password input."""
    page.goto(base_url + "/ui")
    page.wait_for_url("**/ui/signin")
    field = page.get_by_label("Operator API key")
    assert field.get_attribute("type") == "password"
    field.fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui")
    page.wait_for_selector("#connection[data-state='live']")


__all__ = ["Shots", "browser", "chromium_or_skip", "context", "playwright", "shots",
           "sign_in"]
