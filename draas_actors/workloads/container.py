"""A Docker container: started and stopped through the engine (``platforms/docker.py``), observed through the
Docker daemon's reports; a restart is a stop, then a start."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import Conflict
from ..messages import StatusReport, WorkloadMessage
from ..model import Status, is_alive
from ..platforms.docker import DockerPlatform
from . import Failure, Host, Judged
from .reported import ReportedExits


class ContainerWorkload:
    __slots__ = ("docker", "exits", "host")  # one per instance: 50,000 of them on a big control plane

    no_restart_reason = "no workload to act on"
    field = "containerId"
    restart_is_stop_and_start = True
    starts_with_control_plane = False

    def __init__(self, host: Host, docker: DockerPlatform | None) -> None:
        self.host = host
        self.docker = docker
        self.exits = ReportedExits(host)

    def check_operator(self, action: str) -> None:
        if self.docker is None:
            raise Conflict("operator actions on docker instances are not available", field="platform")
        if action == "stop" and self.is_running() and not self.can_start():
            # Reported alive, but no report named its container: there is nothing to ask the engine to stop.
            raise Conflict(f"instance has {self.nothing_to_start()}", field=self.field)

    def is_running(self) -> bool:
        return is_alive(self.host.record.status)

    def can_start(self) -> bool:
        return self.docker is not None and self.host.record.workload_id is not None

    def nothing_to_start(self) -> str:
        return "no container reported for it yet"

    def start(self, source: str, *, restart: bool) -> None:
        """Ask the engine to start the container; the Docker daemon's report of it says when it runs."""
        record = self.host.record
        assert self.docker is not None and record.workload_id is not None
        self.docker.start(record.workload_id, self.host.report_failure)
        self.host.update(
            source=source, next_restart_at=None, restart_count=record.restart_count + (1 if restart else 0)
        )

    def stop(self) -> None:
        record = self.host.record
        assert self.docker is not None and record.workload_id is not None
        self.docker.stop(record.workload_id, self.host.report_failure)  # SIGKILL after [docker] stopTimeout

    def judge(self, report: StatusReport, observed: Mapping[str, float]) -> Judged:
        return self.exits.judge(report, observed, report.workload_id or self.host.record.workload_id)

    def action_failed(self, action: str, reason: str) -> Failure:
        if action == "start" and self.host.record.status in (Status.RESTARTING, Status.PENDING, Status.STOPPED):
            return Failure.START
        return Failure.NOTED

    def resume(self, control_plane_start: bool) -> bool:
        return False  # the daemon reports the container's state; the actor resumes a planned restart

    def receive(self, message: WorkloadMessage) -> None:
        return None  # no timers or watches of its own

    def deregister(self, stop_workload: bool) -> None:
        return None  # a container outlives its registration: its own restart policy is Docker's
