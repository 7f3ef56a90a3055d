"""Pooled actors: many pykka actors share a bounded set of worker threads instead of owning one each.

pykka's own ``ThreadingActor`` is just an ``Actor`` that supplies an inbox, a future and a loop start. A pooled
actor supplies the same three hooks: its inbox is a ``_Mailbox`` that schedules the actor on an ``ActorPool`` when a
message arrives, and a worker runs the actor for one turn (at most ``turn_messages`` messages or ``turn_seconds``),
then puts it back in line if more are waiting. So each actor still handles one message at a time, in order, with
pykka's ``tell``/``ask``/``on_start``/``on_stop``/``on_failure`` contracts, and an idle actor costs a few small
objects and no thread (a thread each is about 23 KiB of RSS, and the process cannot start more than ~22,000).
``tell_inline`` lets the sender run a message itself when the actor is idle: the push's fast path.

Pooled actors are registered with their pool, not in pykka's ``ActorRegistry`` (a list, where each stop scans
for the actor: quadratic at this scale), so ``ActorRegistry.stop_all`` leaves them to ``ActorRuntime.shutdown``.

A handler that blocks holds its worker: a watchdog adds temporary workers while every worker has been busy with one
turn for longer than ``stall_after`` (up to ``max_threads`` in all), and they retire once idle. An ``ask(...).get()``
from a pool worker on a pooled actor is logged, and a worker is added for it at once: on a small pool it is how
a pooled code base deadlocks (every worker waiting for an actor that needs a worker to answer).
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeVar, cast

import pykka
import pykka.messages
from pykka._envelope import Envelope
from pykka._threading import ThreadingFuture

log = logging.getLogger(__name__)

A = TypeVar("A", bound=pykka.Actor)

_LOCK_STRIPES = 64  # mailboxes share these locks: a lock each would cost more than the rest of the mailbox
_pool_names = count(0)


@dataclass(frozen=True, kw_only=True)
class ActorSettings:
    """How instance actors run: on a shared pool (the default) or on a thread each (pykka's layout)."""

    runtime: Literal["pool", "threads"] = "pool"
    pool_threads: int = 8
    # Workers the watchdog may add for slow handlers, counted with pool_threads; instance actors stay under 64 threads.
    pool_max_threads: int = 40


class _Worker(threading.local):
    pool: ActorPool | None = None


_worker = _Worker()


class ActorPool:
    """A fixed set of worker threads running actors' turns in arrival order, plus temporary ones for slow handlers."""

    def __init__(
        self,
        threads: int = 8,
        max_threads: int = 40,
        *,
        name: str = "",
        turn_messages: int = 64,
        turn_seconds: float = 0.005,
        stall_after: float = 0.05,
        retire_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threads < 1 or max_threads < threads:
            raise ValueError(f"need 1 <= threads ({threads}) <= max_threads ({max_threads})")
        self.name = name or f"actor-pool-{next(_pool_names)}"
        self.threads = threads
        self.max_threads = max_threads
        self.turn_messages = turn_messages
        self.turn_seconds = turn_seconds
        self.stall_after = stall_after
        self.retire_after = retire_after
        self.clock = clock
        self.locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        self.stopped = threading.Condition()  # what every pooled actor's stop flag waits on
        self._ready: collections.deque[_Mailbox] = collections.deque()
        self._cond = threading.Condition()
        self._idle = 0
        self._busy_since: dict[threading.Thread, float | None] = {}
        self._closed = False
        self._closing = threading.Event()
        self._started = False
        self._serial = count(0)
        # The pool's actors by URN. pykka's ActorRegistry is a list: each unregister scans it, so stopping 20,000
        # registered actors took 8.3 s, and the cost grows with the square of their number.
        self._actors: dict[str, pykka.ActorRef[Any]] = {}

    @property
    def workers(self) -> int:
        return len(self._busy_since)

    def submit(self, mailbox: _Mailbox) -> None:
        with self._cond:
            if not self._started and not self._closed:
                self._start()
            # After shutdown the workers still finish what is in line; with none left, nothing runs it.
            self._ready.append(mailbox)
            if self._idle:
                self._cond.notify()

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop the workers once the queued turns are done; True if they all ended within ``timeout``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._busy_since)
        self._closing.set()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            log.warning("%s: %d workers still busy after %.1fs: %s", self.name, len(left), timeout, left[:4])
        return not left

    def register(self, ref: pykka.ActorRef[Any]) -> None:
        self._actors[ref.actor_urn] = ref

    def unregister(self, ref: pykka.ActorRef[Any]) -> None:
        self._actors.pop(ref.actor_urn, None)

    def live_actors(self) -> list[pykka.ActorRef[Any]]:
        return list(self._actors.values())

    def stop_actors(self, timeout: float = 5.0) -> bool:
        """Stop every actor on the pool (each after the messages it already holds); True if all did in time."""
        futures = []
        for ref in self.live_actors():
            futures.append(ref.stop(block=False))
        deadline = time.monotonic() + timeout
        for future in futures:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                log.warning("%s: %d actors still running after %.1fs", self.name, len(self._actors), timeout)
                return False
        return True

    def blocked_on_pool(self) -> None:
        """Called by a worker about to wait for a pooled actor's answer: let another worker take its place."""
        with self._cond:
            if not self._idle and not self._closed and self.workers < self.max_threads:
                self._spawn()

    # -- workers ----------------------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        for _ in range(self.threads):
            self._spawn()
        threading.Thread(target=self._watch, name=f"{self.name}-watchdog", daemon=True).start()

    def _spawn(self) -> None:
        """Start a worker; the caller holds ``self._cond``."""
        extra = len(self._busy_since) >= self.threads
        thread = threading.Thread(
            target=self._work, args=(extra,), name=f"{self.name}-{next(self._serial)}", daemon=True
        )
        self._busy_since[thread] = None
        thread.start()

    def _work(self, extra: bool) -> None:
        me = threading.current_thread()
        _worker.pool = self
        while True:
            with self._cond:
                while not self._ready:
                    if self._closed:
                        del self._busy_since[me]
                        return
                    self._idle += 1
                    woken = self._cond.wait(self.retire_after if extra else None)
                    self._idle -= 1
                    if extra and not woken and not self._ready:
                        del self._busy_since[me]  # the slow handlers it was added for are done
                        return
                mailbox = self._ready.popleft()
                self._busy_since[me] = self.clock()
            try:
                mailbox.run_turn(self)
            except BaseException:  # a worker must outlive any one actor
                log.exception("%s: a turn failed outside its actor's handlers", self.name)
            self._busy_since[me] = None

    def _watch(self) -> None:
        while not self._closing.wait(self.stall_after / 2):
            self.check_stalled()

    def check_stalled(self) -> bool:
        """Add a worker if turns are waiting and every worker has been in one turn for over ``stall_after``."""
        now = self.clock()
        with self._cond:
            if self._closed or self._idle or not self._ready or self.workers >= self.max_threads:
                return False
            if any(since is None or now - since <= self.stall_after for since in self._busy_since.values()):
                return False
            log.warning("%s: all %d workers busy for over %.0f ms; adding one", self.name, self.workers,
                        self.stall_after * 1000)
            self._spawn()
            return True


class _StopFlag:
    """pykka's ``actor_stopped`` without a ``threading.Event`` per actor: the rare waits share the pool's condition."""

    __slots__ = ("_cond", "_set")

    def __init__(self, cond: threading.Condition) -> None:
        self._set = False
        self._cond = cond

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._cond:
            self._set = True
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._set, timeout)


