"""``tell_inline``: a message to an idle pooled actor runs on the caller's thread, and the actor's contracts hold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import pykka
import pytest

from draas_actors.actors.pool import ActorPool, on_pool, tell_inline

DEADLINE = 5.0


@pytest.fixture
def pool() -> Iterator[ActorPool]:
    pool = ActorPool(2, 6, retire_after=0.05)
    yield pool
    assert pool.stop_actors(DEADLINE)
    pool.shutdown(DEADLINE)


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


class Recorder(pykka.ThreadingActor):
    """Records each message with the thread that handled it, and any overlap of two handlers."""

    def __init__(self, seen: list[tuple[Any, str]], overlaps: list[Any]) -> None:
        super().__init__()
        self.seen = seen
        self.overlaps = overlaps
        self.inside = 0

    def on_receive(self, message: Any) -> Any:
        self.inside += 1
        try:
            if self.inside != 1:
                self.overlaps.append(message)
            if isinstance(message, threading.Event):
                message.wait(DEADLINE)
            elif message == "boom":
                raise ValueError("boom")
            else:
                time.sleep(0)  # let another thread in mid-handler, where an overlap would show
            self.seen.append((message, threading.current_thread().name))
            return message
        finally:
            self.inside -= 1


def test_an_idle_actor_handles_the_message_on_the_callers_thread(pool: ActorPool) -> None:
    seen: list[tuple[Any, str]] = []
    ref = on_pool(Recorder, pool).start(seen, [])
    assert ref.ask("started", timeout=DEADLINE) == "started"  # on_start is done: the actor is idle
    until(lambda: ref.actor_inbox._state == 2, "the actor is idle")  # type: ignore[attr-defined]
    tell_inline(ref, "here")
    assert seen[-1] == ("here", threading.current_thread().name)


def test_a_busy_actor_gets_the_message_in_its_inbox_after_what_it_holds(pool: ActorPool) -> None:
    seen: list[tuple[Any, str]] = []
    ref = on_pool(Recorder, pool).start(seen, [])
    gate = threading.Event()
    ref.tell(gate)
    ref.tell("queued")
    tell_inline(ref, "later")  # returns at once: the actor is busy, so a pool worker handles it
    assert [m for m, _ in seen] == []
    gate.set()
    until(lambda: len(seen) == 3, "all three handled")
    assert [m for m, _ in seen[1:]] == ["queued", "later"]
    assert all(thread.startswith(pool.name) for _, thread in seen)


def test_what_arrives_during_an_inline_handler_waits_for_it_then_runs_on_the_pool(pool: ActorPool) -> None:
    seen: list[tuple[Any, str]] = []
    overlaps: list[Any] = []
    ref = on_pool(Recorder, pool).start(seen, overlaps)
    ref.ask("started", timeout=DEADLINE)
    until(lambda: ref.actor_inbox._state == 2, "the actor is idle")  # type: ignore[attr-defined]
    gate = threading.Event()
    caller = threading.Thread(target=tell_inline, args=(ref, gate), name="caller")
    caller.start()
    until(lambda: ref.actor_inbox._state == 4, "the caller is in the handler")  # type: ignore[attr-defined]
    ref.tell("during")
    tell_inline(ref, "also during")  # not idle: queued, not run here
    assert [m for m, _ in seen] == ["started"]  # neither ran beside the caller's handler (nor after it, below)
    gate.set()
    caller.join(DEADLINE)
    until(lambda: len(seen) == 4, "both queued messages handled")
    assert [(m, t == "caller") for m, t in seen[1:]] == [(gate, True), ("during", False), ("also during", False)]
    assert overlaps == []


def test_inline_and_pooled_deliveries_racing_keep_each_senders_order_and_one_message_at_a_time(
    pool: ActorPool,
) -> None:
    seen: list[tuple[Any, str]] = []
    overlaps: list[Any] = []
    ref = on_pool(Recorder, pool).start(seen, overlaps)

    def send(n: int) -> None:
        for i in range(400):
            if i % 25 == 0:
                # Now and then let the pool drain the inbox, so that some inline tells find the actor idle.
                pause = time.monotonic() + 0.2
                while ref.actor_inbox._state != 2 and time.monotonic() < pause:  # type: ignore[attr-defined]
                    time.sleep(0.001)
            if (i + n) % 3:
                tell_inline(ref, (n, i))
            else:
                ref.tell((n, i))

    senders = [threading.Thread(target=send, args=(n,), name=f"sender-{n}") for n in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(DEADLINE)
    assert ref.ask("last", timeout=DEADLINE) == "last"
    assert overlaps == []
    for n in range(4):
        assert [i for (m, i), _ in (s for s in seen[:-1]) if m == n] == list(range(400))
    threads = {t for _, t in seen}
    assert any(t.startswith("sender-") for t in threads) and any(t.startswith(pool.name) for t in threads)


class Failing(Recorder):
    failures: list[str]

    def on_failure(self, kind: type[BaseException] | None, value: BaseException | None,
                   tb: TracebackType | None) -> None:
        self.failures.append(repr(value))


def test_an_exception_in_an_inline_handler_calls_on_failure_and_stops_the_actor(pool: ActorPool) -> None:
    failures: list[str] = []

    class F(Failing):
        pass

    F.failures = failures
    ref = on_pool(F, pool).start([], [])
    ref.ask("started", timeout=DEADLINE)
    until(lambda: ref.actor_inbox._state == 2, "the actor is idle")  # type: ignore[attr-defined]
    tell_inline(ref, "boom")
    assert failures == ["ValueError('boom')"] and not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        tell_inline(ref, "late")


def test_an_actor_on_its_own_thread_is_told_as_usual() -> None:
    seen: list[tuple[Any, str]] = []
    ref = Recorder.start(seen, [])
    try:
        tell_inline(ref, "there")
        assert ref.ask("next", timeout=DEADLINE) == "next"
        assert seen[0][0] == "there" and seen[0][1] != threading.current_thread().name
    finally:
        ref.stop()
