from __future__ import annotations

from typing import Any

import pykka

from draas_actors.scheduler import Scheduler
from tests.helpers import holds_for, wait_until


class Collector(pykka.ThreadingActor):
    def __init__(self, seen: list[Any]) -> None:
        super().__init__()
        self.seen = seen  # appended on the actor's thread, read by the test (list.append is atomic)

    def on_receive(self, message: Any) -> None:
        self.seen.append(message)


def test_a_call_is_told_after_its_delay_and_a_cancelled_one_never() -> None:
    scheduler = Scheduler()
    seen: list[Any] = []
    ref = Collector.start(seen)
    try:
        scheduler.call_later(0.01, ref, "fired")
        cancelled = scheduler.call_later(0.05, ref, "cancelled")
        scheduler.cancel(cancelled)
        wait_until(lambda: seen == ["fired"], message="the first call fired")
        holds_for(lambda: seen == ["fired"], 0.1, message="the cancelled call stays silent")
    finally:
        scheduler.stop()


def test_cancelling_a_handle_that_already_fired_leaves_nothing_behind() -> None:
    scheduler = Scheduler()
    seen: list[Any] = []
    ref = Collector.start(seen)
    try:
        handles = [scheduler.call_later(0.0, ref, i) for i in range(100)]
        wait_until(lambda: len(seen) == 100, message="every call fired")
        for handle in handles:
            scheduler.cancel(handle)
        assert scheduler._pending == set()
    finally:
        scheduler.stop()


def test_a_delay_beyond_what_a_lock_can_wait_does_not_stop_the_timer_thread() -> None:
    # Found by probing the API's unbounded numbers (a stopTimeout of 1e300): Condition.wait overflowed and the
    # scheduler thread died, so no timer of any actor fired again.
    scheduler = Scheduler()
    seen: list[Any] = []
    ref = Collector.start(seen)
    try:
        scheduler.call_later(1e300, ref, "never")
        scheduler.call_later(float("inf"), ref, "never either")
        scheduler.call_later(0.0, ref, "first")
        wait_until(lambda: seen == ["first"], message="the first call fired")
        scheduler.call_later(0.01, ref, "later")  # the thread is waiting on the huge delay now
        wait_until(lambda: seen == ["first", "later"], message="a call made after the huge one still fires")
    finally:
        scheduler.stop()
