"""The process monitor: event-driven exit detection for every watched PID, with a psutil sweep as safety net.

One selector thread waits on a pidfd per process (``os.pidfd_open``): a pidfd becomes readable when its
process ends, child or not, so an exit is seen within microseconds with no polling and no thread per process.
The periodic sweep catches what the kernel cannot tell us through a pidfd: a PID we could not open
(already gone), and a PID reused by another process while we were not looking (create time differs).

Every child is reaped, told about or not: a process whose instance was deleted stays watched without an owner until
it ends, and so do the leftovers of an instance's process group (``ProcessPlatform.leftovers``) once its main process
has ended. The sweep reaps any released child or leftover that was missed.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import threading
import time
from dataclasses import dataclass
from typing import Any

import psutil
import pykka

from ..messages import PidfdReady, ProcessExited, Sweep, UnwatchProcess, WatchProcess
from ..model import InstanceId
from ..platforms.process import ProcessPlatform
from ..scheduler import Scheduler
from .watched import WatchedActor

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    instance_id: InstanceId
    pid: int
    create_time: float
    owner: pykka.ActorRef[Any] | None  # None: nobody is told, the process is only reaped when it ends
    token: int  # names this watch to the selector thread, which owns the pidfd


class ProcessMonitorActor(WatchedActor):
    kind = "monitor"

    def __init__(
        self,
        *,
        platform: ProcessPlatform,
        scheduler: Scheduler,
        sweep_interval: float,
        watcher: Any = None,
    ) -> None:
        super().__init__(watcher=watcher, key="monitor")
        self.platform = platform
        self.scheduler = scheduler
        self.sweep_interval = sweep_interval
        self.watches: dict[int, _Watch] = {}
        self.by_token: dict[int, _Watch] = {}
        self.next_token = 1
        self.selector_thread: _SelectorThread | None = None

    def started(self) -> None:
        self.selector_thread = _SelectorThread(self.actor_ref)
        self.scheduler.call_later(self.sweep_interval, self.actor_ref, Sweep())

    def on_stop(self) -> None:
        self._shutdown_selector()

    def on_failure(self, *exc_info: Any) -> None:
        self._shutdown_selector()
        super().on_failure(*exc_info)

    def on_receive(self, message: Any) -> Any:
        match message:
            case WatchProcess(instance_id, pid, create_time, owner):
                self._watch(instance_id, pid, create_time, owner)
            case UnwatchProcess(instance_id, pid):
                watch = self.watches.get(pid)
                if watch is not None and watch.instance_id == instance_id:
                    self._forget(watch)
                    if self.platform.release(pid):
                        self._watch(instance_id, pid, watch.create_time, None)  # ours to reap when it ends
            case PidfdReady(token):
                watch = self.by_token.get(token)
                if watch is not None:
                    self._report_exit(watch, "process ended")
            case Sweep():
                self._sweep()
                self.scheduler.call_later(self.sweep_interval, self.actor_ref, Sweep())
            case _:
                return super().on_receive(message)
        return None

    def _watch(
        self, instance_id: InstanceId, pid: int, create_time: float, owner: pykka.ActorRef[Any] | None
    ) -> None:
        previous = self.watches.get(pid)
        if previous is not None:
            self._forget(previous)
        watch = _Watch(instance_id, pid, create_time, owner, self.next_token)
        self.next_token += 1
        self.watches[pid] = watch
        self.by_token[watch.token] = watch
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._report_exit(watch, "process was gone before it could be watched")
            return
        assert self.selector_thread is not None
        self.selector_thread.add(watch.token, pidfd)

    def _sweep(self) -> None:
        for watch in list(self.watches.values()):
            try:
                process = psutil.Process(watch.pid)
                # psutil calls an exited-but-unreaped child "running": the zombie state is what tells.
                gone = process.status() == psutil.STATUS_ZOMBIE or (
                    watch.create_time and process.create_time() != watch.create_time
                )
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                self._report_exit(watch, "process ended (found by sweep)")
        # What no watch covers any more (a monitor restarted since, or a watch that could not be opened).
        self.platform.reap_released()
        self.platform.reap_leftovers()

    def _report_exit(self, watch: _Watch, reason: str) -> None:
        observed_at = time.time()
        self._forget(watch)
        exit_code = self.platform.reap(watch.pid)
        if watch.owner is not None:
            try:
                watch.owner.tell(
                    ProcessExited(watch.instance_id, watch.pid, exit_code, observed_at, _describe(exit_code, reason))
                )
            except pykka.ActorDeadError:
                log.warning("instance %s ended while its actor was down", watch.instance_id)
        # After the owner is told, so that a restart does not wait for it: what the group left is ours to reap.
        for pid in self.platform.leftovers():
            if pid not in self.watches:
                self._watch(watch.instance_id, pid, 0.0, None)

    def _forget(self, watch: _Watch) -> None:
        if self.watches.get(watch.pid) is watch:
            del self.watches[watch.pid]
        if self.by_token.pop(watch.token, None) is not None and self.selector_thread is not None:
            self.selector_thread.remove(watch.token)

    def _shutdown_selector(self) -> None:
        if self.selector_thread is not None:
            self.selector_thread.close()
            self.selector_thread = None


def _describe(exit_code: int | None, reason: str) -> str:
    if exit_code is None:
        return f"{reason}; exit code unknown (not our child)"
    if exit_code < 0:
        return f"killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


class _SelectorThread:
    """Waits on pidfds; registrations go through a queue and a wake-up pipe so only this thread owns the selector."""

    def __init__(self, monitor: pykka.ActorRef[Any]) -> None:
        self._monitor = monitor
        self._selector = selectors.DefaultSelector()
        self._commands: queue.SimpleQueue[tuple[str, int, int]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._fds: dict[int, int] = {}  # token -> pidfd, touched only by the selector thread
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="draas-pidfd-selector", daemon=True)
        self._thread.start()

    def add(self, token: int, pidfd: int) -> None:
        self._command("add", token, pidfd)

    def remove(self, token: int) -> None:
        self._command("remove", token, -1)

    def close(self) -> None:
        self._closed.set()
        self._command("close", 0, -1)
        self._thread.join(timeout=2)

    def _command(self, verb: str, token: int, fd: int) -> None:
        self._commands.put((verb, token, fd))
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # closed while shutting down

    def _run(self) -> None:
        try:
            while not self._closed.is_set():
                for key, _ in self._selector.select():
                    if key.data is None:
                        self._drain_commands()
                    elif self._fds.get(key.data) != key.fd:
                        # A command earlier in this batch removed the watch (and its fd number may already serve
                        # a new one): the event is stale. Unregistering it again killed this thread (KeyError).
                        continue
                    else:
                        # Unregister at once so a readable pidfd is reported exactly once.
                        self._selector.unregister(key.fd)
                        os.close(key.fd)
                        del self._fds[key.data]
                        try:
                            self._monitor.tell(PidfdReady(key.data))
                        except pykka.ActorDeadError:
                            return
        finally:
            for key in list(self._selector.get_map().values()):
                if key.data is not None:
                    os.close(key.fd)
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _drain_commands(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while not self._commands.empty():
            verb, token, fd = self._commands.get()
            if verb == "add":
                self._fds[token] = fd
                self._selector.register(fd, selectors.EVENT_READ, token)
            elif verb == "remove" and token in self._fds:
                fd = self._fds.pop(token)
                self._selector.unregister(fd)
                os.close(fd)
            # "close" only needed to wake us up
