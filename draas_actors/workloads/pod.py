"""A Kubernetes pod: how it is restarted, and which pod's reports count.

The workload is a pod (``workload_id`` = ``"<namespace>/<podName>"``). A restart, by the policy or the operator,
deletes it (``platforms/kubernetes.py``) so that its controller creates a replacement; the instance is
``Restarting`` until a pod reports again. Which pod's reports count is ``judge_pod_report``'s rule. A bare pod has
no controller and is not recreated: once the deleted pod is gone and no other pod has reported within the platform's
``replacement_grace``, the instance is ``Removed`` and ``lastReason`` says so. Start and stop are refused (409): a
pod's lifecycle belongs to its controller; scale the Deployment instead.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Mapping

from ..errors import Conflict
from ..messages import ReplacementDue, StatusReport, WorkloadMessage
from ..model import Status, StopCause, is_alive
from ..platforms.kubernetes import KubernetesPlatform
from . import CONTROL_PLANE, Failure, Host, Judged
from .reported import ReportedExits

log = logging.getLogger(__name__)

DELETED_PODS_KEPT = 8  # pods this actor deleted, remembered so that their last reports are not taken as exits
# Statuses in which a pod takes over its instance: it exists and is (about to be) serving.
TAKES_OVER = frozenset({Status.PENDING, Status.STARTING, Status.RUNNING, Status.UNHEALTHY})


class PodVerdict(enum.Enum):
    APPLY = "apply"  # about the current pod, or a new pod that takes over
    RECREATED = "recreated"  # a pod we deleted is back under the same name (a StatefulSet): it takes over
    IGNORE = "ignore"  # about a pod that is not the instance's any more: count it, change nothing
    GONE = "gone"  # the pod we deleted for a restart is gone and nothing has replaced it yet


def judge_pod_report(pod: str | None, status: Status, *, current: str | None, deleted: Collection[str]) -> PodVerdict:
    """Decide what a report about ``pod`` does to an instance whose current pod is ``current``.

    A Deployment replaces pods, so one instance hears about several pods over time:

    - a report about a pod other than the current one takes over only when it says the pod is there
      (``TAKES_OVER``); any other (Stopping, Stopped, Failed, Removed, Restarting, Unknown) is about a pod that
      was replaced and changes nothing;
    - a pod the instance itself deleted is never an exit of the instance: only its removal matters, as ``GONE``
      while no other pod has taken over; an alive report under its name is a new pod with the same name.
    """
    if pod is None or current is None:
        return PodVerdict.APPLY
    if pod in deleted:
        if status in TAKES_OVER:
            return PodVerdict.RECREATED
        return PodVerdict.GONE if pod == current and status is Status.REMOVED else PodVerdict.IGNORE
    if pod == current or status in TAKES_OVER:
        return PodVerdict.APPLY
    return PodVerdict.IGNORE


class PodWorkload:
    __slots__ = ("deleted_pods", "deleting", "exits", "host", "kubernetes")  # one per instance

    no_restart_reason = "no workload to act on"
    field = "podName"
    restart_is_stop_and_start = False  # deleting the pod is the restart: its controller makes a new one
    starts_with_control_plane = False

    def __init__(self, host: Host, kubernetes: KubernetesPlatform | None) -> None:
        self.host = host
        self.kubernetes = kubernetes
        self.exits = ReportedExits(host)
        # A tuple, not a deque: an empty deque costs 600 bytes, times every pod instance of a large control plane.
        self.deleted_pods: tuple[str, ...] = ()
        self.deleting: tuple[str, Status] | None = None  # the pod of the last delete, and the status before it

    def check_operator(self, action: str) -> None:
        if self.kubernetes is None:
            raise Conflict("operator actions on kubernetes instances are not available", field="platform")
        if action != "restart":
            scale = "to zero (kubectl scale --replicas=0)" if action == "stop" else "up (kubectl scale --replicas=1)"
            raise Conflict(
                f"a kubernetes instance cannot be told to {action}: its pod's lifecycle belongs to the pod's "
                f"controller, so scale the Deployment {scale} instead; restart deletes the pod so that its "
                "controller recreates it",
                field="platform",
            )

    def is_running(self) -> bool:
        return is_alive(self.host.record.status)

    def can_start(self) -> bool:
        record = self.host.record
        return self.kubernetes is not None and record.workload_id is not None and record.status is not Status.REMOVED

    def nothing_to_start(self) -> str:
        pod = self.host.record.workload_id
        return "no pod reported for it yet" if pod is None else f"no pod to delete: its pod {pod} was removed"

    def start(self, source: str, *, restart: bool) -> None:
        """Delete the pod so that its controller recreates it; the new pod's reports end ``Restarting``."""
        record = self.host.record
        assert self.kubernetes is not None and record.workload_id is not None
        pod = record.workload_id
        namespace, name = pod.split("/", 1)
        if pod not in self.deleted_pods:
            self.deleted_pods = (*self.deleted_pods, pod)[-DELETED_PODS_KEPT:]
        self.deleting = (pod, record.status)
        self.kubernetes.delete_pod(namespace, name, self.host.report_failure)
        changed = record.status is not Status.RESTARTING
        self.host.update(
            status=Status.RESTARTING,
            source=source,
            next_restart_at=None,
            restart_count=record.restart_count + (1 if restart else 0),
            metadata={"reason": f"deleting pod {pod} so that its controller recreates it"} if changed else None,
        )

    def stop(self) -> None:
        raise AssertionError("a pod is never stopped: check_operator refuses it")

    def judge(self, report: StatusReport, observed: Mapping[str, float]) -> Judged:
        pod = report.workload_id or self.host.record.workload_id
        if not self._about_our_pod(report, pod, observed):
            return Judged.NOT_OURS
        return self.exits.judge(report, observed, pod)

    def action_failed(self, action: str, reason: str) -> Failure:
        record = self.host.record
        if action == "delete" and self.deleting is not None:
            pod, before = self.deleting
            self.deleting = None
            self._forget(pod)  # it is still there
            if record.workload_id == pod and record.status is Status.RESTARTING and before in TAKES_OVER:
                # An operator's restart of a live pod: the pod was not deleted, so it is what it was.
                self.host.update(
                    status=before, source="kubernetes", last_reason=f"{reason}; the pod was not restarted"
                )
                return Failure.HANDLED
        if action == "delete" and record.status in (Status.RESTARTING, Status.PENDING, Status.STOPPED):
            return Failure.START
        return Failure.NOTED

    def resume(self, control_plane_start: bool) -> bool:
        return False  # the daemon reports the pod's state; the actor resumes a planned restart

    def receive(self, message: WorkloadMessage) -> None:
        if isinstance(message, ReplacementDue):
            self._on_replacement_due(message.pod)

    def deregister(self, stop_workload: bool) -> None:
        return None  # the pod belongs to its controller

    # -- which pod -----------------------------------------------------------------------------------

    def _about_our_pod(self, report: StatusReport, pod: str | None, observed: Mapping[str, float]) -> bool:
        """Whether a report about ``pod`` is to be applied (``judge_pod_report``); deals with the others itself."""
        record = self.host.record
        verdict = judge_pod_report(pod, report.status, current=record.workload_id, deleted=self.deleted_pods)
        if verdict is PodVerdict.RECREATED:
            assert pod is not None
            self._forget(pod)
            self.exits.exited_workload = None
        if verdict in (PodVerdict.APPLY, PodVerdict.RECREATED):
            # A controller replaced the pod before our restart was due: deleting the new one would be wrong.
            replaced = pod != record.workload_id
            if replaced and (self.host.cancel_restart() or record.next_restart_at is not None):
                self.host.update(source=report.source, next_restart_at=None)
            return True
        if verdict is PodVerdict.GONE:
            assert pod is not None and self.kubernetes is not None
            self.host.update(source=report.source, last_observed=observed)
            self.host.schedule(self.kubernetes.replacement_grace, ReplacementDue(pod))
            return False
        log.info(
            "instance %s: %s about pod %s, which is not its pod %s any more; not applied",
            record.instance_id, report.status.value, pod, record.workload_id,
        )
        self.host.update(
            source=report.source, last_observed=observed, rejected_transitions=record.rejected_transitions + 1
        )
        return False

    def _forget(self, pod: str) -> None:
        self.deleted_pods = tuple(deleted for deleted in self.deleted_pods if deleted != pod)

    def _on_replacement_due(self, pod: str) -> None:
        record = self.host.record
        if record.workload_id != pod or pod not in self.deleted_pods or record.status is Status.REMOVED:
            return  # a pod has taken over since
        assert self.kubernetes is not None
        reason = (
            f"pod {pod} was deleted to restart the instance and no pod replaced it within "
            f"{self.kubernetes.replacement_grace:g}s: a bare pod has no controller to recreate it"
        )
        self.host.update(
            status=Status.REMOVED, source=CONTROL_PLANE, last_reason=reason, last_stop_cause=StopCause.DELETED,
            metadata={"reason": reason},
        )
