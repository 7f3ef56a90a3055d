"""The instance actor: owns one instance's record, applies reports and exits, runs its restart policy.

Written against pykka's ``Actor`` API only (``on_receive`` with frozen-dataclass messages, refs, no
proxies, no blocking waits), so the execution model can move to a pooled dispatcher without touching it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka

from ..commit import Outcome, Sync, Ticket
from ..errors import Conflict
from ..frozen import fast_replace
from ..messages import (
    DeleteRecord,
    Deregister,
    GetInstance,
    PlatformActionFailed,
    Publish,
    RestartDue,
    RestartInstance,
    Resume,
    SaveRecord,
    SetRestartPolicy,
    StartInstance,
    StatusChanged,
    StatusReport,
    StopInstance,
    WorkloadMessage,
)
from ..metrics import Metrics
from ..model import ChangeKind, Status, StopCause, can_transition, is_alive
from ..platforms.docker import DockerPlatform
from ..platforms.kubernetes import KubernetesPlatform
from ..platforms.process import ProcessPlatform
from ..policy import GiveUp, RestartHistory, plan_restart, starts_with_control_plane, wants_restart
from ..records import InstanceRecord
from ..scheduler import Scheduler
from ..workloads import (
    CONTROL_PLANE,
    OPERATOR,
    POLICY,
    Failure,
    Judged,
    Platforms,
    Workload,
    WorkloadFactory,
    make_workload,
)
from .refs import CoreRefs
from .watched import WatchedActor

log = logging.getLogger(__name__)

OPERATOR_STOP = "stopped by operator"
SHUTDOWN_STOP = "stopped at control-plane shutdown"


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
    workloads: WorkloadFactory = make_workload  # tests give a fake workload
    metrics: Metrics = field(default_factory=Metrics)  # the plane's; a fresh one for tests that do not look

    @property
    def platforms(self) -> Platforms:
        return Platforms(self.processes, self.docker, self.kubernetes)


class InstanceActor(WatchedActor):
    """One instance: applies reports and exits, runs its restart policy, carries out operator actions.

    What differs between a process, a container and a pod is its ``Workload`` (``draas_actors/workloads/``), made
    once from the record's platform; this class never asks which platform it is on.
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
        self.restart_after_stop = False
        self.stop_cause = StopCause.OPERATOR  # of the stop under way: an operator's, or the control plane's shutdown
        # The writes of a pushed report being applied, sent once its outcome is known (None: sent at once).
        self._held: list[tuple[str, Publish | SaveRecord]] | None = None
        # The traceparent of the pushed report being applied: each change it causes (the restart its exit plans
        # too) keeps it. None outside a report: a timer's, a process's or an operator's change has no push's trace.
        self._traceparent: str | None = None
        self.workload: Workload = services.workloads(record, _ActorHost(self), services.platforms)

    def on_receive(self, message: Any) -> Any:
        match message:
            case StatusReport(ticket=None):
                self._on_report(message)
            case StatusReport(ticket=Ticket() as ticket):
                self._report_with_ack(message, ticket)
            case Sync():
                self._sync(message)
            case WorkloadMessage():
                self.workload.receive(message)
            case RestartDue(token):
                if token == self.restart_token and self.record.status is Status.RESTARTING:
                    self.restart_handle = None
                    self.workload.start(POLICY, restart=True)
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
            case Resume(control_plane_start, stored):
                self._resume(control_plane_start, stored)
            case Deregister(stop_workload):
                self._deregister(stop_workload)
            case _:
                return super().on_receive(message)
        return None

    # -- reports and exits ------------------------------------------------------------------------

    def _on_report(self, report: StatusReport) -> Outcome:
        """Apply a report; what it did, for the pusher's answer."""
        self._traceparent = report.traceparent
        try:
            return self._apply_report(report)
        finally:
            self._traceparent = None

    def _apply_report(self, report: StatusReport) -> Outcome:
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
        judged = self.workload.judge(report, observed)
        if judged is Judged.NOT_OURS:
            return Outcome.INVALID_TRANSITION
        if judged is Judged.DONE:
            return Outcome.APPLIED
        record = self.record
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
        alive = is_alive(report.status)
        # lastReason explains the last time it was not running; "started" would wipe that explanation. Pending's
        # reason ("created") only says it had not started yet, which stops being true when it runs.
        keep = alive and record.status is not Status.PENDING
        self._update(
            status=report.status,
            source=report.source,
            metadata=report.metadata,
            last_observed=observed,
            workload_id=report.workload_id or record.workload_id,
            last_reason=record.last_reason if keep else None if alive
            else report.metadata.get("reason", record.last_reason),
            last_stop_cause=record.last_stop_cause if keep else None if alive
            else _REPORTED_CAUSES.get(report.status, record.last_stop_cause),
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

    def _on_action_failed(self, action: str, error: str, retryable: bool) -> None:
        source = self.record.platform.value
        reason = f"{source} {action} failed: {error}"
        meaning = self.workload.action_failed(action, reason)
        if meaning is Failure.START:
            self._update(status=Status.FAILED, source=source, last_reason=reason if retryable
                         else f"{reason}; not retried", last_stop_cause=StopCause.ACTION_FAILED,
                         metadata={"reason": reason})
            if retryable:
                self._apply_policy(ran_for=0.0)
        elif meaning is Failure.NOTED:
            self._update(source=source, last_reason=reason)

    def _record_exit(self, status: Status, reason: str, cause: StopCause, ran_for: float, **fields: Any) -> None:
        """An exit, however it was observed: the end of a stop we asked for, or a case for the restart policy."""
        if self.record.status is Status.STOPPING:
            stop_reason = SHUTDOWN_STOP if self.stop_cause is StopCause.SHUTDOWN else OPERATOR_STOP
            self._update(status=Status.STOPPED, last_reason=stop_reason, last_stop_cause=self.stop_cause, **fields)
            if self.restart_after_stop:
                self.restart_after_stop = False
                self.workload.start(OPERATOR, restart=True)
            return
        self._update(status=status, last_reason=reason, last_stop_cause=cause, **fields)
        self._apply_policy(max(0.0, ran_for))

    def _apply_policy(self, ran_for: float, *, cause: str | None = None) -> None:
        """Plan the restart the policy wants; ``cause``, a failure to start, is kept in the reason if it gives up."""
        record = self.record
        policy = record.restart_policy
        if not wants_restart(policy, exit_code=record.last_exit_code, operator_stopped=record.operator_stopped):
            return
        if not self.workload.can_start():
            why = self.workload.no_restart_reason
            self._update(source=POLICY, last_reason=f"{record.last_reason}; not restarted: {why}")
            return
        now = self.s.clock()
        decision = plan_restart(policy, record.history, now=now, ran_for=ran_for, rand=self.s.rand())
        platform = record.platform.value
        if isinstance(decision, GiveUp):
            self.s.metrics.restart_budgets_exhausted.labels(platform).inc()
            # A spawn failure has no exit code to tell it by: without its cause the reason would hide it.
            reason = decision.reason if cause is None else f"{cause}; {decision.reason}"
            log.error("instance %s: %s", record.instance_id, reason)
            self._update(
                status=Status.FAILED,
                source=POLICY,
                history=decision.history,
                last_reason=reason,
                last_stop_cause=StopCause.GAVE_UP,
                next_restart_at=None,
                metadata={"reason": reason},
                publish=True,  # Failed, then Failed for good: subscribers and the change feed are told too
            )
            return
        cause_label = record.last_stop_cause.value if record.last_stop_cause is not None else "unknown"
        self.s.metrics.restarts.labels(platform, cause_label).inc()
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
            self.workload.start(POLICY, restart=True)
        else:
            self.restart_handle = self.s.scheduler.call_later(delay, self.actor_ref, RestartDue(self.restart_token))

    # -- operator actions -------------------------------------------------------------------------

    def _operator_start(self) -> InstanceRecord:
        self.workload.check_operator("start")
        if self.workload.is_running():
            return self.record  # already running: starting is idempotent
        self._require_startable()
        self._cancel_restart()
        self._update(source=OPERATOR, operator_stopped=False, history=RestartHistory())
        self.workload.start(OPERATOR, restart=False)
        return self.record

    def _operator_stop(self, *, restart: bool, shutdown: bool = False) -> InstanceRecord:
        self.workload.check_operator("restart" if restart else "stop")
        running = self.workload.is_running()
        if shutdown and not running:
            return self.record  # nothing to stop; a pending restart resumes at the next start
        self._cancel_restart()
        self.restart_after_stop = restart
        self.stop_cause = StopCause.SHUTDOWN if shutdown else StopCause.OPERATOR
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
        self.workload.stop()
        return self.record

    def _operator_restart(self) -> InstanceRecord:
        self.workload.check_operator("restart")
        self._require_startable()
        if self.workload.is_running() and self.workload.restart_is_stop_and_start:
            self._update(source=OPERATOR, history=RestartHistory())
            return self._operator_stop(restart=True)
        self._cancel_restart()
        self._update(source=OPERATOR, operator_stopped=False, history=RestartHistory())
        self.workload.start(OPERATOR, restart=True)
        return self.record

    def _require_startable(self) -> None:
        if not self.workload.can_start():
            raise Conflict(f"instance has {self.workload.nothing_to_start()}", field=self.workload.field)

    def _report_failure(self, action: str, error: str, retryable: bool) -> None:
        """Called on a platform's worker thread: hand the failure to ourselves as a message."""
        try:
            self.actor_ref.tell(PlatformActionFailed(action, error, retryable))
        except pykka.ActorDeadError:
            log.warning("instance %s: %s failed after its actor stopped: %s", self.record.instance_id, action, error)

    # -- life cycle -------------------------------------------------------------------------------

    def _resume(self, control_plane_start: bool, stored: bool = False) -> None:
        """First message after (re)creation: pick up the workload where the stored record left it (``stored``: our
        record is the store's, so a resume that changes nothing need not save it again)."""
        if self.workload.resume(control_plane_start):
            return  # a live process re-adopted, or its exit read
        record = self.record
        startable = self.workload.starts_with_control_plane and self.workload.can_start()
        if record.status is Status.RESTARTING and not record.operator_stopped:
            self._resume_restart()  # a daemon will not report again: nothing has changed for it
        elif not self.workload.starts_with_control_plane:
            self._touch(stored)
        elif record.status is Status.PENDING and not record.operator_stopped:
            self.workload.start(CONTROL_PLANE, restart=False)
        elif control_plane_start and record.last_stop_cause is StopCause.SHUTDOWN and startable:
            self.workload.start(CONTROL_PLANE, restart=False)  # we stopped it only because we were shutting down
        elif (
            control_plane_start
            and record.status in (Status.STOPPED, Status.FAILED)
            and record.last_stop_cause is not StopCause.GAVE_UP
            and startable
            and starts_with_control_plane(record.restart_policy, operator_stopped=record.operator_stopped)
        ):
            self._update(source=CONTROL_PLANE, operator_stopped=False)
            self.workload.start(CONTROL_PLANE, restart=False)
        else:
            self._touch(stored)

    def _touch(self, stored: bool) -> None:
        """A resume that leaves the record as it was: saved (a new instance's first save), unless it is stored."""
        if not stored:
            self._update(source=CONTROL_PLANE)

    def _resume_restart(self) -> None:
        """A restart was planned when our predecessor went down (its timer went with it): make it when it is due."""
        due = self.record.next_restart_at
        self._restart_in(0.0 if due is None else due - self.s.clock())

    def _deregister(self, stop_workload: bool) -> None:
        self._cancel_restart()
        self.workload.deregister(stop_workload)
        self._tell("store", DeleteRecord(self.record.instance_id, self.record.created_at))
        self.stop()

    def _cancel_restart(self) -> bool:
        """Forget the timed restart, if one is; True when one was."""
        if self.restart_handle is None:
            return False
        self.s.scheduler.cancel(self.restart_handle)
        self.restart_handle = None
        self.restart_token += 1
        return True

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
                traceparent=self._traceparent,
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
        elif not self._tell(carrier[0], fast_replace(carrier[1], ack=ack)):
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
            log.error(
                "instance %s: %s is down; %s not delivered", self.record.instance_id, core, type(message).__name__
            )
            return False
        return True


# The cause a daemon's report of an ended workload gives, when it carries no exit code to judge by.
_REPORTED_CAUSES = {
    Status.STOPPED: StopCause.EXITED, Status.FAILED: StopCause.CRASHED, Status.REMOVED: StopCause.DELETED
}


class _ActorHost:
    """The instance actor as its workload sees it (``workloads.Host``)."""

    __slots__ = ("_actor",)

    def __init__(self, actor: InstanceActor) -> None:
        self._actor = actor

    @property
    def record(self) -> InstanceRecord:
        return self._actor.record

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        return self._actor.actor_ref

    def now(self) -> float:
        return self._actor.s.clock()

    def update(
        self, *, source: str, status: Status | None = None, metadata: Mapping[str, str] | None = None, **fields: Any
    ) -> None:
        self._actor._update(source=source, status=status, metadata=metadata, **fields)

    def exited(self, status: Status, reason: str, cause: StopCause, ran_for: float, **fields: Any) -> None:
        self._actor._record_exit(status, reason, cause, ran_for, **fields)

    def apply_policy(self, ran_for: float, *, cause: str | None = None) -> None:
        self._actor._apply_policy(ran_for, cause=cause)

    def cancel_restart(self) -> bool:
        return self._actor._cancel_restart()

    def report_failure(self, action: str, error: str, retryable: bool) -> None:
        self._actor._report_failure(action, error, retryable)

    def schedule(self, delay: float, message: WorkloadMessage) -> int:
        return self._actor.s.scheduler.call_later(delay, self._actor.actor_ref, message)

    def cancel_timer(self, handle: int) -> None:
        self._actor.s.scheduler.cancel(handle)

    def tell_monitor(self, message: Any) -> None:
        self._actor._tell("monitor", message)
