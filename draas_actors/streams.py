"""Threads of their own for the live streams (``GET /api/status/stream``), so that streams never hold the HTTP workers.

A stream lasts as long as its client listens. On one of waitress's few worker threads, a handful of them would
starve every other request; so the HTTP server's dispatcher hands a stream request's connection to ``start``, which
serves it on a new thread while fewer than ``max_streams`` do (``[stream] maxStreams``). Over that, the request
takes the usual queue and the stream resource, finding no stream slot on its thread (``current``), answers 503 with
Retry-After. The slot is a thread-local set here, not a request header, so a client cannot claim one.

``current`` is also how the stream sees its connection (``Connection``): how many bytes still wait to be sent, to
tell a reader that has stopped taking them. ``stop_all`` (the HTTP server's stop and the control plane's) tells every
stream to end (a stream waits only through ``wait``, which returns at once then) and joins the threads.

``news`` is told of every commit (by the change feed, on the store's thread). Streams poll (api/follow.py says why),
so a change would wait up to 1.5 polls for its readers; a commit after a quiet spell of at least ``quiet_seconds``
wakes every waiting stream at once instead. An operator's lone crash reaches the page in milliseconds, while under a
steady flow of commits no commit is after a quiet spell and the streams keep their spread-out polls: waking them all
together at every commit was what made 200 streams cost the pushing daemon (bench/stream_push.py).
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """``[stream]``: the live stream's heartbeat, how far behind a reader may fall, how many streams may be open."""

    heartbeat_seconds: float = 15.0  # a comment line when nothing else was sent for this long
    max_lag: int = 10_000  # a live reader further behind the head than this many changes is sent overflow, closed
    max_streams: int = 64  # open streams (each a thread and a connection; [server] connectionLimit bounds them too)
    stall_seconds: float = 60.0  # a reader that takes none of the bytes waiting for it for this long is closed
    poll_seconds: float = 0.2  # how often, on average, a stream looks for new changes (api/follow.py says why)


QUIET_SECONDS = 0.2  # a commit after this long without one wakes the waiting streams (see the module docstring)


class Connection(Protocol):
    """What a stream needs to know of its HTTP connection."""

    def unsent(self) -> int:
        """Bytes handed to the server and not yet taken by the client's socket."""

    def connected(self) -> bool: ...


class StreamThreads:
    """The open streams' threads: at most ``max_streams``; thread-safe."""

    def __init__(self, max_streams: int, quiet_seconds: float = QUIET_SECONDS) -> None:
        self.max_streams = max_streams
        self.quiet_seconds = quiet_seconds
        self._last_news = -math.inf
        self._wake = threading.Condition()  # what ``wait`` waits on: ``news`` after a quiet spell, or ``stop_all``
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._local = threading.local()
        self._stopping = threading.Event()
        self._names = itertools.count(1)

    def start(self, connection: Connection, serve: Callable[[], None]) -> bool:
        """Run ``serve`` on a thread of its own, with ``connection`` as its ``current``; False (nothing started)
        when ``max_streams`` threads already run, or while ``stop_all`` is stopping them."""
        with self._lock:
            if len(self._threads) >= self.max_streams or self._stopping.is_set():
                return False
            thread = threading.Thread(
                target=self._run, args=(connection, serve), name=f"draas-stream-{next(self._names)}", daemon=True
            )
            self._threads.add(thread)
        thread.start()
        return True

    def _run(self, connection: Connection, serve: Callable[[], None]) -> None:
        self._local.connection = connection
        try:
            serve()
        except BaseException:
            log.exception("a stream's thread failed")
        finally:
            self._local.connection = None
            with self._lock:
                self._threads.discard(threading.current_thread())

    def current(self) -> Connection | None:
        """The connection this thread streams to; None on a thread that ``start`` did not start."""
        connection: Connection | None = getattr(self._local, "connection", None)
        return connection

    @property
    def open(self) -> int:
        return len(self._threads)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``, or less when ``news`` wakes the streams; True at once when ``stop_all`` is
        stopping them."""
        with self._wake:
            if not self._stopping.is_set():
                self._wake.wait(seconds)
        return self._stopping.is_set()

    @property
    def quiet(self) -> bool:
        """No commit for ``quiet_seconds``: the next one wakes the waiting streams."""
        return time.monotonic() - self._last_news >= self.quiet_seconds

    def news(self) -> None:
        """A commit: wake the waiting streams if it follows a quiet spell (see the module docstring). Cheap when it
        does not (one clock read), as it is called on the store's thread at every commit."""
        now = time.monotonic()
        quiet = now - self._last_news >= self.quiet_seconds
        self._last_news = now
        if quiet and self._threads:
            with self._wake:
                self._wake.notify_all()

    def stop_all(self, timeout: float) -> bool:
        """End every stream and join its thread (within ``timeout`` in all); True when none is left. New streams
        may start again afterwards (a server started again on the same control plane)."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        try:
            deadline = time.monotonic() + timeout
            with self._lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            left = [t.name for t in threads if t.is_alive()]
            if left:
                log.warning("streams still running after %.1f s: %s", timeout, ", ".join(left))
            return not left
        finally:
            self._stopping.clear()


__all__ = ["Connection", "StreamSettings", "StreamThreads"]
