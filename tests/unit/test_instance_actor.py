"""The instance actor's shared half, driven by calling ``on_receive`` directly: a fake clock, a fake timer, a fake
workload and recording core refs; no real time, no threads, no HTTP. What differs per platform is the workloads'
(``test_workloads.py``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import pykka
import pytest

from draas_actors.actors.instance import InstanceActor, InstanceServices
from draas_actors.actors.refs import CoreRefs
from draas_actors.commit import Outcome
from draas_actors.errors import Conflict
from draas_actors.messages import (
    DeleteRecord,
    Deregister,
    GetInstance,
    PlatformActionFailed,
    Publish,
    ReplacementDue,
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
from draas_actors.model import ChangeKind, InstanceId, Platform, Status, StopCause
from draas_actors.platforms.process import ProcessPlatform
from draas_actors.policy import BUDGET_EXHAUSTED, RestartHistory, RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord
from draas_actors.scheduler import Scheduler
from draas_actors.workloads import Failure, Host, Judged, Platforms

T0 = 1_700_000_000.0
# No jitter, so delays are exact: 1 s, then 2 s, 4 s... (the first restart of a series is at once).
POLICY = RestartPolicy(
    mode=RestartMode.ON_FAILURE, initial_backoff=1.0, multiplier=2.0, max_backoff=8.0, jitter=0.0,
    reset_after=10.0, max_restarts=3, window=100.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Timer:
    """Stands in for ``Scheduler``: remembers what is due, fires nothing by itself."""

    def __init__(self) -> None:
        self.calls: dict[int, tuple[float, Any]] = {}
        self.cancelled: list[int] = []
        self._next = 0

    def call_later(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> int:
        self._next += 1
        self.calls[self._next] = (delay, message)
        return self._next

    def cancel(self, handle: int) -> None:
        self.cancelled.append(handle)
        self.calls.pop(handle, None)

    def pending(self) -> list[tuple[float, Any]]:
        return list(self.calls.values())


class Recorder:
    """A core actor's ref that only records what it is told."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)


@dataclass
class FakeWorkload:
    """A workload that does what the test says and records what it was asked."""

    host: Host
    running: bool = False
    startable: bool = True
    judged: Judged = Judged.APPLY
    failure: Failure = Failure.START
    resumes_itself: bool = False
    refuse: frozenset[str] = frozenset()
    restart_is_stop_and_start: bool = True
    starts_with_control_plane: bool = True
    no_restart_reason: str = "no fake to restart"
    field: str = "fake"
    calls: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def check_operator(self, action: str) -> None:
        if action in self.refuse:
            raise Conflict(f"a fake cannot {action}", field="platform")

    def is_running(self) -> bool:
        return self.running

    def can_start(self) -> bool:
        return self.startable

    def nothing_to_start(self) -> str:
        return "no fake to start"

    def start(self, source: str, *, restart: bool) -> None:
        self.calls.append(("start", source, restart))
        self.running = True
        record = self.host.record
        self.host.update(
            status=Status.RUNNING, source=source, next_restart_at=None,
            restart_count=record.restart_count + (1 if restart else 0),
        )

    def stop(self) -> None:
        self.calls.append(("stop",))

    def judge(self, report: StatusReport, observed: Mapping[str, float]) -> Judged:
        self.calls.append(("judge", report.status))
        return self.judged

    def action_failed(self, action: str, reason: str) -> Failure:
        self.calls.append(("action_failed", action))
        return self.failure

    def resume(self, control_plane_start: bool) -> bool:
        self.calls.append(("resume", control_plane_start))
        return self.resumes_itself

    def receive(self, message: WorkloadMessage) -> None:
        self.calls.append(("receive", message))

    def deregister(self, stop_workload: bool) -> None:
        self.calls.append(("deregister", stop_workload))

    def exit(self, code: int, *, ran_for: float, failed: bool = True) -> None:
        """The workload ended by itself, as a process's or a daemon's exit would say."""
        self.running = False
        self.host.exited(
            Status.FAILED if failed else Status.STOPPED, f"exited with code {code}",
            StopCause.CRASHED if failed else StopCause.EXITED, ran_for, source="fake", last_exit_code=code,
        )


