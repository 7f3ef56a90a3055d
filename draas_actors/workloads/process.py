"""A local process: spawned or adopted by PID, watched by the process monitor, stopped by SIGTERM then SIGKILL,
and re-adopted (or its exit read) when the control plane or its actor starts again."""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Mapping

from ..errors import DraasError
from ..messages import KillIfAlive, ProcessExited, Rewatch, StatusReport, UnwatchProcess, WatchProcess, WorkloadMessage
from ..model import Status, StopCause, is_alive
from ..platforms.process import ProcessPlatform
from ..policy import is_failure
from ..records import Runtime
from . import CONTROL_PLANE, MONITOR, Failure, Host, Judged

log = logging.getLogger(__name__)


class ProcessWorkload:
    __slots__ = ("host", "kill_handle", "processes")  # one per instance: 50,000 of them on a big control plane

    no_restart_reason = "no command (adopted PID)"
    field = "process"
    restart_is_stop_and_start = True
    starts_with_control_plane = True

    def __init__(self, host: Host, processes: ProcessPlatform) -> None:
        self.host = host
        self.processes = processes
        self.kill_handle: int | None = None

    # -- the protocol -------------------------------------------------------------------------------

    def check_operator(self, action: str) -> None:
        return None  # every verb applies to a process

    def is_running(self) -> bool:
        return self.host.record.runtime is not None

    def can_start(self) -> bool:
        spec = self.host.record.process
        return spec is not None and bool(spec.command)

    def nothing_to_start(self) -> str:
        return "no command to start (it was registered by PID)"

    def start(self, source: str, *, restart: bool) -> None:
        record = self.host.record
        assert record.process is not None
        restart_count = record.restart_count + (1 if restart else 0)
        try:
            runtime = self.processes.spawn(record.instance_id, record.process)
        except (OSError, ValueError) as error:  # ValueError: a NUL byte or an unencodable character for exec
            reason = f"spawn failed: {error}"
            self.host.update(
                status=Status.FAILED, source=source, runtime=None, last_exit_code=None, next_restart_at=None,
                last_reason=reason, last_stop_cause=StopCause.START_FAILED, metadata={"reason": str(error)},
                # An attempt is a restart, as it is one in the policy's budget, though nothing started.
                restart_count=restart_count,
            )
            self.host.apply_policy(0.0, cause=reason)
            return
        self.host.update(
            status=Status.RUNNING, source=source, runtime=runtime, next_restart_at=None, restart_count=restart_count,
            metadata={"pid": str(runtime.pid)},
        )
        self._watch()

    def stop(self) -> None:
        """SIGTERM now, SIGKILL after the stop timeout unless the exit arrives first."""
        record = self.host.record
        runtime = record.runtime
        assert runtime is not None and record.process is not None
        self.processes.signal(runtime, signal.SIGTERM)
        kill = KillIfAlive(runtime.pid, runtime.create_time)
        self.kill_handle = self.host.schedule(record.process.stop_timeout, kill)

    def judge(self, report: StatusReport, observed: Mapping[str, float]) -> Judged:
        return Judged.APPLY  # a pushed report about a process goes by the transition table

    def action_failed(self, action: str, reason: str) -> Failure:
        return Failure.NOTED  # process actions run on the actor's thread: none reports back

    def resume(self, control_plane_start: bool) -> bool:
        record = self.host.record
        runtime = record.runtime
        if runtime is not None:
            if self.processes.is_same_process(runtime):
                self._readopt(runtime)
            else:
                exit_code = self.processes.reap(runtime.pid)
                self._on_exit(
                    ProcessExited(
                        record.instance_id, runtime.pid, exit_code, self.host.now(),
                        "process ended while it was not watched",
                    )
                )
            return True
        spec = record.process
        if spec is not None and spec.adopt_pid is not None and record.status is Status.PENDING:
            self._adopt(spec.adopt_pid)
            return True
        return False

    def receive(self, message: WorkloadMessage) -> None:
        match message:
            case ProcessExited():
                self._on_exit(message)
            case KillIfAlive(pid, create_time):
                runtime = self.host.record.runtime
                if runtime is not None and (runtime.pid, runtime.create_time) == (pid, create_time):
                    log.warning("instance %s did not stop in time: SIGKILL", self.host.record.instance_id)
                    self.processes.signal(runtime, signal.SIGKILL)
            case Rewatch():
                self._watch()
            case _:
                log.debug("instance %s: %s is not for a process", self.host.record.instance_id, message)

    def deregister(self, stop_workload: bool) -> None:
        self._cancel_kill()
        record = self.host.record
        runtime = record.runtime
        if runtime is not None:
            self.host.tell_monitor(UnwatchProcess(record.instance_id, runtime.pid))
            if stop_workload and record.process is not None:
                self.processes.terminate_later(runtime, record.process.stop_timeout)

    # -- the process's own ------------------------------------------------------------------------

    def _readopt(self, runtime: Runtime) -> None:
        record = self.host.record
        self.host.update(
            status=Status.RUNNING if not is_alive(record.status) and record.status is not Status.STOPPING
            else record.status,
            source=CONTROL_PLANE,
            runtime=dataclasses.replace(runtime, child=self.processes.is_child(runtime.pid)),
            metadata={"pid": str(runtime.pid), "reason": "re-adopted"},
        )
        self._watch()
        if record.status is Status.STOPPING:
            self.stop()  # the stop timer died with our predecessor

    def _adopt(self, pid: int) -> None:
        try:
            runtime = self.processes.adopt(pid)
        except DraasError as error:
            self.host.update(
                status=Status.FAILED, source=CONTROL_PLANE, last_reason=error.message,
                last_stop_cause=StopCause.START_FAILED,
            )
            return
        self.host.update(
            status=Status.RUNNING, source=CONTROL_PLANE, runtime=runtime,
            metadata={"pid": str(pid), "reason": "adopted"},
        )
        self._watch()

    def _on_exit(self, exited: ProcessExited) -> None:
        runtime = self.host.record.runtime
        if runtime is None or runtime.pid != exited.pid:
            return  # about a process we have already let go of
        self._cancel_kill()
        failed = is_failure(self.host.record.restart_policy, exited.exit_code)
        self.host.exited(
            Status.FAILED if failed else Status.STOPPED, exited.reason, exit_cause(exited.exit_code, failed),
            exited.observed_at - runtime.started_at,
            source=MONITOR, runtime=None, last_exit_code=exited.exit_code, metadata=_exit_metadata(exited),
        )

    def _watch(self) -> None:
        record = self.host.record
        runtime = record.runtime
        if runtime is not None:
            self.host.tell_monitor(WatchProcess(record.instance_id, runtime.pid, runtime.create_time, self.host.ref))

    def _cancel_kill(self) -> None:
        if self.kill_handle is not None:
            self.host.cancel_timer(self.kill_handle)
            self.kill_handle = None


def exit_cause(exit_code: int | None, failed: bool) -> StopCause:
    """An exit's cause: a signal's (a negative code), else a failure or a success as the policy counts it."""
    if exit_code is not None and exit_code < 0:
        return StopCause.KILLED
    return StopCause.CRASHED if failed else StopCause.EXITED


def _exit_metadata(exited: ProcessExited) -> dict[str, str]:
    metadata = {"pid": str(exited.pid), "reason": exited.reason}
    if exited.exit_code is not None:
        metadata["exitCode"] = str(exited.exit_code)
    return metadata
