"""The dispatcher's worker threads: a finished request wakes no idle thread that would find nothing to do."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from draas_actors.api.dispatch import FairDispatcher


class CountingCondition:
    """The dispatcher's condition, counting the waits of its worker threads."""

    def __init__(self, inner: threading.Condition) -> None:
        self.inner = inner
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1  # called with the lock held
        return self.inner.wait(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class FakeRequest:
    headers: dict[str, str]
    content_length: int = 0


@dataclass
class FakeTask:
    """What the dispatcher reads of a waitress task (its channel's requests and address) and its ``service``."""

    key: str
    done: threading.Event = field(default_factory=threading.Event)
    addr: tuple[str, int] = ("127.0.0.1", 5000)

    @property
    def requests(self) -> list[FakeRequest]:
        return [FakeRequest({"X_API_KEY": self.key})]

    def service(self) -> None:
        self.done.set()

    def cancel(self) -> None:
        self.done.set()


def test_one_request_at_a_time_costs_one_wait_of_one_thread_each() -> None:
    dispatcher = FairDispatcher(per_caller=2)
    counting = CountingCondition(dispatcher.queue_cv)
    dispatcher.queue_cv = counting
    dispatcher.set_thread_count(4)
    try:
        tasks = 50
        for i in range(tasks):
            task = FakeTask(f"k{i % 3}")
            dispatcher.add_task(task)
            assert task.done.wait(5.0)
        with dispatcher.lock:
            waits = counting.waits
    finally:
        dispatcher.shutdown(timeout=5.0)
    # Each request: the thread that served it waits again; the 4 threads' first waits come on top. A finished
    # request that woke another thread for nothing cost that thread one more wait each time (about 2 a request).
    assert waits <= tasks + 8