@dataclass
class Rig:
    actor: InstanceActor
    workload: FakeWorkload
    clock: Clock
    timer: Timer
    bus: Recorder
    store: Recorder
    monitor: Recorder

    @property
    def record(self) -> InstanceRecord:
        return self.actor.record

    def tell(self, message: Any) -> Any:
        return self.actor.on_receive(message)

    def report(self, status: Status, at: float, *, source: str = "daemon", **fields: Any) -> Outcome:
        message = StatusReport(instance_id=self.record.instance_id, status=status, source=source, observed_at=at,
                               **fields)
        return self.actor._on_report(message)

    def changes(self) -> list[StatusChanged]:
        return [m.change for m in self.bus.told if isinstance(m, Publish) and m.change is not None]

    def transitions(self) -> list[tuple[Status, Status]]:
        return [(c.old_status, c.new_status) for c in self.changes() if c.kind is ChangeKind.STATUS]

    def fire_restart(self) -> None:
        """The restart timer fires: tell the actor the RestartDue it scheduled last."""
        due = [m for _, m in self.timer.pending() if isinstance(m, RestartDue)]
        assert due, "no restart was scheduled"
        self.tell(due[-1])


def make_rig(record: InstanceRecord | None = None, **workload: Any) -> Rig:
    clock, timer, bus, store, monitor = Clock(), Timer(), Recorder(), Recorder(), Recorder()
    made: list[FakeWorkload] = []

    def factory(record: InstanceRecord, host: Host, platforms: Platforms) -> FakeWorkload:
        made.append(FakeWorkload(host, **workload))
        return made[-1]

    refs = CoreRefs(store=cast(Any, store), bus=cast(Any, bus), monitor=cast(Any, monitor))
    services = InstanceServices(
        refs=refs, scheduler=cast(Scheduler, timer), processes=cast(ProcessPlatform, None), clock=clock,
        rand=lambda: 0.5, workloads=factory,
    )
    record = record or InstanceRecord(
        instance_id=InstanceId("svc"), platform=Platform.PROCESS, restart_policy=POLICY, status_since=T0
    )
    actor = InstanceActor(record=record, services=services, watcher=None)
    return Rig(actor, made[0], clock, timer, bus, store, monitor)


def running_rig(**workload: Any) -> Rig:
    rig = make_rig(**workload)
    rig.tell(StartInstance())
    rig.bus.told.clear()
    return rig


# -- ordering and staleness -----------------------------------------------------------------------------------


def test_a_report_changes_the_status_and_publishes_one_change() -> None:
    rig = make_rig()
    assert rig.report(Status.RUNNING, T0 + 1, metadata={"k": "v"}) is Outcome.APPLIED
    assert rig.record.status is Status.RUNNING
    [change] = rig.changes()
    assert (change.old_status, change.new_status, change.source, dict(change.metadata)) == (
        Status.PENDING, Status.RUNNING, "daemon", {"k": "v"}
    )
    assert rig.record.last_observed == {"daemon": T0 + 1}


def test_a_report_older_than_its_sources_last_is_dropped_and_counted() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 2)
    assert rig.report(Status.FAILED, T0 + 1) is Outcome.STALE
    assert rig.record.status is Status.RUNNING
    assert rig.record.stale_dropped == 1
    assert rig.transitions() == [(Status.PENDING, Status.RUNNING)]


def test_the_same_report_again_changes_nothing_and_writes_nothing() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 2)
    written = len(rig.bus.told) + len(rig.store.told)
    assert rig.report(Status.RUNNING, T0 + 2) is Outcome.APPLIED
    assert len(rig.bus.told) + len(rig.store.told) == written


def test_each_source_is_ordered_on_its_own() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 5, source="a")
    assert rig.report(Status.UNHEALTHY, T0 + 1, source="b") is Outcome.APPLIED
    assert rig.record.last_observed == {"a": T0 + 5, "b": T0 + 1}