# _INLINE: a caller is handling a message itself (``tell_inline``); like _SCHEDULED, puts only queue.
_NEW, _STARTING, _IDLE, _SCHEDULED, _INLINE, _DEAD = range(6)


class _Mailbox:
    """A pooled actor's inbox, and its place in the pool's line. Non-blocking: ``get`` raises ``queue.Empty``."""

    __slots__ = ("_actor", "_items", "_lock", "_state")

    def __init__(self, pool: ActorPool) -> None:
        self._items: collections.deque[Envelope[Any]] | None = None  # made on the first message, dropped when idle
        self._lock = pool.locks[(id(self) >> 4) % _LOCK_STRIPES]
        self._state = _NEW
        self._actor: PooledActor | None = None

    def put(self, envelope: Envelope[Any], /) -> None:
        with self._lock:
            state = self._state
            if state != _DEAD:
                if self._items is None:
                    self._items = collections.deque()
                self._items.append(envelope)
                if state == _IDLE:
                    self._state = _SCHEDULED
            actor = self._actor
        if state == _DEAD:
            _refuse(envelope, "stopped before handling the message")
        elif state == _IDLE and actor is not None:
            actor._pool.submit(self)

    def get(self) -> Envelope[Any]:
        with self._lock:
            if not self._items:
                raise queue.Empty
            return self._items.popleft()

    get_nowait = get  # what WatchedActor drains a dying actor's inbox with

    def empty(self) -> bool:
        return not self._items

    def start(self, actor: PooledActor) -> None:
        with self._lock:
            self._actor = actor
            self._state = _STARTING
        actor._pool.submit(self)

    def run_turn(self, pool: ActorPool) -> None:
        actor = self._actor
        assert actor is not None
        if self._state == _STARTING:
            self._state = _SCHEDULED  # puts only look for _IDLE and _DEAD: this needs no lock
            actor._actor_loop_setup()
        deadline = pool.clock() + pool.turn_seconds
        handled = 0
        while not actor.actor_stopped.is_set():
            with self._lock:
                if not self._items:
                    self._items = None
                    self._state = _IDLE
                    return
                if handled >= pool.turn_messages or pool.clock() >= deadline:
                    break
                envelope = self._items.popleft()
            _handle(actor, envelope)
            handled += 1
        else:
            self._teardown()
            return
        pool.submit(self)  # a turn is over: let the others in the line run before its next messages

    def run_inline(self, message: Any) -> bool:
        """Handle ``message`` on the calling thread if the actor is idle (no turn in line or running, nothing queued),
        under the same state that keeps a worker off it; False, having done nothing, if it is not idle.

        The actor's order holds: the message is the first one since the actor went idle, and what arrives while it
        is handled waits in the inbox for a pool turn, started here once the handler returns."""
        with self._lock:
            if self._state != _IDLE or self._items:
                return False
            self._state = _INLINE
            actor = self._actor
        assert actor is not None
        _handle(actor, Envelope(message))
        with self._lock:
            stopped = actor.actor_stopped.is_set()
            more = bool(self._items) and not stopped
            if not stopped:
                self._state = _SCHEDULED if more else _IDLE
                if not more:
                    self._items = None
        if stopped:
            self._teardown()
        elif more:
            actor._pool.submit(self)
        return True

    def _teardown(self) -> None:
        with self._lock:
            self._state = _DEAD
            left, self._items = self._items or (), None
            self._actor = None
        for envelope in left:
            if isinstance(envelope.message, pykka.messages._ActorStop):
                if envelope.reply_to is not None:
                    envelope.reply_to.set(None)
            else:
                _refuse(envelope, "stopped before handling the message")


