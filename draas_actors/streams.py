"""Threads of their own for the live streams (``GET /api/status/stream``), so that streams never hold the HTTP workers.

A stream lasts as long as its client listens. On one of waitress's few worker threads, a handful of them would
starve every other request; so the HTTP server's dispatcher hands a stream request's connection to ``start``, which
serves it on a new thread while fewer than ``max_streams`` do (``[stream] maxStreams``). Over that, the request
takes the usual queue and the stream resource, finding no stream slot on its thread (``current``), answers 503 with
Retry-After. The slot is a thread-local set here, not a request header, so a client cannot claim one.

``current`` is also how the stream sees its connection (``Connection``): how many bytes still wait to be sent, to
tell a reader that has stopped taking them. ``stop_all`` (the HTTP server's stop and the control plane's) tells every
stream to end (a stream waits only through ``wait``, which returns at once then) and joins the threads.
"""

from __future__ import annotations

import itertools
import logging
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


class Connection(Protocol):
    """What a stream needs to know of its HTTP connection."""

    def unsent(self) -> int:
        """Bytes handed to the server and not yet taken by the client's socket."""

    def connected(self) -> bool: ...


class StreamThreads:
    """The open streams' threads: at most ``max_streams``; thread-safe."""

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
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
        """Wait up to ``seconds``; True at once when ``stop_all`` is stopping the streams."""
        return self._stopping.wait(seconds)

    def stop_all(self, timeout: float) -> bool:
        """End every stream and join its thread (within ``timeout`` in all); True when none is left. New streams
        may start again afterwards (a server started again on the same control plane)."""
        self._stopping.set()
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
