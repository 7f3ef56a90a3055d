"""One live stream's loop: follow the committed change log from a cursor and frame what a client should see as SSE.

Everything comes from the committed log (``ControlPlane.next_changes``: memory while the reader keeps up, the durable
log when it is behind), so replay and live are one read in cursor order, with no duplicate and no hole at the seam.

What a reader sees besides the changes:
- ``gap`` (``id``: the cursor retention pruned through, ``data``: the oldest cursor still kept) when retention pruned
  what follows its cursor; it goes on from there.
- ``reset`` (``id``: the head, ``data``: ``{"storeId", "cursor"}``) when its cursor is from another store (a cursor
  past the head, or a ``storeId`` that is not this store's); it goes on live from the head.
- ``overflow`` (``data``: ``{"behind", "maxLag"}``), and the end of the response, when it fell more than ``max_lag``
  changes behind the head while bytes wait for it, after it had caught up once (a replay is behind by design and is
  paced by the reader; a burst the stream has not written yet is not the reader's lag), or took none of the bytes
  waiting for it for ``stall_seconds``. It resumes with its last id.
- a ``: heartbeat`` comment when nothing else was sent for ``heartbeat_seconds``.

How a stream waits: it polls, unless a commit after a quiet spell wakes it at once (``StreamThreads.news``). Each looks
at the feed's head (one attribute, no lock) every ``poll_seconds`` or so, and reads what is new in one page, written in
one go. Waiting on the feed instead woke every stream at every commit, all at once, and they all ran while the daemon's
push waited for its commit: with 200 streams its median push went from 1.3 ms to 14 ms (bench/stream_push.py). Polling
with jitter spreads the streams' turns over time and batches a stream's writes, for a delivery delay of at most 1.5 x
``poll_seconds`` ([stream] pollSeconds, 0.2 s) and a few wake-ups a second per idle stream. A longer poll costs the
daemons less (bench/stream_push.py, 200 streams, three runs each): at 0.1 s control-plane CPU per push went from 0.8 ms
to 1.6-2.2 ms and the p99 ratio was 1.29-2.09x; at 0.2 s, from 0.84 ms to 1.29-1.35 ms, and 1.03-1.52x.

How far behind a reader is: bytes the server holds for it (``Connection.unsent``) are not taken, so the newest
change it has taken is the last one written before those bytes. The loop stops writing while more than
``BUFFER_BYTES`` wait (well below waitress's 16 MiB high-water mark, where a write would block this thread), so a
slow reader costs at most that much memory and never blocks its thread; the changes it has not taken stay in the log.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import Conflict, CursorExpired, Unavailable
from ..messages import StatusChanged, SubscriptionFilter
from ..streams import Connection, StreamSettings
from ..wire import change_view
from . import sse

BUFFER_BYTES = 1 << 20  # unsent bytes past which a stream waits for its reader instead of writing more
PAGE = 500  # changes read at a time
PAUSE_SECONDS = 0.05  # how often a stream whose reader is behind looks whether it has taken its bytes
STATUS_CHANGED = "StatusChanged"

NextChanges = Callable[[int, int, float], tuple[Sequence[StatusChanged], int]]


def jitter() -> float:
    """A factor for the poll: give or take half of it, so that streams opened together do not look together."""
    return random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Source:
    """Where a stream reads (the control plane's committed log and feed) and when it must end."""

    next_changes: NextChanges  # ControlPlane.next_changes
    head: Callable[[], int]  # the newest committed cursor
    ended: Callable[[], bool]  # the feed is closed or the streams are being stopped
    wait: Callable[[float], object]  # wait up to so many seconds, or less when the streams are being stopped
    render: Callable[[StatusChanged], bytes]  # a change's event (EventCache.render)
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = jitter  # times poll_seconds until the next look for new changes


@dataclass(frozen=True, kw_only=True)
class Start:
    """Where a stream starts: after ``cursor``; ``reset`` first tells the reader its cursor was another store's."""

    cursor: int
    store_id: str
    reset: bool = False


class Follower:
    def __init__(
        self, source: Source, connection: Connection, start: Start, event_filter: SubscriptionFilter,
        settings: StreamSettings,
    ) -> None:
        self.source = source
        self.connection = connection
        self.start = start
        self.filter = event_filter
        self.settings = settings

    def __iter__(self) -> Iterator[bytes]:
        s = self.settings
        clock = self.source.clock
        cursor = self.start.cursor
        written = 0  # bytes yielded so far
        marks: deque[tuple[int, int]] = deque()  # (bytes written through, cursor written through), oldest first
        taken = cursor  # the newest cursor whose bytes the reader has taken
        everything = self.filter == SubscriptionFilter()
        # Opened at the head, or once the reader took everything up to it: from then on, lag is an overflow.
        live = cursor >= self.source.head()
        now = clock()
        last_write = last_progress = now
        last_sent = 0

        def written_through(chunk: bytes) -> bytes:
            nonlocal written, last_write
            written += len(chunk)
            marks.append((written, cursor))
            last_write = clock()
            return chunk

        # The headers go out with the first bytes: a client knows at once that the stream is open.
        yield written_through(sse.comment(f"stream of store {self.start.store_id} after cursor {cursor}"))
        if self.start.reset:
            yield written_through(sse.event("reset", {"storeId": self.start.store_id, "cursor": cursor}, cursor))
        while not self.source.ended() and self.connection.connected():
            now = clock()
            unsent = self.connection.unsent()
            sent = written - unsent
            while marks and marks[0][0] <= sent:
                taken = marks.popleft()[1]
            if unsent == 0 or sent != last_sent:
                last_sent, last_progress = sent, now
            head = self.source.head()
            live = live or taken >= head
            behind = head - taken
            if (live and unsent and behind > s.max_lag) or now - last_progress >= s.stall_seconds:
                yield sse.event("overflow", {"behind": behind, "maxLag": s.max_lag})
                return
            if unsent >= BUFFER_BYTES:
                self.source.wait(PAUSE_SECONDS)
                continue
            if cursor > head:
                # The log moved under the stream (a store replaced or restored): the cursor is not this log's.
                cursor = head
                yield written_through(sse.event("reset", {"storeId": self.start.store_id, "cursor": cursor}, cursor))
                continue
            if cursor == head:
                marks.append((written, cursor))  # what the filter left out counts as taken once the rest is
                due = last_write + s.heartbeat_seconds - now
                if due <= 0 and not unsent:  # bytes still waiting for the reader say as much as a heartbeat
                    yield written_through(sse.comment("heartbeat"))
                    continue
                # Nothing new: look again a poll later (see the module docstring), or at the heartbeat.
                poll = s.poll_seconds * self.source.jitter()
                self.source.wait(min(poll, due) if due > 0 else poll)
                continue
            try:
                changes, cursor_after = self.source.next_changes(cursor, PAGE, 0.0)
            except CursorExpired as expired:
                cursor = max(cursor, expired.pruned_through)
                yield written_through(sse.event("gap", expired.pruned_through + 1, cursor))
                continue
            except Conflict:
                cursor = self.source.head()
                yield written_through(sse.event("reset", {"storeId": self.start.store_id, "cursor": cursor}, cursor))
                continue
            except Unavailable:
                return  # the store does not answer: the reader reconnects with its last id
            render = self.source.render
            events = b"".join([render(c) for c in changes] if everything else
                              [render(c) for c in changes if self.filter.matches(c)])
            cursor = max(cursor, cursor_after)
            if events:
                yield written_through(events)
            if len(changes) < PAGE:
                # Caught up: let the next changes gather for a poll, and carry them in one write.
                self.source.wait(s.poll_seconds * self.source.jitter())


class EventCache:
    """Each change's event bytes, made once for every stream: formatting a change per stream was most of what 200
    streams cost the pushing daemon (bench/stream_push.py). A change is known by its cursor and its identity: the
    feed hands every stream the same objects, and a replaced store's change under a reused cursor is another object.
    Bounded: when full it starts afresh."""

    def __init__(self, size: int = 16_384) -> None:
        self.size = size
        self._events: dict[int, tuple[StatusChanged, bytes]] = {}
        self._lock = threading.Lock()

    def render(self, change: StatusChanged) -> bytes:
        found = self._events.get(change.cursor)
        if found is not None and found[0] is change:
            return found[1]
        event = sse.event(STATUS_CHANGED, change_view(change), change.cursor)
        with self._lock:
            if len(self._events) >= self.size:
                self._events.clear()
            self._events[change.cursor] = (change, event)
        return event


__all__ = ["BUFFER_BYTES", "PAGE", "EventCache", "Follower", "NextChanges", "Source", "Start", "jitter"]