def tell_inline(ref: pykka.ActorRef[Any], message: Any) -> None:
    """``ref.tell(message)``, but handled on the calling thread when ``ref`` is a pooled actor with nothing to do.

    The fast path of a push (see docs/performance.md): an HTTP thread that hands a report to a pool worker pays a
    queue put, a wake-up and a GIL hand-off, then waits for the commit anyway. Running the handler here, under the
    actor's mailbox state, keeps one message at a time and the actor's order. Only for messages whose handler
    never blocks (it would hold the caller, not a pool worker the watchdog can replace). Raises
    ``pykka.ActorDeadError`` as ``tell`` does.
    """
    inbox = ref.actor_inbox
    if isinstance(inbox, _Mailbox) and ref.is_alive() and inbox.run_inline(message):
        return
    ref.tell(message)


def _refuse(envelope: Envelope[Any], why: str) -> None:
    if envelope.reply_to is not None:
        envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, pykka.ActorDeadError(why), None))


def _handle(actor: PooledActor, envelope: Envelope[Any]) -> None:
    """One message, as pykka's ``Actor._actor_loop_running`` handles it."""
    try:
        response = actor._handle_receive(envelope.message)
        if envelope.reply_to is not None:
            envelope.reply_to.set(response)
    except Exception:
        if envelope.reply_to is not None:
            log.info("Exception returned from %s to caller:", actor, exc_info=sys.exc_info())
            envelope.reply_to.set_exception()
        else:
            actor._handle_failure(*sys.exc_info())
            try:
                actor.on_failure(*sys.exc_info())
            except Exception:
                actor._handle_failure(*sys.exc_info())
    except BaseException:
        # pykka stops every actor here; from a pool worker that must not wait for them.
        log.debug("%r in %s. Stopping all actors.", sys.exc_info()[1], actor)
        actor._stop()
        pykka.ActorRegistry.stop_all(block=False)
        for ref in actor._pool.live_actors():
            ref.stop(block=False)


