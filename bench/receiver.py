"""A webhook receiver on 127.0.0.1, for the benchmarks and the tests: records each request with its arrival time,
answers as told (a status and headers per request), or holds requests unanswered until released (an endpoint that
never answers, or one that is mid-delivery when the control plane is killed).

Each request is served on a thread of its own, joined when the receiver stops (held ones are released first).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_HOLD = 60.0  # seconds a held request waits at most (a receiver never outlives its test by more)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when the body was read


Answer = Callable[[Received], tuple[int, dict[str, str]]]


def accept(received: Received) -> tuple[int, dict[str, str]]:
    return 204, {}


class Receiver:
    def __init__(self, answer: Answer = accept, *, hold: bool = False) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = Received({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with receiver._cond:
                    receiver.received.append(got)
                    receiver._cond.notify_all()
                receiver._released.wait(MAX_HOLD)
                status, headers = receiver.answer(got)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.block_on_close = True  # server_close joins the request threads
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def release(self) -> None:
        """Answer the held requests, and every later one at once."""
        self._released.set()

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self._thread.join(5.0)
        self.server.server_close()

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """The first ``count`` requests, waiting up to ``timeout`` seconds for them; fewer when they did not come."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.received[:count])


@contextmanager
def receiving(answer: Answer = accept, *, hold: bool = False) -> Iterator[Receiver]:
    receiver = Receiver(answer, hold=hold).start()
    try:
        yield receiver
    finally:
        receiver.stop()


__all__ = ["Answer", "Received", "Receiver", "accept", "receiving"]