def test_a_report_the_table_forbids_is_dropped_and_counted() -> None:
    rig = make_rig(record=InstanceRecord(instance_id=InstanceId("svc"), platform=Platform.PROCESS,
                                         status=Status.STOPPED))
    assert rig.report(Status.STOPPING, T0 + 1) is Outcome.INVALID_TRANSITION
    assert rig.record.status is Status.STOPPED
    assert rig.record.rejected_transitions == 1
    assert rig.changes() == []


def test_a_report_the_workload_says_is_not_its_own_is_not_applied() -> None:
    rig = make_rig(judged=Judged.NOT_OURS)
    assert rig.report(Status.RUNNING, T0 + 1) is Outcome.INVALID_TRANSITION
    assert rig.record.status is Status.PENDING
    assert rig.changes() == []


def test_a_report_the_workload_has_applied_is_not_applied_again() -> None:
    rig = make_rig(judged=Judged.DONE)
    assert rig.report(Status.FAILED, T0 + 1, exit_code=3) is Outcome.APPLIED
    assert rig.record.status is Status.PENDING
    assert ("judge", Status.FAILED) in rig.workload.calls


def test_a_report_names_the_workload_and_one_that_names_none_keeps_it() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 1, workload_id="c1")
    assert rig.record.workload_id == "c1"
    rig.report(Status.UNHEALTHY, T0 + 2)
    assert rig.record.workload_id == "c1"


def test_a_reported_stop_gives_its_reason_and_cause_and_running_again_keeps_them() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 1)
    rig.report(Status.STOPPED, T0 + 2, metadata={"reason": "scaled down"})
    assert (rig.record.last_reason, rig.record.last_stop_cause) == ("scaled down", StopCause.EXITED)
    rig.report(Status.RUNNING, T0 + 3)
    assert (rig.record.last_reason, rig.record.last_stop_cause) == ("scaled down", StopCause.EXITED)


def test_running_after_pending_clears_the_pending_reason() -> None:
    record = InstanceRecord(instance_id=InstanceId("svc"), platform=Platform.PROCESS, last_reason="created")
    rig = make_rig(record=record)
    rig.report(Status.RUNNING, T0 + 1)
    assert rig.record.last_reason is None


def test_a_configuration_change_is_published_and_leaves_the_status_alone() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 1)
    config = StatusReport(instance_id=InstanceId("svc"), status=Status.UNKNOWN, source="daemon", observed_at=T0 + 2,
                          metadata={"image": "v2"}, kind=ChangeKind.CONFIGURATION)
    assert rig.actor._on_report(config) is Outcome.APPLIED
    change = rig.changes()[-1]
    assert change.kind is ChangeKind.CONFIGURATION and dict(change.metadata) == {"image": "v2"}
    assert rig.record.status is Status.RUNNING
    stale = StatusReport(instance_id=InstanceId("svc"), status=Status.UNKNOWN, source="daemon", observed_at=T0,
                         kind=ChangeKind.CONFIGURATION)
    assert rig.actor._on_report(stale) is Outcome.STALE


# -- exits and the restart policy -----------------------------------------------------------------------------


def test_a_crash_after_a_healthy_run_is_restarted_at_once() -> None:
    rig = running_rig()
    rig.workload.exit(1, ran_for=60.0)
    assert rig.workload.calls[-1] == ("start", "restart-policy", True)
    assert rig.record.status is Status.RUNNING and rig.record.restart_count == 1
    assert rig.transitions() == [
        (Status.RUNNING, Status.FAILED), (Status.FAILED, Status.RESTARTING), (Status.RESTARTING, Status.RUNNING)
    ]
    assert (rig.record.last_reason, rig.record.last_stop_cause) == ("exited with code 1", StopCause.CRASHED)


