"""One delivery attempt: one POST, bounded in time, no redirect followed, its outcome classified.

The destination is resolved and judged by the SSRF guard first, and the connection goes to the address judged
(never to the name again). The connect timeout bounds opening the connection (and TLS); the total timeout bounds
the whole attempt: each socket operation gets what is left of it, and a peer that drips its answer a byte at a time
is cut off when the total timeout passes (a timer of the attempt's own shuts its socket down), and ``abort``
cuts it off at once when the control plane stops.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .guard import AllowedHosts, Refused, Resolver, resolve
from .retrying import parse_retry_after

DELIVERED, HTTP_ERROR, TIMEOUT, CONNECTION_ERROR, REFUSED = (
    "delivered", "http_error", "timeout", "connection_error", "refused"
)
RETRY_AFTER_STATUSES = (429, 503)
TIMER_NAME = "webhook-attempt-timeout"  # each attempt's timer thread, joined before the attempt returns
MAX_ANSWER_BYTES = 65_536  # what is read of an answer's body (and dropped): enough to keep the connection sane


@dataclass(frozen=True)
class Result:
    outcome: str  # DELIVERED, HTTP_ERROR, TIMEOUT, CONNECTION_ERROR or REFUSED: the metric's label
    status: int | None = None
    retry_after: float | None = None  # seconds, from a 429's or 503's Retry-After
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == DELIVERED


class Sender:
    """Sends one request at a time (a delivery thread's, or an API request's); ``abort`` ends the one in flight."""

    def __init__(
        self,
        allowed: AllowedHosts,
        *,
        connect_timeout: float,
        timeout: float,
        resolver: Resolver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.allowed = allowed
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.resolver = resolver
        self.clock = clock
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._aborted = False

    def abort(self) -> None:
        """End the attempt in flight, if any, from another thread (the control plane is stopping, or the total
        timeout passed): its socket is shut down, which wakes whatever read or write it waits in."""
        with self._lock:
            self._aborted = True
        self._cut()

    def _cut(self) -> None:
        """Shut the socket of the attempt in flight down (the total timeout passed, or ``abort``)."""
        with self._lock:
            connection = self._connection
            if connection is not None and connection.sock is not None:
                with contextlib.suppress(OSError):  # already closed: nothing to cut
                    connection.sock.shutdown(socket.SHUT_RDWR)

    def send(self, url: str, headers: dict[str, str], body: bytes) -> Result:
        parts = urlsplit(url)
        https = parts.scheme.lower() == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if https else 80)
        try:
            addresses = resolve(host, port, self.allowed, self.resolver)
        except Refused as refused:
            return Result(REFUSED, error=str(refused))
        connection_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
        connection = connection_class(host, port, timeout=self.connect_timeout)
        address = addresses[0]
        # Connect to the address the guard judged; TLS still checks the certificate against the name.
        connection._create_connection = (  # type: ignore[attr-defined]
            lambda _address, timeout, source: socket.create_connection((address, port), timeout, source)
        )
        deadline = time.monotonic() + self.timeout
        timers: list[threading.Timer] = []

        def arm() -> None:
            # Started once the request is sent, not before: starting a thread waits for it to run, and on a busy
            # machine that wait would delay the request. Until then the socket timeouts bound each step.
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._cut)
            timer.name, timer.daemon = TIMER_NAME, True
            timers.append(timer)
            timer.start()

        with self._lock:
            if self._aborted:
                return Result(CONNECTION_ERROR, error="the delivery was stopped")
            self._connection = connection
        try:
            return self._attempt(connection, parts.path or "/", parts.query, headers, body, deadline, arm)
        finally:
            for timer in timers:
                timer.cancel()
                timer.join()
            with self._lock:
                self._connection = None
            connection.close()

    def _attempt(
        self, connection: http.client.HTTPConnection, path: str, query: str, headers: dict[str, str], body: bytes,
        deadline: float, arm: Callable[[], None],
    ) -> Result:
        target = f"{path}?{query}" if query else path
        try:
            connection.connect()
            assert connection.sock is not None
            # sendall's timeout bounds the whole send (Python 3.5+), each read's what is left when it starts.
            connection.sock.settimeout(max(0.001, deadline - time.monotonic()))
            connection.request("POST", target, body=body, headers={**headers, "Connection": "close"})
            arm()  # from here a peer that drips its answer is cut off at the deadline
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
        except TimeoutError as error:
            return Result(TIMEOUT, error=f"no answer in time: {error}")
        except (OSError, http.client.HTTPException) as error:
            if time.monotonic() >= deadline:
                return Result(TIMEOUT, error=f"no complete answer within {self.timeout}s")
            return Result(CONNECTION_ERROR, error=f"{type(error).__name__}: {error}")
        status = response.status
        if 200 <= status < 300:
            return Result(DELIVERED, status=status)
        retry_after = (
            parse_retry_after(response.getheader("Retry-After"), self.clock())
            if status in RETRY_AFTER_STATUSES else None
        )
        # A 3xx is a failure like any other: a redirect is never followed (it could point anywhere).
        return Result(HTTP_ERROR, status=status, retry_after=retry_after, error=f"HTTP {status} {response.reason}")


__all__ = [
    "CONNECTION_ERROR",
    "DELIVERED",
    "HTTP_ERROR",
    "REFUSED",
    "TIMEOUT",
    "TIMER_NAME",
    "Result",
    "Sender",
]
