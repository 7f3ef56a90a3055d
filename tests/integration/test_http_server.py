"""The HTTP server wrapper: a stopped server leaves nothing running behind it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import requests

from draas_actors.api.server import HttpServer
from tests.helpers import wait_until


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def server_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("waitress") or t.name == "draas-http"}


def test_stopping_the_server_ends_its_loop_and_every_worker_thread() -> None:
    before = server_threads()
    server = HttpServer(hello, host="127.0.0.1", port=0, threads=4).start()
    try:
        with requests.Session() as session:  # a keep-alive connection is still open when the server stops
            assert session.get(f"http://127.0.0.1:{server.port}/", timeout=5).text == "hello"
            assert len(server_threads() - before) >= 4
            server.stop(timeout=5.0)
    finally:
        server.stop(timeout=5.0)
    wait_until(lambda: not (server_threads() - before), 5.0, 0.02, "every server thread has ended")


def test_a_request_in_flight_when_the_server_stops_is_answered_and_nothing_fails_in_a_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.set()
        release.wait(5.0)
        return hello(environ, start_response)

    server = HttpServer(slow, host="127.0.0.1", port=0, threads=2).start()
    answers: list[int] = []
    client = threading.Thread(
        target=lambda: answers.append(requests.get(f"http://127.0.0.1:{server.port}/", timeout=10).status_code)
    )
    try:
        client.start()
        assert entered.wait(5.0)
        stopping = threading.Thread(target=server.stop, kwargs={"timeout": 5.0})
        stopping.start()
        threading.Timer(0.2, release.set).start()  # the request finishes while the server is stopping
        stopping.join(10.0)
        client.join(10.0)
    finally:
        release.set()
        server.stop(timeout=5.0)

    assert answers == [200]
    # A worker that answered after its loop's sockets were closed logged "Exception when servicing" (EBADF).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
