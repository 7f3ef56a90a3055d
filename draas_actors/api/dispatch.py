"""Fair sharing of waitress's worker threads between callers, so that one flooding caller cannot starve the others.

waitress queues connections with a complete request (FIFO) for its worker threads. Under a flood from many
connections every thread is busy with the flooder and every other caller's request waits behind them, then
competes with all of them for the GIL. ``FairDispatcher`` replaces that queue: callers take turns (round
robin), and one caller is never serviced on more than ``per_caller`` threads at once; its other requests wait,
unread by the app and costing nothing, and since its connections wait for their answers it cannot send more.
The rate limit then refuses what it sends, and a well-behaved caller finds a free thread and little contention.

A batch is charged by its size: a request counts ``1 + body bytes // BATCH_BYTES`` of its caller's ``per_caller``
threads (a caller with nothing in service may always start one). A caller pushing large batches then has one in
service at a time, so another daemon's single update waits behind one batch's hundred messages in the shared
actors' inboxes, not behind two. A caller refused again soon after a hold ends is held twice as long, up to
``MAX_HOLD_FACTOR`` times the first hold: a flooder that ignores ``Retry-After`` is let in ever more rarely.

A caller is the credential the request presents (``X-API-Key``, ``Authorization``, or the client certificate
subject set by the proxy), else the peer address. Nothing here trusts it: it only picks a queue, and the
app still authenticates the request. Presenting many different invalid keys gives many queues, which is no
worse than waitress's own FIFO, and each such request is refused with a cheap 401.

A live stream (``GET /api/status/stream``) is not queued: its connection is served on a thread of its own
(``streams.StreamThreads``, at most ``[stream] maxStreams``), so that open streams never hold the worker threads;
when none is free it is queued like any request and the app answers it 503.

This leans on waitress's dispatcher interface (``create_server(_dispatcher=...)``, ``add_task``,
``set_thread_count``, ``shutdown``; the subclass keeps ``queue``, ``lock`` and ``queue_cv`` as waitress uses
them), stable across waitress 2 and 3; setup.cfg pins waitress below 4.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from waitress.task import ThreadedTaskDispatcher

from ..streams import StreamThreads
from .stream import STREAM_PATH

CALLER_HEADERS = ("X_API_KEY", "AUTHORIZATION", "X_CLIENT_SUBJECT")
BATCH_BYTES = 4096  # a single update is a few hundred bytes; a body this large is a batch of dozens
MAX_HOLD_FACTOR = 8  # holds of a repeat offender: 1, 2, 4, 8 x the first
Clock = Callable[[], float]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def caller_of(channel: Any) -> str:
    """The queue a waitress channel's next request belongs to (see the module docstring)."""
    requests = getattr(channel, "requests", None)
    headers = requests[0].headers if requests else {}
    addr = getattr(channel, "addr", None)
    return _caller(headers.get, addr[0] if isinstance(addr, tuple) and addr else str(addr))


def caller_of_environ(environ: dict[str, Any]) -> str:
    """The same caller as ``caller_of``, from the WSGI environment of a request being answered."""
    return _caller(lambda name: environ.get(f"HTTP_{name}"), str(environ.get("REMOTE_ADDR")))


def _caller(header: Callable[[str], Any], address: str) -> str:
    for name in CALLER_HEADERS:
        value = header(name)
        if value:
            return f"{name}:{value}"
    return f"addr:{address}"