class PoolFuture(ThreadingFuture[Any]):
    """pykka's threading future, which notices a pool worker waiting for a pooled actor's answer."""

    def get(self, *, timeout: float | None = None) -> Any:
        pool = _worker.pool
        if pool is not None and self._result is None and self._get_hook is None:
            log.warning("ask(...).get() on a pooled actor from pool worker %s: can deadlock the pool; use tell",
                        threading.current_thread().name, stack_info=log.isEnabledFor(logging.DEBUG))
            pool.blocked_on_pool()
        return super().get(timeout=timeout)


class PooledActor(pykka.Actor):
    """Runs on ``_pool``. Use ``on_pool(SomeActor, pool)`` for an existing actor class."""

    _pool: ClassVar[ActorPool]

    @property  # type: ignore[override]
    def actor_stopped(self) -> _StopFlag:
        return self.__dict__["_stop_flag"]  # type: ignore[no-any-return]

    @actor_stopped.setter
    def actor_stopped(self, _event: threading.Event) -> None:
        # pykka.Actor.__init__ assigns a threading.Event; keep a slotted flag instead.
        self.__dict__["_stop_flag"] = _StopFlag(self._pool.stopped)

    @classmethod
    def _create_actor_inbox(cls) -> _Mailbox:
        return _Mailbox(cls._pool)

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return PoolFuture()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.start(self)  # type: ignore[attr-defined]

    # pykka's start, _stop and _handle_failure, with the pool's registry in place of pykka's ActorRegistry.

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        obj = cls(*args, **kwargs)
        cls._pool.register(obj.actor_ref)
        obj._start_actor_loop()
        return obj.actor_ref

    def _stop(self) -> None:
        self._pool.unregister(self.actor_ref)
        self.actor_stopped.set()
        try:
            self.on_stop()
        except Exception:
            self._handle_failure(*sys.exc_info())

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        log.error("Unhandled exception in %s:", self, exc_info=(exception_type, exception_value, traceback))  # type: ignore[arg-type]
        self._pool.unregister(self.actor_ref)
        self.actor_stopped.set()


def on_pool(cls: type[A], pool: ActorPool) -> type[A]:
    """A subclass of ``cls`` that runs on ``pool``: same name, same behaviour, pooled hooks first in the MRO."""
    meta: type = type(cls)  # pykka's ABCMeta
    namespace = {"_pool": pool, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    return cast("type[A]", meta(cls.__name__, (PooledActor, cls), namespace))


class ActorRuntime:
    """Where instance actors run, chosen by ``ActorSettings``; core actors keep their own threads."""

    def __init__(self, settings: ActorSettings = ActorSettings()) -> None:
        self.settings = settings
        self.pool = (
            ActorPool(settings.pool_threads, settings.pool_max_threads, name="instance-pool")
            if settings.runtime == "pool"
            else None
        )
        self._classes: dict[type, type] = {}

    def actor_class(self, cls: type[A]) -> type[A]:
        if self.pool is None:
            return cls
        if cls not in self._classes:
            self._classes[cls] = on_pool(cls, self.pool)
        return cast("type[A]", self._classes[cls])

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Stop the pooled actors, then the pool's workers; True if both happened within ``timeout``."""
        if self.pool is None:
            return True
        deadline = time.monotonic() + timeout
        stopped = self.pool.stop_actors(timeout)
        return self.pool.shutdown(max(0.0, deadline - time.monotonic())) and stopped
