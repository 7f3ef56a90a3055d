"""Delivery of status events to one in-process subscriber, off the bus's thread.

Each subscriber gets a bounded queue and a thread: a slow subscriber only fills its own queue (the oldest
events are dropped and counted), and one that raises is logged and counted, never able to stall or kill the bus.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from .messages import StatusChanged, SubscriptionFilter

log = logging.getLogger(__name__)


class Subscriber:
    def __init__(
        self,
        subscription_id: int,
        callback: Callable[[StatusChanged], None],
        event_filter: SubscriptionFilter,
        queue_size: int,
    ) -> None:
        self.subscription_id = subscription_id
        self.filter = event_filter
        self.failed = 0
        self._callback = callback
        self._queue: collections.deque[StatusChanged] = collections.deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._closed = False
        self._drain = False
        self._thread = threading.Thread(
            target=self._run, name=f"draas-subscriber-{subscription_id}", daemon=True
        )
        self._thread.start()

    def offer(self, event: StatusChanged) -> None:
        if not self.filter.matches(event):
            return
        with self._cond:
            self._queue.append(event)  # full: the deque (maxlen) drops the oldest event, a slow subscriber lags
            self._cond.notify()

    def close(self, *, drain: bool = False) -> None:
        """Stop delivering; with ``drain``, first deliver what is already queued."""
        with self._cond:
            self._closed = True
            self._drain = drain
            self._cond.notify()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not (self._drain and self._queue):
                    return
                event = self._queue.popleft()
            try:
                self._callback(event)
            except Exception:
                self.failed += 1
                if self.failed <= 10 or self.failed % 1000 == 0:
                    log.exception("subscriber %d failed (%d failures)", self.subscription_id, self.failed)


class Subscriptions:
    """The subscriber table; it outlives any one bus actor, so a restarted bus keeps its subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next_id = 1
        self._subscribers: dict[int, Subscriber] = {}

    def add(
        self, callback: Callable[[StatusChanged], None], event_filter: SubscriptionFilter, queue_size: int
    ) -> int:
        with self._lock:
            subscription_id = self._next_id
            self._next_id += 1
            self._subscribers[subscription_id] = Subscriber(
                subscription_id, callback, event_filter, queue_size
            )
        return subscription_id

    def publish(self, event: StatusChanged) -> None:
        for subscriber in list(self._subscribers.values()):
            subscriber.offer(event)

    def close_all(self, timeout: float = 2.0) -> None:
        """Close every subscriber, giving them up to ``timeout`` in all to deliver what is queued.

        At shutdown the last changes (an instance's ``Stopping -> Stopped``) may still be queued; dropping
        them would lose run.py's log lines for them.
        """
        with self._lock:
            subscribers, self._subscribers = list(self._subscribers.values()), {}
        for subscriber in subscribers:
            subscriber.close(drain=True)
        deadline = time.monotonic() + timeout
        for subscriber in subscribers:
            subscriber.join(max(0.0, deadline - time.monotonic()))
