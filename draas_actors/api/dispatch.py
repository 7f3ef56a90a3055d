"""Fair sharing of waitress's worker threads between callers, so that one flooding caller cannot starve the others.

waitress queues connections with a complete request (FIFO) for its worker threads. Under a flood from many
connections every thread is busy with the flooder and every other caller's request waits behind them, then
competes with all of them for the GIL. ``FairDispatcher`` replaces that queue: callers take turns (round
robin), and one caller is never serviced on more than ``per_caller`` threads at once; its other requests wait,
unread by the app and costing nothing, and since its connections wait for their answers it cannot send more.
The rate limit then refuses what it sends, and a well-behaved caller finds a free thread and little contention.

A caller is the credential the request presents (``X-API-Key``, ``Authorization``, or the client certificate
subject set by the proxy), else the peer address. Nothing here trusts it: it only picks a queue, and the
app still authenticates the request. Presenting many different invalid keys gives many queues, which is no
worse than waitress's own FIFO, and each such request is refused with a cheap 401.

This leans on waitress's dispatcher interface (``create_server(_dispatcher=...)``, ``add_task``,
``set_thread_count``, ``shutdown``; the subclass keeps ``queue``, ``lock`` and ``queue_cv`` as waitress uses
them), stable across waitress 2 and 3; setup.cfg pins waitress below 4.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any

from waitress.task import ThreadedTaskDispatcher

CALLER_HEADERS = ("X_API_KEY", "AUTHORIZATION", "X_CLIENT_SUBJECT")
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
        self._size = 0

    def append(self, task: Any) -> None:
        self.waiting.setdefault(caller_of(task), deque()).append(task)
        self._size += 1

    def __len__(self) -> int:
        return self._size

    def hold(self, caller: str, seconds: float) -> None:
        now = self.clock()
        if len(self.held) >= 1024:  # holds of callers that never came back; 429s go to known identities only
            self.held = {c: until for c, until in self.held.items() if until > now}
        self.held[caller] = now + seconds

    def _ready(self, caller: str, now: float) -> bool:
        until = self.held.get(caller)
        if until is not None and until <= now:
            del self.held[caller]
            until = None
        return until is None and self.running[caller] < self.per_caller

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
        self.running[caller] += 1
        return caller, task

    def done(self, caller: str) -> None:
        self.running[caller] -= 1
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


class FairDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's thread pool with ``FairQueue`` in place of its FIFO."""

    def __init__(self, per_caller: int, clock: Clock = time.monotonic) -> None:
        super().__init__()
        self.queue: FairQueue = FairQueue(per_caller, clock)

    def hold(self, caller: str, seconds: float) -> None:
        """Leave ``caller``'s next requests waiting for ``seconds`` (it was just told to retry later)."""
        with self.lock:
            self.queue.hold(caller, seconds)

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
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            finally:
                with self.lock:
                    self.queue.done(caller)
                    # The caller may have more waiting, which no thread would look at until the next add_task.
                    self.queue_cv.notify()

    def add_task(self, task: Any) -> None:
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()


def fair_dispatcher(threads: int, per_caller: int) -> FairDispatcher:
    dispatcher = FairDispatcher(per_caller)
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