def test_crashes_in_quick_succession_back_off_by_the_policy() -> None:
    rig = running_rig()
    rig.workload.exit(1, ran_for=0.5)  # the first of a series: at once
    rig.clock.now += 0.5
    rig.workload.exit(1, ran_for=0.5)
    assert rig.record.status is Status.RESTARTING
    assert rig.record.next_restart_at == rig.clock.now + 1.0
    assert [delay for delay, _ in rig.timer.pending()] == [1.0]
    rig.fire_restart()
    rig.clock.now += 0.5
    rig.workload.exit(1, ran_for=0.5)
    assert [delay for delay, _ in rig.timer.pending()][-1] == 2.0


def test_a_restart_that_is_not_the_last_one_planned_does_nothing() -> None:
    rig = running_rig()
    rig.workload.exit(1, ran_for=0.5)
    rig.workload.exit(1, ran_for=0.5)
    starts = len([c for c in rig.workload.calls if c[0] == "start"])
    rig.tell(RestartDue(token=rig.actor.restart_token - 1))
    assert len([c for c in rig.workload.calls if c[0] == "start"]) == starts
    assert rig.record.status is Status.RESTARTING


def test_the_policy_gives_up_when_its_budget_is_spent_and_says_so_with_a_cause() -> None:
    rig = running_rig()
    for _ in range(POLICY.max_restarts):
        rig.workload.exit(1, ran_for=0.5)
        if rig.record.status is Status.RESTARTING:
            rig.fire_restart()
    rig.workload.exit(1, ran_for=0.5)
    assert rig.record.status is Status.FAILED
    assert rig.record.last_stop_cause is StopCause.GAVE_UP
    assert rig.record.last_reason == BUDGET_EXHAUSTED
    # Failed, then Failed for good: published although the status did not change.
    last = rig.changes()[-1]
    assert (last.old_status, last.new_status, last.source) == (Status.FAILED, Status.FAILED, "restart-policy")


def test_a_success_exit_under_on_failure_is_stopped_and_not_restarted() -> None:
    rig = running_rig()
    rig.workload.exit(0, ran_for=5.0, failed=False)
    assert rig.record.status is Status.STOPPED
    assert rig.record.last_stop_cause is StopCause.EXITED
    assert rig.timer.pending() == [] and rig.workload.calls[-1] == ("start", "operator", False)


def test_a_policy_with_nothing_to_start_says_why_it_did_not_restart() -> None:
    rig = running_rig()
    rig.workload.startable = False
    rig.workload.exit(1, ran_for=60.0)
    assert rig.record.status is Status.FAILED
    assert rig.record.last_reason == "exited with code 1; not restarted: no fake to restart"


def test_a_restart_planned_before_our_actor_went_down_is_made_when_due() -> None:
    record = InstanceRecord(instance_id=InstanceId("svc"), platform=Platform.PROCESS, status=Status.RESTARTING,
                            next_restart_at=T0 + 3.0, restart_policy=POLICY)
    rig = make_rig(record=record)
    rig.tell(Resume(control_plane_start=False))
    assert [delay for delay, _ in rig.timer.pending()] == [3.0]
    rig.fire_restart()
    assert rig.workload.calls[-1] == ("start", "restart-policy", True)


# -- operator verbs -------------------------------------------------------------------------------------------


def test_an_operator_stop_waits_for_the_exit_and_does_not_restart() -> None:
    rig = running_rig()
    assert rig.tell(StopInstance()).status is Status.STOPPING
    assert rig.workload.calls[-1] == ("stop",) and rig.record.operator_stopped
    rig.workload.exit(143, ran_for=5.0)
    assert rig.record.status is Status.STOPPED
    assert (rig.record.last_reason, rig.record.last_stop_cause) == ("stopped by operator", StopCause.OPERATOR)
    assert rig.timer.pending() == []


def test_a_stop_at_shutdown_is_no_operators_stop() -> None:
    rig = running_rig()
    rig.tell(StopInstance(shutdown=True))
    rig.workload.exit(143, ran_for=5.0)
    assert rig.record.last_stop_cause is StopCause.SHUTDOWN and not rig.record.operator_stopped
    assert rig.transitions()[0][1] is Status.STOPPING and rig.changes()[0].source == "control-plane"


