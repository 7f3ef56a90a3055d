"""waitress's I/O loop does not poll a connection for "writable" while a worker holds its output lock: the worker
flushes what it writes itself, and the poll only spun the loop (12-18 times a push under load)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import requests

from draas_actors.api.admission import AdmittedChannel
from draas_actors.api.server import HttpServer
from tests.helpers import wait_until


def test_a_connection_is_not_writable_for_the_loop_while_its_worker_holds_the_output_lock() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.set()
        release.wait(5.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    server = HttpServer(slow, host="127.0.0.1", port=0, threads=2)
    answers: list[str] = []
    client = threading.Thread(
        target=lambda: answers.append(requests.get(f"http://127.0.0.1:{server.port}/", timeout=10).text)
    )
    server.start()
    try:
        client.start()
        assert entered.wait(5.0)
        (channel,) = [c for c in list(server._server._map.values()) if isinstance(c, AdmittedChannel)]
        wait_until(lambda: bool(channel.requests), 5.0, 0.01, "the request is being served")

        held, done = threading.Event(), threading.Event()

        def worker_writing() -> None:  # another thread, as the worker is (the lock is reentrant)
            with channel.outbuf_lock:
                held.set()
                done.wait(5.0)

        writer = threading.Thread(target=worker_writing)
        writer.start()
        channel.total_outbufs_len += 1  # something is buffered
        try:
            assert held.wait(5.0)
            assert not channel.writable()
            done.set()
            writer.join(5.0)
            assert channel.writable()  # unlocked and buffered: waitress's own answer
        finally:
            done.set()
            writer.join(5.0)
            channel.total_outbufs_len -= 1

        release.set()
        client.join(10.0)
        assert answers == ["hello"]
    finally:
        release.set()
        server.stop(timeout=5.0)
        client.join(5.0)
