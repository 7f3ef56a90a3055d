"""The process monitor's selector thread, with a real child and a real pidfd: it never dies of an event that a
command handled just before it made stale."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from draas_actors.actors.process_monitor import _SelectorThread
from draas_actors.messages import PidfdReady
from tests.helpers import wait_until


class GatedSelector(selectors.DefaultSelector):
    """Holds the thread before each select() while ``gate`` is clear, then returns the command pipe's event first:
    the order in which epoll may report a wake-up and a pidfd that became readable at the same time."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if not self.gate.is_set():
            self.held.set()
            self.gate.wait(10.0)
        events = super().select(timeout)
        return sorted(events, key=lambda event: event[0].data is not None)


class Monitor:
    """Stands in for the monitor actor: records what the thread tells it."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5.0)


def test_a_pidfd_removed_in_the_same_wake_up_as_its_exit_is_skipped_and_the_thread_lives_on(
    monkeypatch: pytest.MonkeyPatch, child: subprocess.Popen[bytes]
) -> None:
    monkeypatch.setattr(selectors, "DefaultSelector", GatedSelector)  # the module calls selectors.DefaultSelector()
    monitor = Monitor()
    thread = _SelectorThread(monitor)  # type: ignore[arg-type]
    selector: GatedSelector = thread._selector  # type: ignore[assignment]
    try:
        pidfd = os.pidfd_open(child.pid)
        thread.add(1, pidfd)
        wait_until(lambda: pidfd in selector.get_map(), 5.0, 0.005, "the pidfd is registered")
        selector.gate.clear()
        thread.remove(99)  # unknown: only wakes the thread, which then waits at the gate
        assert selector.held.wait(5.0)

        child.send_signal(signal.SIGKILL)
        child.wait(5.0)
        thread.remove(1)  # the same select() now sees the removal and the exit
        selector.gate.set()

        second = subprocess.Popen(["true"])
        thread.add(2, os.pidfd_open(second.pid))  # a watch made after it is still served (opened before reaping)
        second.wait(5.0)
        wait_until(lambda: PidfdReady(2) in monitor.told, 5.0, 0.005, "the thread reports a later exit")
        assert PidfdReady(1) not in monitor.told
        assert thread._thread.is_alive()
    finally:
        selector.gate.set()
        thread.close()