def test_a_restart_of_a_running_workload_stops_it_then_starts_it() -> None:
    rig = running_rig()
    rig.tell(RestartInstance())
    assert rig.workload.calls[-1:] == [("stop",)]
    rig.workload.exit(143, ran_for=5.0)
    assert rig.workload.calls[-1:] == [("start", "operator", True)]
    assert rig.record.status is Status.RUNNING and rig.record.restart_count == 1 and not rig.record.operator_stopped


def test_a_workload_restarted_in_place_is_not_stopped_first() -> None:
    rig = running_rig(restart_is_stop_and_start=False)
    rig.tell(RestartInstance())
    assert rig.workload.calls[-1] == ("start", "operator", True)
    assert ("stop",) not in rig.workload.calls


def test_starting_a_running_workload_is_idempotent() -> None:
    rig = running_rig()
    rig.tell(StartInstance())
    assert [c for c in rig.workload.calls if c[0] == "start"] == [("start", "operator", False)]


def test_starting_what_cannot_start_is_a_conflict_naming_the_workloads_field() -> None:
    rig = make_rig(startable=False)
    with pytest.raises(Conflict) as caught:
        rig.tell(StartInstance())
    assert caught.value.field == "fake" and "no fake to start" in caught.value.message


def test_a_verb_the_workload_refuses_is_a_conflict_and_changes_nothing() -> None:
    rig = running_rig(refuse=frozenset({"stop"}))
    with pytest.raises(Conflict):
        rig.tell(StopInstance())
    assert rig.record.status is Status.RUNNING and rig.changes() == []


def test_an_operator_start_cancels_a_planned_restart() -> None:
    rig = running_rig()
    rig.workload.exit(1, ran_for=0.5)
    rig.workload.exit(1, ran_for=0.5)
    [(_, due)] = rig.timer.pending()
    rig.workload.running = False
    rig.tell(StartInstance())
    assert rig.timer.cancelled and rig.record.history == RestartHistory()
    starts = len([c for c in rig.workload.calls if c[0] == "start"])
    rig.tell(due)  # fires anyway (it was already on its way): too late to count
    assert len([c for c in rig.workload.calls if c[0] == "start"]) == starts


def test_stopping_an_instance_waiting_to_restart_stops_it_there() -> None:
    rig = running_rig()
    rig.workload.exit(1, ran_for=0.5)
    rig.workload.exit(1, ran_for=0.5)
    rig.workload.running = False
    assert rig.tell(StopInstance()).status is Status.STOPPED
    assert rig.record.operator_stopped and rig.record.next_restart_at is None and rig.timer.pending() == []


def test_setting_the_restart_policy_answers_the_record_with_it() -> None:
    rig = make_rig()
    policy = RestartPolicy(mode=RestartMode.ALWAYS)
    assert rig.tell(SetRestartPolicy(policy)).restart_policy == policy
    assert rig.tell(GetInstance()).restart_policy == policy


# -- action failures ------------------------------------------------------------------------------------------


def test_a_failed_start_action_fails_the_instance_and_the_policy_retries() -> None:
    rig = make_rig(record=InstanceRecord(instance_id=InstanceId("svc"), platform=Platform.DOCKER,
                                         status=Status.STOPPED, restart_policy=POLICY))
    rig.tell(PlatformActionFailed("start", "no such container"))
    assert rig.workload.calls[0] == ("action_failed", "start")
    assert rig.record.last_stop_cause is StopCause.ACTION_FAILED
    assert rig.record.last_reason == "docker start failed: no such container"
    assert rig.workload.calls[-1] == ("start", "restart-policy", True)  # the first retry is at once


