"""Pooled actors keep pykka's contracts (order, one message at a time, ask/tell, hooks) on a bounded pool."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pykka
import pytest

import draas_actors
from draas_actors.actors.pool import (
    ActorPool,
    ActorRuntime,
    ActorSettings,
    PooledActor,
    on_pool,
)
from draas_actors.actors.watched import WatchedActor
from draas_actors.messages import ActorDied

DEADLINE = 5.0


@pytest.fixture
def pool() -> Iterator[ActorPool]:
    pool = ActorPool(2, 6, retire_after=0.05)
    yield pool
    assert pool.stop_actors(DEADLINE)  # before the workers go
    pool.shutdown(DEADLINE)


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


class Recorder(pykka.ThreadingActor):
    def __init__(self, seen: list[Any], started: list[str] | None = None) -> None:
        super().__init__()
        self.seen = seen
        self.started = started if started is not None else []
        self.inside = 0

    def on_start(self) -> None:
        self.started.append("start")

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        try:
            assert self.inside == 1, "two messages at once"
            if isinstance(message, threading.Event):
                message.wait(DEADLINE)
            elif message == "boom":
                raise ValueError("boom")
            self.seen.append(message)
            return message
        finally:
            self.inside -= 1


def test_an_actor_handles_its_messages_in_order_one_at_a_time_from_many_senders(pool: ActorPool) -> None:
    seen: list[Any] = []
    ref = on_pool(Recorder, pool).start(seen)
    def send(n: int) -> None:
        for i in range(300):
            ref.tell((n, i))

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert ref.ask("last", timeout=DEADLINE) == "last"
    for n in range(4):
        assert [i for m, i in seen[:-1] if m == n] == list(range(300))


def test_thousands_of_actors_share_the_pools_threads(pool: ActorPool) -> None:
    before = threading.active_count()
    refs = [on_pool(Recorder, pool).start([]) for _ in range(2000)]
    assert [r.ask(i, timeout=DEADLINE) for i, r in enumerate(refs)] == list(range(2000))
    assert threading.active_count() - before <= pool.threads + 1  # the workers and the watchdog
    stopped: object = refs[0].actor_stopped  # typed by pykka as an Event
    assert not isinstance(stopped, threading.Event)  # no Event (lock + condition) per actor
    # An idle actor's inbox drops its deque (about 600 bytes: a block of 64 slots).
    until(lambda: all(r.actor_inbox._items is None for r in refs), "idle inboxes hold no deque")  # type: ignore[attr-defined]


def test_messages_sent_before_on_start_wait_for_it(pool: ActorPool) -> None:
    seen: list[Any] = []
    started: list[str] = []

    class Early(Recorder):
        def __init__(self) -> None:
            super().__init__(seen, started)
            self.actor_ref.tell("from init")

        def on_start(self) -> None:
            started.append(f"start after {len(seen)}")

    ref = on_pool(Early, pool).start()
    assert ref.ask("next", timeout=DEADLINE) == "next"
    assert started == ["start after 0"] and seen == ["from init", "next"]


def test_an_exception_in_an_ask_goes_to_the_caller_and_the_actor_lives_on(pool: ActorPool) -> None:
    ref = on_pool(Recorder, pool).start([])
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=DEADLINE)
    assert ref.ask("after", timeout=DEADLINE) == "after"


class Failing(Recorder):
    failures: list[str]

    def on_failure(self, kind: type[BaseException] | None, value: BaseException | None,
                   tb: TracebackType | None) -> None:
        self.failures.append(repr(value))

    def on_stop(self) -> None:
        self.failures.append("on_stop")


def failing(failures: list[str]) -> type[Failing]:
    return type("F", (Failing,), {"failures": failures})


def test_an_exception_in_a_tell_calls_on_failure_stops_the_actor_and_refuses_what_follows(pool: ActorPool) -> None:
    failures: list[str] = []
    ref = on_pool(failing(failures), pool).start([])
    gate = threading.Event()
    ref.tell(gate)
    ref.tell("boom")
    behind = ref.ask("behind", block=False)
    gate.set()
    with pytest.raises(pykka.ActorDeadError):
        behind.get(timeout=DEADLINE)
    assert failures == ["ValueError('boom')"] and not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")


def test_an_exception_in_on_start_stops_the_actor_without_on_failure(pool: ActorPool) -> None:
    failures: list[str] = []

    class BadStart(Failing):
        def on_start(self) -> None:
            raise RuntimeError("no")

    BadStart.failures = failures
    ref = on_pool(BadStart, pool).start([])
    assert ref.actor_stopped.wait(DEADLINE)
    assert failures == [] and not ref.is_alive()


def test_stop_runs_on_stop_after_the_earlier_messages_and_answers_true_once(pool: ActorPool) -> None:
    failures: list[str] = []
    seen: list[Any] = []
    ref = on_pool(failing(failures), pool).start(seen)
    ref.tell("first")
    assert ref.stop(timeout=DEADLINE) is True
    assert seen == ["first"] and failures == ["on_stop"]
    assert ref.stop(timeout=DEADLINE) is False


def test_actor_stopped_can_be_waited_for(pool: ActorPool) -> None:
    ref = on_pool(Recorder, pool).start([])
    assert ref.actor_stopped.wait(0.01) is False
    threading.Timer(0.02, ref.stop, kwargs={"block": False}).start()
    assert ref.actor_stopped.wait(DEADLINE) is True


def test_a_busy_actor_yields_after_turn_messages_so_others_get_a_turn() -> None:
    pool = ActorPool(1, 1, turn_messages=8, turn_seconds=60.0)
    try:
        log: list[Any] = []
        busy, other = on_pool(Recorder, pool).start(log), on_pool(Recorder, pool).start(log)
        assert busy.ask("up", timeout=DEADLINE) and other.ask("up", timeout=DEADLINE)  # both idle, started
        log.clear()
        gate = threading.Event()
        busy.tell(gate)  # holds the only worker while both inboxes fill
        for i in range(40):
            busy.tell(i)
        other.tell("other")
        gate.set()
        assert busy.ask("done", timeout=DEADLINE) == "done"
        assert log.index("other") == 8  # after the gate and 7 more: busy's turn of 8
    finally:
        pool.stop_actors(DEADLINE)
        pool.shutdown(DEADLINE)


def test_a_busy_actor_yields_when_its_time_slice_is_over() -> None:
    ticks = iter(range(10**6))
    pool = ActorPool(1, 1, turn_messages=1000, turn_seconds=5.0, clock=lambda: float(next(ticks)))
    try:
        log: list[Any] = []
        busy, other = on_pool(Recorder, pool).start(log), on_pool(Recorder, pool).start(log)
        assert busy.ask("up", timeout=DEADLINE) and other.ask("up", timeout=DEADLINE)  # both idle, started
        log.clear()
        gate = threading.Event()
        busy.tell(gate)
        for i in range(40):
            busy.tell(i)
        other.tell("other")
        gate.set()
        assert busy.ask("done", timeout=DEADLINE) == "done"
        # Each message reads the clock once: the slice of 5 "seconds" ends after a few of them, not after 40.
        assert log.index("other") < 10
    finally:
        pool.stop_actors(DEADLINE)
        pool.shutdown(DEADLINE)


def test_a_slow_handler_does_not_stall_the_pool_and_the_extra_worker_retires(pool: ActorPool) -> None:
    stuck = [on_pool(Recorder, pool).start([]) for _ in range(pool.threads)]
    gate = threading.Event()
    for ref in stuck:
        ref.tell(gate)  # every worker now waits in a handler
    until(lambda: pool.workers == pool.threads and all(pool._busy_since.values()), "all workers busy")
    free = on_pool(Recorder, pool).start([])
    assert free.ask("through", timeout=DEADLINE) == "through"  # the watchdog added a worker for it
    assert pool.workers > pool.threads
    gate.set()
    until(lambda: pool.workers == pool.threads, "extra workers retired")


def test_the_watchdog_adds_workers_only_after_stall_after_and_never_past_max_threads() -> None:
    now = [0.0]
    pool = ActorPool(1, 2, stall_after=0.05, clock=lambda: now[0])
    pool._closing.set()  # no watchdog thread: this test calls check_stalled itself
    gate = threading.Event()
    try:
        refs = [on_pool(Recorder, pool).start([]) for _ in range(3)]
        refs[0].tell(gate)
        until(lambda: bool(pool._busy_since) and None not in pool._busy_since.values(), "worker busy")
        refs[1].tell("waiting")
        assert pool.check_stalled() is False  # busy for 0 ms
        now[0] = 0.06
        assert pool.check_stalled() is True
        until(lambda: not pool._ready, "the extra worker took the waiting turn")
        refs[1].tell(gate)
        until(lambda: all(v is not None for v in pool._busy_since.values()), "both busy")
        refs[2].tell("waiting")
        now[0] = 1.0
        assert pool.check_stalled() is False and pool.workers == 2  # the cap
    finally:
        gate.set()
        pool.stop_actors(DEADLINE)
        pool.shutdown(DEADLINE)


def test_an_ask_from_a_pool_worker_to_a_pooled_actor_is_logged_and_does_not_deadlock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = ActorPool(1, 2)
    try:
        answer = on_pool(Recorder, pool).start([])

        class Asker(pykka.ThreadingActor):
            def on_receive(self, message: Any) -> Any:
                return answer.ask(message, timeout=DEADLINE)

        asker = on_pool(Asker, pool).start()
        with caplog.at_level(logging.WARNING, logger="draas_actors.actors.pool"):
            assert asker.ask("relayed", timeout=DEADLINE) == "relayed"
        assert "can deadlock the pool" in caplog.text
    finally:
        pool.stop_actors(DEADLINE)
        pool.shutdown(DEADLINE)


def test_a_watched_actor_on_the_pool_hands_its_pending_tells_to_the_watcher(pool: ActorPool) -> None:
    died: list[ActorDied] = []

    class Watcher(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> None:
            died.append(message)

    class Child(WatchedActor):
        def on_receive(self, message: Any) -> Any:
            if isinstance(message, threading.Event):
                message.wait(DEADLINE)
            elif message == "boom":
                raise ValueError(message)

    watcher = Watcher.start()
    child = on_pool(Child, pool).start(watcher=watcher, key="c1")
    gate = threading.Event()
    child.tell(gate)
    child.tell("boom")
    child.tell("kept")
    gate.set()
    until(lambda: bool(died), "death reported")
    assert died[0].key == "c1" and died[0].pending == ("kept",)


def test_the_runtime_pools_classes_once_or_leaves_them_on_threads() -> None:
    threads = ActorRuntime(ActorSettings(runtime="threads"))
    assert threads.actor_class(Recorder) is Recorder and threads.pool is None
    pooled = ActorRuntime(ActorSettings(pool_threads=1, pool_max_threads=1))
    try:
        cls = pooled.actor_class(Recorder)
        assert cls is pooled.actor_class(Recorder) and issubclass(cls, Recorder) and issubclass(cls, PooledActor)
        assert cls.__name__ == "Recorder"
        assert cls.start([]).ask("x", timeout=DEADLINE) == "x"
    finally:
        assert pooled.shutdown(DEADLINE)


def test_a_pool_refuses_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        ActorPool(4, 2)


def test_pooled_actors_stay_out_of_pykkas_registry_and_the_runtime_stops_them() -> None:
    runtime = ActorRuntime(ActorSettings(pool_threads=2, pool_max_threads=2))
    failures: list[str] = []
    refs = [runtime.actor_class(failing(failures)).start([]) for _ in range(50)]
    assert pykka.ActorRegistry.get_all() == []  # a list that each stop would scan: quadratic at 50,000
    assert runtime.pool is not None and len(runtime.pool.live_actors()) == 50
    assert runtime.shutdown(DEADLINE)
    assert failures == ["on_stop"] * 50 and not any(ref.is_alive() for ref in refs)
    assert runtime.pool.live_actors() == [] and runtime.pool.workers == 0


def test_the_code_that_runs_on_the_pool_never_waits_for_an_answer() -> None:
    # A pool worker blocked on a pooled actor's answer can deadlock a small pool (see PoolFuture): instance actors
    # and their workloads tell, and never ask.
    root = Path(draas_actors.__file__).parent
    sources = [root / "actors" / "instance.py", *sorted((root / "workloads").glob("*.py"))]
    asking = [path.name for path in sources if ".ask(" in path.read_text() or ".get(timeout" in path.read_text()]
    assert asking == []
