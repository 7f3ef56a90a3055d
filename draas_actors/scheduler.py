"""One timer thread for the whole system: pykka has no timers, and a thread per timer would not scale."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any

import pykka

log = logging.getLogger(__name__)

# A lock cannot wait 1e300 s (OverflowError kills the thread); waking hourly to look at the heap again costs nothing.
_MAX_WAIT = 3600.0


class Scheduler:
    """Tells ``message`` to an actor after a delay. Cancelling is by handle."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, pykka.ActorRef[Any], Any]] = []
        self._pending: set[int] = set()  # handles still in the heap and not cancelled
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="draas-scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> int:
        handle = next(self._ids)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), handle, ref, message))
            self._pending.add(handle)
            self._cond.notify()
        return handle

    def cancel(self, handle: int) -> None:
        """Cancel a pending call; a handle that already fired (or never existed) is ignored, so nothing piles up."""
        with self._cond:
            self._pending.discard(handle)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(None if timeout is None else min(timeout, _MAX_WAIT))
                if self._stopped:
                    return
                _, handle, ref, message = heapq.heappop(self._heap)
                if handle not in self._pending:
                    continue  # cancelled
                self._pending.discard(handle)
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                log.debug("timer for a stopped actor dropped: %r", message)