def test_a_refused_start_action_is_not_retried() -> None:
    rig = make_rig(record=InstanceRecord(instance_id=InstanceId("svc"), platform=Platform.DOCKER,
                                         status=Status.STOPPED, restart_policy=POLICY))
    rig.tell(PlatformActionFailed("start", "HTTP 403", retryable=False))
    assert rig.record.status is Status.FAILED
    assert rig.record.last_reason == "docker start failed: HTTP 403; not retried"
    assert not [c for c in rig.workload.calls if c[0] == "start"]


def test_a_failure_that_changes_nothing_is_noted_in_the_reason_only() -> None:
    rig = running_rig(failure=Failure.NOTED)
    rig.tell(PlatformActionFailed("stop", "timeout"))
    assert rig.record.status is Status.RUNNING and rig.record.last_reason == "process stop failed: timeout"


def test_a_failure_the_workload_handled_is_left_to_it() -> None:
    rig = running_rig(failure=Failure.HANDLED)
    before = rig.record
    rig.tell(PlatformActionFailed("delete", "gone"))
    assert rig.record == before


# -- resuming -------------------------------------------------------------------------------------------------


def _stopped(cause: StopCause | None, reason: str | None, status: Status = Status.STOPPED) -> InstanceRecord:
    return InstanceRecord(instance_id=InstanceId("svc"), platform=Platform.PROCESS, status=status,
                          last_stop_cause=cause, last_reason=reason, restart_policy=POLICY)


def test_a_workload_stopped_by_a_shutdown_starts_with_the_control_plane_whatever_its_reason_says() -> None:
    rig = make_rig(record=_stopped(StopCause.SHUTDOWN, "reworded by a later release"))
    rig.tell(Resume(control_plane_start=True))
    assert rig.workload.calls[-1] == ("start", "control-plane", False)


def test_a_reason_that_reads_like_a_shutdown_does_not_start_anything() -> None:
    rig = make_rig(record=_stopped(StopCause.OPERATOR, "stopped at control-plane shutdown"))
    rig.tell(Resume(control_plane_start=True))
    assert not [c for c in rig.workload.calls if c[0] == "start"]


def test_a_policy_that_gave_up_is_not_undone_by_a_control_plane_start() -> None:
    always = RestartPolicy(mode=RestartMode.ALWAYS)
    gave_up = _stopped(StopCause.GAVE_UP, "exited", status=Status.FAILED).replace(restart_policy=always)
    rig = make_rig(record=gave_up)
    rig.tell(Resume(control_plane_start=True))
    assert not [c for c in rig.workload.calls if c[0] == "start"]
    crashed = make_rig(record=gave_up.replace(last_stop_cause=StopCause.CRASHED))
    crashed.tell(Resume(control_plane_start=True))
    assert crashed.workload.calls[-1] == ("start", "control-plane", False)


def test_a_workload_that_resumes_itself_is_left_to_it() -> None:
    rig = make_rig(resumes_itself=True)
    rig.tell(Resume(control_plane_start=True))
    assert rig.workload.calls == [("resume", True)] and rig.record.status is Status.PENDING


def test_a_workload_the_control_plane_does_not_start_stays_pending() -> None:
    rig = make_rig(starts_with_control_plane=False)
    rig.tell(Resume(control_plane_start=True))
    assert rig.workload.calls == [("resume", True)] and rig.record.status is Status.PENDING
    assert isinstance(rig.store.told[-1], SaveRecord)


def test_a_stored_record_that_a_resume_leaves_as_it_was_is_not_saved_again() -> None:
    # 50,000 of these at a control-plane start were 50,000 store writes for nothing.
    observed = make_rig(starts_with_control_plane=False)
    observed.tell(Resume(control_plane_start=True, stored=True))
    stopped = make_rig(record=_stopped(StopCause.OPERATOR, "stopped by operator"))
    stopped.tell(Resume(control_plane_start=True, stored=True))
    for rig in (observed, stopped):
        assert not [m for m in rig.store.told if isinstance(m, SaveRecord)] and rig.record.version == 0