class FairQueue:
    """Tasks per caller, served round robin, skipping callers already at their limit. Not thread-safe: the
    dispatcher holds its lock around every call."""

    def __init__(self, per_caller: int, clock: Clock = time.monotonic) -> None:
        self.per_caller = per_caller
        self.clock = clock
        self.waiting: OrderedDict[str, deque[Any]] = OrderedDict()
        self.running: Counter[str] = Counter()
        self.held: dict[str, float] = {}  # caller -> until when its waiting tasks stay waiting
        self.strikes: dict[str, tuple[float, float]] = {}  # caller -> (its last hold's length, when it ends)
        self._size = 0

    def append(self, task: Any) -> None:
        self.waiting.setdefault(caller_of(task), deque()).append(task)
        self._size += 1

    def __len__(self) -> int:
        return self._size

    def hold(self, caller: str, seconds: float) -> float:
        """Hold ``caller`` for ``seconds``, or for twice its last hold (at most ``MAX_HOLD_FACTOR`` x ``seconds``)
        when that ended less than its own length ago; returns the length of this hold."""
        now = self.clock()
        if len(self.held) >= 1024:  # holds of callers that never came back; 429s go to known identities only
            self.held = {c: until for c, until in self.held.items() if until > now}
        if len(self.strikes) >= 1024:
            self.strikes = {c: (n, end) for c, (n, end) in self.strikes.items() if now - end < n}
        last = self.strikes.get(caller)
        if last is not None and now - last[1] < last[0]:
            seconds = min(2 * last[0], MAX_HOLD_FACTOR * seconds)
        until = max(now + seconds, self.held.get(caller, now))  # a refusal still in service keeps the longer
        self.held[caller] = until
        self.strikes[caller] = (seconds, until)
        return seconds

    def weight(self, task: Any) -> int:
        """How many of its caller's ``per_caller`` threads a task counts for: a batch by its size."""
        requests = getattr(task, "requests", None)
        length = getattr(requests[0], "content_length", 0) if requests else 0
        return min(self.per_caller, 1 + int(length or 0) // BATCH_BYTES)

    def _ready(self, caller: str, now: float) -> bool:
        until = self.held.get(caller)
        if until is not None and until <= now:
            del self.held[caller]
            until = None
        if until is not None:
            return False
        running = self.running[caller]
        return running == 0 or running + self.weight(self.waiting[caller][0]) <= self.per_caller

    def runnable(self) -> bool:
        now = self.clock()
        return any(self._ready(caller, now) for caller in list(self.waiting))

    def next_release(self) -> float | None:
        """Seconds until the first held caller with waiting tasks is released; None when none is held."""
        holds = [self.held[c] for c in self.waiting if c in self.held]
        return max(0.0, min(holds) - self.clock()) if holds else None

    def take(self) -> tuple[str, Any]:
        """The next ready caller (which moves to the back of the line) and its oldest task."""
        now = self.clock()
        for caller, tasks in self.waiting.items():  # noqa: B007 - the loop stops at the caller whose tasks it takes
            if self._ready(caller, now):
                break
        else:
            raise LookupError("no ready caller has a task waiting")
        task = tasks.popleft()
        if tasks:
            self.waiting.move_to_end(caller)
        else:
            del self.waiting[caller]
        self._size -= 1
        self.running[caller] += self.weight(task)
        return caller, task

    def done(self, caller: str, weight: int = 1) -> None:
        """One of ``caller``'s tasks, of ``weight`` (as ``weight`` said when it was taken), is done."""
        self.running[caller] -= weight
        if self.running[caller] <= 0:
            del self.running[caller]

    def popleft(self) -> Any:
        """Any task, ignoring limits: waitress's ``shutdown`` cancels what is left this way."""
        caller, tasks = next(iter(self.waiting.items()))
        task = tasks.popleft()
        if not tasks:
            del self.waiting[caller]
        self._size -= 1
        return task


def is_stream_request(channel: Any) -> bool:
    """The waitress channel's next request opens a live stream."""
    requests = getattr(channel, "requests", None)
    if not requests or requests[0].error is not None:
        return False
    request = requests[0]
    return request.command == "GET" and str(request.path).rstrip("/").lower() == STREAM_PATH


class ChannelConnection:
    """A waitress channel as a stream sees it (``streams.Connection``), while ``serve_off_the_loop`` serves it."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def unsent(self) -> int:
        """Sends what the socket takes of what waits (the loop does not, see ``serve_off_the_loop``), then counts
        what is left."""
        channel = self.channel
        if channel.total_outbufs_len:
            with channel.outbuf_lock:
                channel._flush_exception(channel._flush_some, do_close=False)
        return int(channel.total_outbufs_len)

    def connected(self) -> bool:
        """False once the client has closed its end: the loop, which would read that end of file, is not looking
        (nor does a send to a closed socket say so here: its error is swallowed until the loop's next write)."""
        channel = self.channel
        if not channel.connected or channel.will_close:
            return False
        try:
            # A served channel reads nothing, so what waits is either the client's end of file or its next request.
            return bool(channel.socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b"")
        except BlockingIOError:
            return True
        except OSError:
            return False


def serve_off_the_loop(channel: Any) -> None:
    """Serve a stream's channel with the channel out of waitress's socket map, and put it back after.

    waitress's loop walks every channel of its map at each turn (readable? writable?) to build its poll set, and
    with 200 streams open every request paid for that walk: out of it, the daemon's median push with 200 streams
    went from 2.1-2.5 ms to 1.9-2.0 ms (bench/stream_push.py, 0.1 s polls; 1.3-1.4 ms with no stream). A channel
    serving a stream has nothing for the loop to do: it reads nothing while a request is served, and the stream's
    thread sends what it writes (``ChannelConnection.unsent`` sends what a full socket left). Nothing else closes
    it meanwhile (the loop, its idle-timeout pass and the server's stop all go through the map); back in the map,
    the loop sends what is left and closes it if it must.
    """
    socket_map, fd = channel._map, channel._fileno
    socket_map.pop(fd, None)
    try:
        channel.service()
    finally:
        if channel._fileno == fd:
            socket_map[fd] = channel
        with contextlib.suppress(OSError):  # a server that stopped without waiting for this thread closed it
            channel.server.pull_trigger()


class FairDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's thread pool with ``FairQueue`` in place of its FIFO, and live streams on threads of their own."""

    def __init__(
        self, per_caller: int, clock: Clock = time.monotonic, streams: StreamThreads | None = None
    ) -> None:
        super().__init__()
        self.queue: FairQueue = FairQueue(per_caller, clock)
        self.streams = streams

    def hold(self, caller: str, seconds: float) -> float:
        """Leave ``caller``'s next requests waiting for ``seconds``, or longer for a repeat offender (see
        ``FairQueue.hold``): it was just told to retry later."""
        with self.lock:
            return self.queue.hold(caller, seconds)

    def handler_thread(self, thread_no: int) -> None:
        while True:
            with self.lock:
                while not self.queue.runnable() and self.stop_count == 0:
                    self.active_count -= 1
                    self.queue_cv.wait(self.queue.next_release())
                    self.active_count += 1
                if self.stop_count > 0:
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
                caller, task = self.queue.take()
                weight = self.queue.weight(task)  # its request is still the channel's first until serviced
                if self.queue.runnable():
                    # More than this thread can take: wake one more (who wakes the next, and so on). A thread
                    # that finishes a task looks for the next itself, so it wakes nobody: a wake-up for a thread
                    # that then finds nothing to do was two context switches a request.
                    self.queue_cv.notify()
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            finally:
                with self.lock:
                    self.queue.done(caller, weight)

    def add_task(self, task: Any) -> None:
        streams = self.streams
        if streams is not None and is_stream_request(task) and streams.start(
            ChannelConnection(task), functools.partial(serve_off_the_loop, task)
        ):
            return
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        """Stop the streams (no new one starts here from now on) and join their threads, then stop the workers."""
        streams, self.streams = self.streams, None
        if streams is not None:
            streams.stop_all(timeout)
        return bool(super().shutdown(cancel_pending, timeout))


def fair_dispatcher(threads: int, per_caller: int, streams: StreamThreads | None = None) -> FairDispatcher:
    dispatcher = FairDispatcher(per_caller, streams=streams)
    dispatcher.set_thread_count(threads)
    return dispatcher


def hold_after_refusal(app: WsgiApp, dispatcher: FairDispatcher, seconds: float) -> WsgiApp:
    """WSGI wrapper: a caller answered 429 has its next requests wait ``seconds`` in the dispatcher's queue.

    A client that honours ``Retry-After`` (whole seconds, at least 1) never notices; one that ignores it finds
    its connections answered no faster than this, at no cost to the server: a waiting request holds no thread
    and runs no code. (Holding only until the next token instead paces such a caller at its rate, but then
    about half its requests are refusals that each cost a full trip through the app; measured in
    bench/push_flood.py, the good daemon's median doubled.)
    """

    def held(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        caller = caller_of_environ(environ)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("429"):
                dispatcher.hold(caller, seconds)
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return held
