"""What differs between platforms, one file each: how a workload is started, stopped, judged and resumed.

The instance actor (``actors/instance.py``) keeps what every platform shares: ordering and staleness of reports, the
transition table, the restart policy, operator verbs, publishing. It holds one ``Workload`` and talks to it through
the protocol below; the workload calls back through ``Host``. A workload never imports the actor module, so "how is
a pod restarted?" is answered by ``pod.py`` alone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pykka

from ..messages import StatusReport, WorkloadMessage
from ..model import Platform, Status, StopCause
from ..platforms.docker import DockerPlatform
from ..platforms.kubernetes import KubernetesPlatform
from ..platforms.process import ProcessPlatform
from ..records import InstanceRecord

# Sources an instance's own changes are made under, shown as a change's source.
MONITOR = "process-monitor"
POLICY = "restart-policy"
OPERATOR = "operator"
CONTROL_PLANE = "control-plane"


class Judged(enum.Enum):
    """What a workload made of a report about it."""

    APPLY = "apply"  # the actor applies it: the transition table decides
    DONE = "done"  # the workload has applied it (an exit, or a step of a stop it waits out)
    NOT_OURS = "not-ours"  # about another workload (a replaced pod): not applied, dealt with by the workload


class Failure(enum.Enum):
    """What a failed platform action means for the instance."""

    START = "start"  # the workload was not started: Failed, and the restart policy decides
    NOTED = "noted"  # nothing changed but the reason
    HANDLED = "handled"  # the workload has dealt with it


class Host(Protocol):
    """What a workload may ask of its instance actor."""

    @property
    def record(self) -> InstanceRecord: ...

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        """This instance's actor, for a message that names who to tell back (the process monitor's watch)."""

    def now(self) -> float: ...

    def update(
        self, *, source: str, status: Status | None = None, metadata: Mapping[str, str] | None = None, **fields: Any
    ) -> None:
        """Change the record (and publish when the status changes)."""

    def exited(self, status: Status, reason: str, cause: StopCause, ran_for: float, **fields: Any) -> None:
        """The workload ended: the end of a stop that was asked for, or a case for the restart policy."""

    def apply_policy(self, ran_for: float, *, cause: str | None = None) -> None:
        """Let the restart policy act on the Failed or Stopped record (``cause``: a failure to start, kept in the
        reason if the policy gives up)."""

    def cancel_restart(self) -> bool:
        """Forget a planned restart (the platform has already replaced the workload); False when none was timed."""

    def report_failure(self, action: str, error: str, retryable: bool) -> None:
        """Callable from any thread: a platform action failed (``Workload.action_failed`` says what it means)."""

    def schedule(self, delay: float, message: WorkloadMessage) -> int:
        """Tell ``message`` to this instance's actor (and so to its workload) after ``delay`` seconds."""

    def cancel_timer(self, handle: int) -> None: ...

    def tell_monitor(self, message: Any) -> None:
        """Tell the process monitor (watch or unwatch a PID)."""


class Workload(Protocol):
    """One instance's workload on its platform."""

    # Why a restart policy cannot act ("no command (adopted PID)"), and the API field a refused verb names.
    no_restart_reason: str
    field: str
    # A restart is a stop then a start (False for a pod: deleting it is the restart).
    restart_is_stop_and_start: bool
    # Started by the control plane at its start (Pending, after a shutdown stop, by the policy): processes only.
    starts_with_control_plane: bool

    def check_operator(self, action: str) -> None:
        """Raise ``Conflict`` when an operator's ``action`` (start, stop, restart) cannot be done on this platform."""

    def is_running(self) -> bool: ...

    def can_start(self) -> bool: ...

    def nothing_to_start(self) -> str:
        """Why ``can_start`` is False, as the end of "instance has ..."."""

    def start(self, source: str, *, restart: bool) -> None: ...

    def stop(self) -> None:
        """Begin a stop (the record is already Stopping); the exit it causes arrives as a report or a message."""

    def judge(self, report: StatusReport, observed: Mapping[str, float]) -> Judged: ...

    def action_failed(self, action: str, reason: str) -> Failure: ...

    def resume(self, control_plane_start: bool) -> bool:
        """After the actor's (re)creation: True when the workload has picked itself up, False to let the actor do it."""

    def receive(self, message: WorkloadMessage) -> None: ...

    def deregister(self, stop_workload: bool) -> None: ...


@dataclass(frozen=True)
class Platforms:
    """The drivers the workloads act through."""

    processes: ProcessPlatform
    docker: DockerPlatform | None = None
    kubernetes: KubernetesPlatform | None = None


WorkloadFactory = Callable[[InstanceRecord, Host, Platforms], Workload]


def make_workload(record: InstanceRecord, host: Host, platforms: Platforms) -> Workload:
    """The workload for the record's platform: the one place that asks which platform an instance is on."""
    # Imported here: each of them imports this module's protocol.
    from .container import ContainerWorkload
    from .pod import PodWorkload
    from .process import ProcessWorkload

    if record.platform is Platform.DOCKER:
        return ContainerWorkload(host, platforms.docker)
    if record.platform is Platform.KUBERNETES:
        return PodWorkload(host, platforms.kubernetes)
    return ProcessWorkload(host, platforms.processes)


__all__ = [
    "CONTROL_PLANE",
    "MONITOR",
    "OPERATOR",
    "POLICY",
    "Failure",
    "Host",
    "Judged",
    "Platforms",
    "Workload",
    "WorkloadFactory",
    "make_workload",
]