def test_a_stored_record_that_a_resume_changes_is_saved() -> None:
    rig = make_rig()  # Pending: the control plane starts it
    rig.tell(Resume(control_plane_start=True, stored=True))
    assert rig.workload.calls[-1] == ("start", "control-plane", False)
    assert [m.change.new_status for m in rig.bus.told if isinstance(m, Publish) and m.change] == [Status.RUNNING]


def test_a_pending_process_is_started_when_the_control_plane_starts() -> None:
    rig = make_rig()
    rig.tell(Resume(control_plane_start=True))
    assert rig.workload.calls[-1] == ("start", "control-plane", False)


# -- publishing and the rest -----------------------------------------------------------------------------------


def test_a_change_without_a_new_status_is_saved_not_published() -> None:
    rig = running_rig()
    rig.tell(SetRestartPolicy(RestartPolicy()))
    assert rig.bus.told == [] and isinstance(rig.store.told[-1], SaveRecord)
    assert rig.store.told[-1].record.version == rig.record.version


def test_every_change_bumps_the_version_and_stamps_the_clock() -> None:
    rig = make_rig()
    rig.clock.now = T0 + 42
    rig.report(Status.RUNNING, T0 + 1)
    assert rig.record.version == 1 and rig.record.updated_at == T0 + 42 and rig.record.status_since == T0 + 42


def test_a_workloads_message_is_handed_to_it_unopened() -> None:
    rig = make_rig()
    rig.tell(ReplacementDue("default/web-a"))
    assert rig.workload.calls == [("receive", ReplacementDue("default/web-a"))]


def test_deregistering_lets_the_workload_go_and_deletes_the_record() -> None:
    rig = running_rig()
    rig.tell(Deregister(stop_workload=True))
    assert rig.workload.calls[-1] == ("deregister", True)
    assert isinstance(rig.store.told[-1], DeleteRecord)


# -- trace context --------------------------------------------------------------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_change_a_pushed_report_causes_keeps_its_traceparent() -> None:
    rig = make_rig()
    rig.report(Status.RUNNING, T0 + 1, traceparent=TRACEPARENT)
    rig.report(Status.UNHEALTHY, T0 + 2)
    config = StatusReport(instance_id=InstanceId("svc"), status=Status.UNKNOWN, source="daemon", observed_at=T0 + 3,
                          kind=ChangeKind.CONFIGURATION, traceparent=TRACEPARENT)
    rig.actor._on_report(config)
    assert [c.traceparent for c in rig.changes()] == [TRACEPARENT, None, TRACEPARENT]


def test_every_change_an_exit_report_causes_keeps_its_traceparent_and_a_later_timed_restart_none() -> None:
    rig = running_rig()

    def judge_an_exit(report: StatusReport, observed: Mapping[str, float]) -> Judged:
        rig.workload.exit(1, ran_for=0.5)  # the first restart of a series is at once
        return Judged.DONE

    rig.workload.judge = judge_an_exit  # type: ignore[method-assign]
    rig.report(Status.FAILED, T0 + 1, exit_code=1, traceparent=TRACEPARENT)
    rig.workload.exit(1, ran_for=0.5)  # no report: no push's trace; the second restart waits for its backoff
    assert [(c.new_status, c.traceparent) for c in rig.changes()] == [
        (Status.FAILED, TRACEPARENT), (Status.RESTARTING, TRACEPARENT), (Status.RUNNING, TRACEPARENT),
        (Status.FAILED, None), (Status.RESTARTING, None),
    ]
    rig.bus.told.clear()
    rig.fire_restart()
    assert [(c.new_status, c.traceparent) for c in rig.changes()] == [(Status.RUNNING, None)]


def test_a_report_that_fails_to_apply_leaves_no_trace_for_the_next_change() -> None:
    rig = make_rig()

    def judge_and_fail(report: StatusReport, observed: Mapping[str, float]) -> Judged:
        raise RuntimeError("the workload failed")

    rig.workload.judge = judge_and_fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        rig.report(Status.RUNNING, T0 + 1, traceparent=TRACEPARENT)
    rig.tell(StartInstance())
    assert [c.traceparent for c in rig.changes()] == [None]
