"""The instance actor: owns one instance's record, applies reports and exits, runs its restart policy.

Written against pykka's ``Actor`` API only (``on_receive`` with frozen-dataclass messages, refs, no
proxies, no blocking waits), so the execution model can move to a pooled dispatcher without touching it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pykka

from ..commit import Outcome, Sync, Ticket
from ..errors import Conflict, DraasError
from ..messages import (
    DeleteRecord,
    Deregister,
    GetInstance,
    KillIfAlive,
    PlatformActionFailed,
    ProcessExited,
    Publish,
    ReplacementDue,
    RestartDue,
    RestartInstance,
    Resume,
    Rewatch,
    SaveRecord,
    SetRestartPolicy,
    StartInstance,
    StatusChanged,
    StatusReport,
    StopInstance,
    UnwatchProcess,
    WatchProcess,
)
from ..model import ChangeKind, Platform, Status, can_transition, is_alive
from ..platforms.docker import DockerPlatform
from ..platforms.kubernetes import TAKES_OVER, KubernetesPlatform, PodVerdict, judge_pod_report, pod_key
from ..platforms.process import ProcessPlatform
from ..policy import (
    BUDGET_EXHAUSTED,
    GiveUp,
    RestartHistory,
    is_failure,
    plan_restart,
    starts_with_control_plane,
    wants_restart,
)
from ..records import InstanceRecord, Runtime
from ..scheduler import Scheduler
from .refs import CoreRefs
from .watched import WatchedActor

log = logging.getLogger(__name__)

MONITOR = "process-monitor"
POLICY = "restart-policy"
OPERATOR = "operator"
CONTROL_PLANE = "control-plane"
OPERATOR_STOP = "stopped by operator"
SHUTDOWN_STOP = "stopped at control-plane shutdown"
DELETED_PODS_KEPT = 8  # pods this actor deleted, remembered so that their last reports are not taken as exits


@dataclass(frozen=True)
class InstanceServices:
    """What every instance actor shares: core refs, the timer, the platforms, and injectable clock and dice."""

    refs: CoreRefs
    scheduler: Scheduler
    processes: ProcessPlatform
    docker: DockerPlatform | None = None
    kubernetes: KubernetesPlatform | None = None
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = field(default=random.random)


class InstanceActor(WatchedActor):
    """One instance: applies reports and exits, runs its restart policy, carries out operator actions.

    Kubernetes instances: the workload is a pod (``workload_id`` = ``"<namespace>/<podName>"``) and a restart,
    by the policy or the operator, deletes it so that its controller creates a replacement; the instance is
    ``Restarting`` until a pod reports again. Which pod's reports count is ``judge_pod_report``'s rule. A bare pod
    has no controller and is not recreated: once the deleted pod is gone and no other pod has reported within the
    platform's ``replacement_grace``, the instance is ``Removed`` and ``lastReason`` says so. Start and stop are
    refused (409): a pod's lifecycle belongs to its controller; scale the Deployment instead.
    """

    kind = "instance"

    def __init__(
        self, *, record: InstanceRecord, services: InstanceServices, watcher: pykka.ActorRef[Any] | None
    ) -> None:
        super().__init__(watcher=watcher, key=record.instance_id)
        self.record = record
        self.s = services
        self.restart_token = 0
        self.restart_handle: int | None = None
        self.kill_handle: int | None = None
        self.restart_after_stop = False
        self.stop_reason = OPERATOR_STOP
        self.deleted_pods: collections.deque[str] = collections.deque(maxlen=DELETED_PODS_KEPT)
        self.deleting: tuple[str, Status] | None = None  # the pod of the last delete, and the status before it
        # The writes of a pushed report being applied, sent once its outcome is known (None: sent at once).
        self._held: list[tuple[str, Publish | SaveRecord]] | None = None
        # The container or pod whose exit was handled last, until it is seen alive again: a daemon lists an exited
        # workload again at every resync, with a newer observedAt, and that listing is not a new exit.
        self.exited_workload: str | None = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case StatusReport(ticket=None):
                self._on_report(message)
            case StatusReport(ticket=Ticket() as ticket):
                self._report_with_ack(message, ticket)
            case Sync():
                self._sync(message)
            case ProcessExited():
                self._on_exit(message)
            case RestartDue(token):
                if token == self.restart_token and self.record.status is Status.RESTARTING:
                    self.restart_handle = None
                    self._spawn(POLICY, restart=True)
            case KillIfAlive(pid, create_time):
                runtime = self.record.runtime
                if runtime is not None and (runtime.pid, runtime.create_time) == (pid, create_time):
                    log.warning("instance %s did not stop in time: SIGKILL", self.record.instance_id)
                    self.s.processes.signal(runtime, signal.SIGKILL)
            case GetInstance():
                return self.record
            case StartInstance():
                return self._operator_start()
            case StopInstance(shutdown):
                return self._operator_stop(restart=False, shutdown=shutdown)
            case RestartInstance():
                return self._operator_restart()
            case SetRestartPolicy(policy):
                self._update(source=OPERATOR, restart_policy=policy)
                return self.record
            case PlatformActionFailed(action, error, retryable):
                self._on_action_failed(action, error, retryable)
            case ReplacementDue(pod):
                self._on_replacement_due(pod)
            case Rewatch():
                self._watch()
            case Resume(control_plane_start):
                self._resume(control_plane_start)
            case Deregister(stop_workload):
                self._deregister(stop_workload)
            case _:
                return super().on_receive(message)
        return None

    # -- reports and exits ------------------------------------------------------------------------

    def _on_report(self, report: StatusReport) -> Outcome:
        """Apply a report; what it did, for the pusher's answer."""
        if report.kind is ChangeKind.CONFIGURATION:
            return self._on_configuration_change(report)
        record = self.record
        last = record.last_observed.get(report.source)
        if report.observed_at == last:
            # The very report this source last made, again (a daemon's resync, or a push sent again after a 503): it
            # changes nothing, and its answer still waits (Sync) for the commit of what the first one did.
            return Outcome.APPLIED
        if last is not None and report.observed_at < last:
            # Older than what this source already told us: a replay or a reordered push.
            self._update(source=report.source, stale_dropped=record.stale_dropped + 1)
            return Outcome.STALE
        observed = {**record.last_observed, report.source: report.observed_at}
        workload = self._workload_of(report)
        if record.platform is Platform.KUBERNETES and not self._about_our_pod(report, workload, observed):
            return Outcome.INVALID_TRANSITION
        record = self.record
        if record.platform is not Platform.PROCESS and report.status in (Status.FAILED, Status.STOPPED):
            if "exitCode" in report.metadata:
                self._on_workload_exit(report, observed, workload)
                return Outcome.APPLIED
            if record.status is Status.STOPPING:
                # Docker's "kill" comes before the exit itself: stay Stopping until the exit arrives.
                self._update(source=report.source, last_observed=observed)
                return Outcome.APPLIED
        if report.status is not record.status and not can_transition(record.status, report.status):
            log.info(
                "instance %s: %s -> %s from %s is not a valid transition; dropped",
                record.instance_id, record.status.value, report.status.value, report.source,
            )
            self._update(
                source=report.source,
                last_observed=observed,
                rejected_transitions=record.rejected_transitions + 1,
            )
            return Outcome.INVALID_TRANSITION
        if is_alive(report.status):
            self.exited_workload = None
        self._update(
            status=report.status,
            source=report.source,
            metadata=report.metadata,
            last_observed=observed,
            workload_id=workload,
            # lastReason explains the last time it was not running; "started" would wipe that explanation. Pending's
            # reason ("created") only says it had not started yet, which stops being true when it runs.
            last_reason=(None if record.status is Status.PENDING else record.last_reason) if is_alive(report.status)
            else report.metadata.get("reason", record.last_reason),
        )
        return Outcome.APPLIED

    def _on_configuration_change(self, report: StatusReport) -> Outcome:
        """Upstream's ConfigurationChanged: a change in the log and to subscribers, the lifecycle status untouched."""
        record = self.record
        last = record.last_observed.get(report.source)
        if last is not None and report.observed_at < last:
            self._update(source=report.source, stale_dropped=record.stale_dropped + 1)
            return Outcome.STALE
        observed = {**record.last_observed, report.source: report.observed_at}
        self._update(source=report.source, kind=ChangeKind.CONFIGURATION, metadata=report.metadata,
                     last_observed=observed)
        return Outcome.APPLIED

    def _workload_of(self, report: StatusReport) -> str | None:
        if self.record.platform is Platform.KUBERNETES:
            return pod_key(report.metadata) or self.record.workload_id
        return report.metadata.get("containerId") or self.record.workload_id

    def _about_our_pod(self, report: StatusReport, pod: str | None, observed: Mapping[str, float]) -> bool:
        """Whether a report about ``pod`` is to be applied (``judge_pod_report``); deals with the others itself."""
        record = self.record
        verdict = judge_pod_report(pod, report.status, current=record.workload_id, deleted=self.deleted_pods)
        if verdict is PodVerdict.RECREATED:
            assert pod is not None
            self.deleted_pods.remove(pod)
            self.exited_workload = None
        if verdict in (PodVerdict.APPLY, PodVerdict.RECREATED):
            if pod != record.workload_id and (self.restart_handle is not None or record.next_restart_at is not None):
                # A controller replaced the pod before our restart was due: deleting the new one would be wrong.
                self._cancel(restart=True)
                self._update(source=report.source, next_restart_at=None)
            return True
        if verdict is PodVerdict.GONE:
            assert pod is not None and self.s.kubernetes is not None
            self._update(source=report.source, last_observed=observed)
            self.s.scheduler.call_later(self.s.kubernetes.replacement_grace, self.actor_ref, ReplacementDue(pod))
            return False
        log.info(
            "instance %s: %s about pod %s, which is not its pod %s any more; not applied",
            record.instance_id, report.status.value, pod, record.workload_id,
        )
        self._update(
            source=report.source, last_observed=observed, rejected_transitions=record.rejected_transitions + 1
        )
        return False

    def _on_replacement_due(self, pod: str) -> None:
        record = self.record
        if record.workload_id != pod or pod not in self.deleted_pods or record.status is Status.REMOVED:
            return  # a pod has taken over since
        assert self.s.kubernetes is not None
        reason = (
            f"pod {pod} was deleted to restart the instance and no pod replaced it within "
            f"{self.s.kubernetes.replacement_grace:g}s: a bare pod has no controller to recreate it"
        )
        self._update(status=Status.REMOVED, source=CONTROL_PLANE, last_reason=reason, metadata={"reason": reason})

    def _on_workload_exit(self, report: StatusReport, observed: Mapping[str, float], workload: str | None) -> None:
        """A container or pod exit reported by a daemon: the counterpart of ``_on_exit`` for processes."""
        record = self.record
        exit_code = _int_or_none(report.metadata.get("exitCode"))
        duplicate = (
            record.last_exit_at is not None and report.observed_at <= record.last_exit_at
        ) or (workload is not None and workload == self.exited_workload)
        self.exited_workload = workload
        ran_for = report.observed_at - record.status_since if is_alive(record.status) else 0.0
        common: dict[str, Any] = dict(
            source=report.source, metadata=report.metadata, last_observed=observed, workload_id=workload,
            last_exit_code=exit_code, last_exit_at=max(report.observed_at, record.last_exit_at or 0.0),
        )
        if duplicate:
            self._update(**common)  # a replay of an exit we have handled: restart nothing twice
            return
        reason = report.metadata.get("reason") or f"exited with code {exit_code}"
        self._record_exit(report.status, reason, ran_for, **common)

    def _on_action_failed(self, action: str, error: str, retryable: bool) -> None:
        record = self.record
        source = record.platform.value
        reason = f"{source} {action} failed: {error}"
        if action == "delete" and self.deleting is not None:
            pod, before = self.deleting
            self.deleting = None
            with contextlib.suppress(ValueError):
                self.deleted_pods.remove(pod)  # it is still there
            if record.workload_id == pod and record.status is Status.RESTARTING and before in TAKES_OVER:
                # An operator's restart of a live pod: the pod was not deleted, so it is what it was.
                self._update(status=before, source=source, last_reason=f"{reason}; the pod was not restarted")
                return
        if action in ("start", "delete") and record.status in (Status.RESTARTING, Status.PENDING, Status.STOPPED):
            self._update(status=Status.FAILED, source=source, last_reason=reason if retryable
                         else f"{reason}; not retried", metadata={"reason": reason})
            if retryable:
                self._apply_policy(ran_for=0.0)
        else:
            self._update(source=source, last_reason=reason)

    def _on_exit(self, exited: ProcessExited) -> None:
        runtime = self.record.runtime
        if runtime is None or runtime.pid != exited.pid:
            return  # about a process we have already let go of
        self._cancel(kill=True)
        ran_for = exited.observed_at - runtime.started_at
        metadata = _exit_metadata(exited)
        failed = is_failure(self.record.restart_policy, exited.exit_code)
        self._record_exit(
            Status.FAILED if failed else Status.STOPPED, exited.reason, ran_for,
            source=MONITOR, runtime=None, last_exit_code=exited.exit_code, metadata=metadata,
        )

    def _record_exit(self, status: Status, reason: str, ran_for: float, **fields: Any) -> None:
        """An exit, however it was observed: the end of a stop we asked for, or a case for the restart policy."""
        if self.record.status is Status.STOPPING:
            self._update(status=Status.STOPPED, last_reason=self.stop_reason, **fields)
            if self.restart_after_stop:
                self.restart_after_stop = False
                self._spawn(OPERATOR, restart=True)
            return
        self._update(status=status, last_reason=reason, **fields)
        self._apply_policy(max(0.0, ran_for))

    def _apply_policy(self, ran_for: float, *, cause: str | None = None) -> None:
        """Plan the restart the policy wants; ``cause``, a failure to start, is kept in the reason if it gives up."""
        record = self.record
        policy = record.restart_policy
        if not wants_restart(policy, exit_code=record.last_exit_code, operator_stopped=record.operator_stopped):
            return
        if not self._can_spawn():
            why = "no command (adopted PID)" if record.platform is Platform.PROCESS else "no workload to act on"
            self._update(source=POLICY, last_reason=f"{record.last_reason}; not restarted: {why}")
            return
        now = self.s.clock()
        decision = plan_restart(policy, record.history, now=now, ran_for=ran_for, rand=self.s.rand())
        if isinstance(decision, GiveUp):
            # A spawn failure has no exit code to tell it by: without its cause the reason would hide it.
            reason = decision.reason if cause is None else f"{cause}; {decision.reason}"
            log.error("instance %s: %s", record.instance_id, reason)
            self._update(
                status=Status.FAILED,
                source=POLICY,
                history=decision.history,
                last_reason=reason,
                next_restart_at=None,
                metadata={"reason": reason},
                publish=True,  # Failed, then Failed for good: subscribers and the change feed are told too
            )
            return
        self._update(
            status=Status.RESTARTING,
            source=POLICY,
            history=decision.history,
            next_restart_at=now + decision.delay,
            metadata={"attempt": str(decision.history.series), "delay": f"{decision.delay:.3f}"},
        )
        self._restart_in(decision.delay)

    def _restart_in(self, delay: float) -> None:
        """Make the planned restart after ``delay`` seconds; at once, with no timer hop, when it is due (a crash
        after a healthy run is replaced at once)."""
        self.restart_token += 1
        if delay <= 0:
            self._spawn(POLICY, restart=True)
        else:
            self.restart_handle = self.s.scheduler.call_later(delay, self.actor_ref, RestartDue(self.restart_token))

    # -- operator actions -------------------------------------------------------------------------

    def _operator_start(self) -> InstanceRecord:
        self._require_controllable("start")
        if self._workload_running():
            return self.record  # already running: starting is idempotent
        if not self._can_spawn():
            raise Conflict(f"instance has {self._nothing_to_start()}", field=self._workload_field())
        self._cancel(restart=True)
        self._update(source=OPERATOR, operator_stopped=False, history=RestartHistory())
        self._spawn(OPERATOR)
        return self.record

    def _operator_stop(self, *, restart: bool, shutdown: bool = False) -> InstanceRecord:
        self._require_controllable("restart" if restart else "stop")
        running = self._workload_running()
        if shutdown and not running:
            return self.record  # nothing to stop; a pending restart resumes at the next start
        if running and self.record.platform is Platform.DOCKER and not self._can_spawn():
            # Reported alive, but no report named its container: there is nothing to ask the engine to stop.
            raise Conflict(f"instance has {self._nothing_to_start()}", field=self._workload_field())
        self._cancel(restart=True)
        self.restart_after_stop = restart
        self.stop_reason = SHUTDOWN_STOP if shutdown else OPERATOR_STOP
        source = CONTROL_PLANE if shutdown else OPERATOR
        if not running:
            status = Status.STOPPED if self.record.status is Status.RESTARTING else self.record.status
            self._update(status=status, source=source, operator_stopped=True, next_restart_at=None)
            return self.record
        self._update(
            status=Status.STOPPING,
            source=source,
            operator_stopped=not (restart or shutdown),
            next_restart_at=None,
        )
        self._signal_stop(self.record.runtime)
        return self.record

    def _signal_stop(self, runtime: Runtime | None) -> None:
        """SIGTERM now, SIGKILL after the stop timeout unless the exit arrives first."""
        if self.record.platform is Platform.DOCKER:
            assert self.s.docker is not None and self.record.workload_id is not None
            self.s.docker.stop(self.record.workload_id, self._report_failure)  # after [docker] stopTimeout
            return
        assert runtime is not None and self.record.process is not None
        self.s.processes.signal(runtime, signal.SIGTERM)
        self.kill_handle = self.s.scheduler.call_later(
            self.record.process.stop_timeout,
            self.actor_ref,
            KillIfAlive(runtime.pid, runtime.create_time),
        )

    def _operator_restart(self) -> InstanceRecord:
        self._require_controllable("restart")
        if not self._can_spawn():
            raise Conflict(f"instance has {self._nothing_to_start()}", field=self._workload_field())
        # A pod is restarted by deleting it (its controller makes a new one), not by a stop and a start.
        if self._workload_running() and self.record.platform is not Platform.KUBERNETES:
            self._update(source=OPERATOR, history=RestartHistory())
            return self._operator_stop(restart=True)
        self._cancel(restart=True)
        self._update(source=OPERATOR, operator_stopped=False, history=RestartHistory())
        self._spawn(OPERATOR, restart=True)
        return self.record

    def _require_controllable(self, action: str) -> None:
        platform = self.record.platform
        if (platform is Platform.DOCKER and self.s.docker is None) or (
            platform is Platform.KUBERNETES and self.s.kubernetes is None
        ):
            raise Conflict(f"operator actions on {platform.value} instances are not available", field="platform")
        if platform is Platform.KUBERNETES and action != "restart":
            scale = "to zero (kubectl scale --replicas=0)" if action == "stop" else "up (kubectl scale --replicas=1)"
            raise Conflict(
                f"a kubernetes instance cannot be told to {action}: its pod's lifecycle belongs to the pod's "
                f"controller, so scale the Deployment {scale} instead; restart deletes the pod so that its "
                "controller recreates it",
                field="platform",
            )

    def _workload_running(self) -> bool:
        if self.record.platform is Platform.PROCESS:
            return self.record.runtime is not None
        return is_alive(self.record.status)

    def _workload_field(self) -> str:
        return {Platform.PROCESS: "process", Platform.DOCKER: "containerId"}.get(self.record.platform, "podName")

    def _nothing_to_start(self) -> str:
        if self.record.platform is Platform.PROCESS:
            return "no command to start (it was registered by PID)"
        if self.record.platform is Platform.DOCKER:
            return "no container reported for it yet"
        if self.record.workload_id is None:
            return "no pod reported for it yet"
        return f"no pod to delete: its pod {self.record.workload_id} was removed"

    def _report_failure(self, action: str, error: str, retryable: bool) -> None:
        """Called on a platform's worker thread: hand the failure to ourselves as a message."""
        try:
            self.actor_ref.tell(PlatformActionFailed(action, error, retryable))
        except pykka.ActorDeadError:
            log.warning("instance %s: %s failed after its actor stopped: %s", self.record.instance_id, action, error)

    # -- life cycle -------------------------------------------------------------------------------

    def _resume(self, control_plane_start: bool) -> None:
        """First message after (re)creation: pick up the workload where the stored record left it."""
        record = self.record
        if record.platform is not Platform.PROCESS:
            if record.status is Status.RESTARTING and not record.operator_stopped:
                self._resume_restart()  # the daemon will not report again: nothing has changed for it
            else:
                self._update(source=CONTROL_PLANE)
            return
        runtime = record.runtime
        if runtime is not None:
            if self.s.processes.is_same_process(runtime):
                child = self.s.processes.is_child(runtime.pid)
                self._update(
                    status=Status.RUNNING if not is_alive(record.status) and record.status is not Status.STOPPING
                    else record.status,
                    source=CONTROL_PLANE,
                    runtime=dataclasses.replace(runtime, child=child),
                    metadata={"pid": str(runtime.pid), "reason": "re-adopted"},
                )
                self._watch()
                if record.status is Status.STOPPING:
                    self._signal_stop(self.record.runtime)  # the stop timer died with our predecessor
            else:
                exit_code = self.s.processes.reap(runtime.pid)
                self._on_exit(
                    ProcessExited(
                        record.instance_id, runtime.pid, exit_code, self.s.clock(),
                        "process ended while it was not watched",
                    )
                )
            return
        spec = record.process
        if spec is not None and spec.adopt_pid is not None and record.status is Status.PENDING:
            self._adopt(spec.adopt_pid)
        elif record.status is Status.PENDING and not record.operator_stopped:
            self._spawn(CONTROL_PLANE)
        elif record.status is Status.RESTARTING and not record.operator_stopped:
            self._resume_restart()
        elif control_plane_start and record.last_reason == SHUTDOWN_STOP and self._can_spawn():
            self._spawn(CONTROL_PLANE)  # we stopped it only because we were shutting down
        elif (
            control_plane_start
            and record.status in (Status.STOPPED, Status.FAILED)
            and not (record.last_reason or "").endswith(BUDGET_EXHAUSTED)
            and self._can_spawn()
            and starts_with_control_plane(record.restart_policy, operator_stopped=record.operator_stopped)
        ):
            self._update(source=CONTROL_PLANE, operator_stopped=False)
            self._spawn(CONTROL_PLANE)
        else:
            self._update(source=CONTROL_PLANE)

    def _resume_restart(self) -> None:
        """A restart was planned when our predecessor went down (its timer went with it): make it when it is due."""
        due = self.record.next_restart_at
        self._restart_in(0.0 if due is None else due - self.s.clock())

    def _adopt(self, pid: int) -> None:
        try:
            runtime = self.s.processes.adopt(pid)
        except DraasError as error:
            self._update(status=Status.FAILED, source=CONTROL_PLANE, last_reason=error.message)
            return
        self._update(
            status=Status.RUNNING, source=CONTROL_PLANE, runtime=runtime,
            metadata={"pid": str(pid), "reason": "adopted"},
        )
        self._watch()

    def _deregister(self, stop_workload: bool) -> None:
        self._cancel(restart=True, kill=True)
        runtime = self.record.runtime
        if runtime is not None:
            self._tell("monitor", UnwatchProcess(self.record.instance_id, runtime.pid))
            if stop_workload and self.record.process is not None:
                self.s.processes.terminate_later(runtime, self.record.process.stop_timeout)
        self._tell("store", DeleteRecord(self.record.instance_id, self.record.created_at))
        self.stop()

    def _spawn(self, source: str, *, restart: bool = False) -> None:
        if self.record.platform is Platform.DOCKER:
            self._start_container(source, restart=restart)
            return
        if self.record.platform is Platform.KUBERNETES:
            self._delete_pod(source, restart=restart)
            return
        spec = self.record.process
        assert spec is not None
        try:
            runtime = self.s.processes.spawn(self.record.instance_id, spec)
        except (OSError, ValueError) as error:  # ValueError: a NUL byte or an unencodable character for exec
            reason = f"spawn failed: {error}"
            self._update(
                status=Status.FAILED, source=source, runtime=None, last_exit_code=None,
                next_restart_at=None, last_reason=reason, metadata={"reason": str(error)},
                # An attempt is a restart, as it is one in the policy's budget, though nothing started.
                restart_count=self.record.restart_count + (1 if restart else 0),
            )
            self._apply_policy(ran_for=0.0, cause=reason)
            return
        self._update(
            status=Status.RUNNING,
            source=source,
            runtime=runtime,
            next_restart_at=None,
            restart_count=self.record.restart_count + (1 if restart else 0),
            metadata={"pid": str(runtime.pid)},
        )
        self._watch()

    def _start_container(self, source: str, *, restart: bool) -> None:
        """Ask the engine to start the container; the Docker daemon's report of it says when it runs."""
        assert self.s.docker is not None and self.record.workload_id is not None
        self.s.docker.start(self.record.workload_id, self._report_failure)
        self._update(
            source=source,
            next_restart_at=None,
            restart_count=self.record.restart_count + (1 if restart else 0),
        )

    def _delete_pod(self, source: str, *, restart: bool) -> None:
        """Delete the pod so that its controller recreates it; the new pod's reports end ``Restarting``."""
        assert self.s.kubernetes is not None and self.record.workload_id is not None
        pod = self.record.workload_id
        namespace, name = pod.split("/", 1)
        if pod not in self.deleted_pods:
            self.deleted_pods.append(pod)
        self.deleting = (pod, self.record.status)
        self.s.kubernetes.delete_pod(namespace, name, self._report_failure)
        changed = self.record.status is not Status.RESTARTING
        self._update(
            status=Status.RESTARTING,
            source=source,
            next_restart_at=None,
            restart_count=self.record.restart_count + (1 if restart else 0),
            metadata={"reason": f"deleting pod {pod} so that its controller recreates it"} if changed else None,
        )

    def _watch(self) -> None:
        runtime = self.record.runtime
        if runtime is not None:
            self._tell(
                "monitor",
                WatchProcess(self.record.instance_id, runtime.pid, runtime.create_time, self.actor_ref),
            )

    def _can_spawn(self) -> bool:
        if self.record.platform is Platform.DOCKER:
            return self.s.docker is not None and self.record.workload_id is not None
        if self.record.platform is Platform.KUBERNETES:
            return (
                self.s.kubernetes is not None
                and self.record.workload_id is not None
                and self.record.status is not Status.REMOVED
            )
        return self.record.process is not None and bool(self.record.process.command)

    def _cancel(self, *, restart: bool = False, kill: bool = False) -> None:
        if restart and self.restart_handle is not None:
            self.s.scheduler.cancel(self.restart_handle)
            self.restart_handle = None
            self.restart_token += 1
        if kill and self.kill_handle is not None:
            self.s.scheduler.cancel(self.kill_handle)
            self.kill_handle = None

    # -- persistence and publication --------------------------------------------------------------

    def _update(
        self,
        *,
        source: str,
        status: Status | None = None,
        metadata: Mapping[str, str] | None = None,
        kind: ChangeKind = ChangeKind.STATUS,
        publish: bool = False,
        **fields: Any,
    ) -> None:
        """Apply changes to the record; publish a StatusChanged only when the status really changed, for a
        configuration change (``kind``: its metadata goes to the change only, the record keeps its status's), or
        when asked to (``publish``: a change that leaves the status as it was, such as giving up)."""
        old = self.record
        now = self.s.clock()
        new_status = status if status is not None else old.status
        changed = new_status is not old.status
        if metadata is not None and kind is ChangeKind.STATUS:
            fields["metadata"] = dict(metadata)
        self.record = old.replace(
            status=new_status,
            status_since=now if changed else old.status_since,
            updated_at=now,
            version=old.version + 1,
            **fields,
        )
        if changed or kind is ChangeKind.CONFIGURATION or publish:
            change = StatusChanged(
                instance_id=old.instance_id,
                platform=old.platform,
                old_status=old.status,
                new_status=new_status,
                source=source,
                timestamp=now,
                metadata=dict(metadata or {}),
                kind=kind,
            )
            self._write("bus", Publish(change=change, record=self.record))
        else:
            self._write("store", SaveRecord(self.record))

    def _report_with_ack(self, report: StatusReport, ticket: Ticket) -> None:
        """Apply a pushed report, then send its writes with its ack on the last one that is behind all the others
        in the store's inbox, or a ``Sync`` behind them when none is (a write told to the store directly after one
        passed through the bus): the ack costs no message of its own in the common cases."""
        self._held = []
        try:
            outcome = self._on_report(report)
        except BaseException:
            held, self._held = self._held, None
            for core, write in held:  # what was written before the failure goes, as it would have at once
                self._tell(core, write)
            raise
        held, self._held = self._held, None
        ack = ticket.ack(outcome)
        carrier = held.pop() if held and (held[-1][0] == "bus" or all(core == "store" for core, _ in held)) else None
        for core, write in held:
            self._tell(core, write)
        if carrier is None:
            self._sync(Sync(ack))
        elif not self._tell(carrier[0], dataclasses.replace(carrier[1], ack=ack)):
            ack.failed(f"the {'status bus' if carrier[0] == 'bus' else 'store'} is restarting")

    def _write(self, core: str, message: Publish | SaveRecord) -> None:
        """Tell the bus or the store, or hold it while a pushed report is applied (``_report_with_ack``)."""
        if self._held is not None:
            self._held.append((core, message))
        else:
            self._tell(core, message)

    def _sync(self, sync: Sync) -> None:
        """Behind our writes, through the bus: both the writes we told the bus and those we told the store
        directly are in the store's inbox before it."""
        if not self._tell("bus", sync):
            sync.ack.failed("the status bus is restarting")

    def _tell(self, core: str, message: Any) -> bool:
        ref = getattr(self.s.refs, core)
        try:
            if ref is None:
                raise pykka.ActorDeadError(core)
            ref.tell(message)
        except pykka.ActorDeadError:
            # The supervisor is restarting it; our record stays authoritative and is saved with the next change.
            log.error("instance %s: %s is down; %s not delivered", self.record.instance_id, core, type(message).__name__)
            return False
        return True


def _exit_metadata(exited: ProcessExited) -> dict[str, str]:
    metadata = {"pid": str(exited.pid), "reason": exited.reason}
    if exited.exit_code is not None:
        metadata["exitCode"] = str(exited.exit_code)
    return metadata


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
