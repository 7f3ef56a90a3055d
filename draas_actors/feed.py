"""The committed change feed: the newest changes the store has committed, in cursor order, for the readers that
follow the change log live (the SSE stream, webhooks).

The bus's subscribers hear a change before it is committed, and a store that dies before its commit loses the
change while the bus goes on counting: a cursor such a subscriber saw may never be in the log. A reader that hands
cursors to clients as resume points (``Last-Event-ID``, a webhook's delivered cursor) must see only what the log
holds, so it reads here: the store appends each commit's changes after the commit, from its own thread, and the
readers wait on this object, never on an actor. A reader too far behind for what is kept in memory is told so
(``Behind``) and reads the durable log instead (``ControlPlane.changes``); every change held here is also there, so
that read always makes progress and the reader comes back here once it has caught up.

Thread-safe; ``committed`` costs the store one lock and a list extend, whatever the readers do.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .messages import StatusChanged

DEFAULT_CAPACITY = 10_000  # changes kept in memory; a reader further behind reads the durable log


@dataclass(frozen=True)
class Behind:
    """The changes after the reader's cursor start before the oldest one held in memory: read the durable log
    from that cursor (a page at a time), then come back."""

    oldest: int  # the cursor of the oldest change held; 0 when none is


class ChangeFeed:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._cond = threading.Condition()
        self._changes: list[StatusChanged] = []  # ascending cursors; trimmed to capacity when twice as long
        self._head = 0  # the newest committed cursor
        self._closed = False
        self._listeners: list[Callable[[], None]] = []

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the store's thread, so it must be quick and never block) after every commit."""
        self._listeners.append(callback)

    @property
    def head(self) -> int:
        """The cursor of the newest committed change (0: none yet)."""
        return self._head

    @property
    def closed(self) -> bool:
        return self._closed

    def started(self, head: int) -> None:
        """A store (re)started over a log whose newest committed cursor is ``head``."""
        with self._cond:
            if head < self._head:
                # Another store under us (replaced or restored): what is held is not in this log.
                self._changes = []
            self._head = head
            self._cond.notify_all()

    def committed(self, changes: Sequence[StatusChanged]) -> None:
        """The store committed ``changes`` (ascending cursors, all after the head)."""
        if not changes:
            return
        with self._cond:
            self._changes.extend(c for c in changes if c.cursor > self._head)
            if len(self._changes) > 2 * self.capacity:
                del self._changes[: len(self._changes) - self.capacity]
            self._head = max(self._head, changes[-1].cursor)
            self._cond.notify_all()
        for callback in self._listeners:
            callback()

    def after(self, cursor: int, limit: int, timeout: float) -> list[StatusChanged] | Behind:
        """Up to ``limit`` committed changes after ``cursor``, in cursor order, waiting up to ``timeout`` seconds
        for the first; an empty list when none came (or the feed was closed), ``Behind`` when they must be read
        from the durable log."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._head <= cursor and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)
            if self._closed or self._head <= cursor:
                return []
            held = self._changes
            start = len(held) - min(len(held), self.capacity)  # only the newest ``capacity`` count as held
            if start >= len(held) or held[start].cursor > cursor + 1:
                # Changes after ``cursor`` may precede what is held (the log has them); a gap in the cursors
                # (lost with a store that died before its commit) lands here too, and the log read steps over it.
                return Behind(held[start].cursor if start < len(held) else 0)
            first = bisect.bisect_right(held, cursor, lo=start, key=_cursor)
            if first == len(held):
                # The head moved past what is held without a commit through here (a store started over a log
                # whose head is only a pruning mark): the log says there is nothing to read.
                return Behind(held[start].cursor)
            return held[first:first + limit]

    def close(self) -> None:
        """Wake every waiting reader, for good: the control plane is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


LogReader = Callable[[int, int], Sequence[StatusChanged]]
"""(after, limit) -> up to ``limit`` committed changes after ``after`` from the durable log, in cursor order."""


def next_changes(
    feed: ChangeFeed, read_log: LogReader, cursor: int, limit: int, timeout: float
) -> tuple[Sequence[StatusChanged], int]:
    """The next changes after ``cursor`` (from memory, or from the log when the feed says ``Behind``) and the
    cursor to continue from. Whatever ``read_log`` raises (a cursor pruned by retention) is the caller's."""
    got = feed.after(cursor, limit, timeout)
    if not isinstance(got, Behind):
        return got, got[-1].cursor if got else cursor
    head = feed.head  # read before the log: every change up to it is committed, so the log holds it
    page = read_log(cursor, limit)
    if page:
        return page, page[-1].cursor
    return (), max(cursor, head)  # nothing in the log up to ``head`` after ``cursor``: continue from there


def _cursor(change: StatusChanged) -> int:
    return change.cursor


__all__ = ["DEFAULT_CAPACITY", "Behind", "ChangeFeed", "LogReader", "next_changes"]
