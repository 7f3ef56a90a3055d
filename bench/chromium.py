"""Debian's Chromium, headless, as the dashboard's benchmark and browser tests launch it through Playwright.

Playwright's own browser download is never used (scripts/ensure-chromium.sh installs the Debian package).
"""
from __future__ import annotations

import os

from playwright.sync_api import Browser, Playwright

CHROMIUM = os.environ.get("DRAAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update")


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS))
