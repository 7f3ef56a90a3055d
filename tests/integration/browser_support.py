"""The dashboard in a real browser: Playwright for Python driving Debian's Chromium, headless.

Chromium comes from Debian (scripts/ensure-chromium.sh installs it), never from Playwright's own download. Without
it the browser tests are skipped with the reason, and fail instead with ``CI=true``.
Each test gets a folder of screenshots (``Shots``); when the test fails, its teardown prints the folder's path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of the control plane whose open connections a test can cut, as a network
    drop would: the page's stream breaks and the browser reconnects. It keeps the first bytes of each request."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._start(self._accept)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue  # a look at _closing: closing the listener does not wake a blocked accept()
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            self._start(self._pump, client, upstream, True)
            self._start(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, from_browser: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_browser:
                    self.requests.append(data[:2048])
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _close(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        """Close every open connection, both ways."""
        with self._lock:
            opened = list(self._open)
        self._close(*opened)

    def stop(self) -> None:
        self._closing = True
        self._threads[0].join(timeout=5)  # the accept loop: no connection opens after it
        self.listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)
        assert not any(t.is_alive() for t in self._threads), "a proxy thread outlived the proxy"


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


__all__ = ["CuttableProxy", "Shots", "browser", "chromium_or_skip", "context", "playwright", "shots",
           "sign_in"]
