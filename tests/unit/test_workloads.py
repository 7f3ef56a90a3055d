"""The platform-specific halves of an instance (``draas_actors/workloads``), driven through a fake host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pykka
import pytest

from draas_actors.errors import Conflict
from draas_actors.messages import ReplacementDue, StatusReport, WorkloadMessage
from draas_actors.model import InstanceId, Platform, Status, StopCause
from draas_actors.platforms.docker import DockerPlatform
from draas_actors.platforms.kubernetes import KubernetesPlatform
from draas_actors.platforms.process import ProcessPlatform
from draas_actors.records import InstanceRecord
from draas_actors.workloads import Failure, Judged, Platforms, make_workload
from draas_actors.workloads.container import ContainerWorkload
from draas_actors.workloads.pod import DELETED_PODS_KEPT, PodVerdict, PodWorkload, judge_pod_report
from draas_actors.workloads.process import ProcessWorkload, exit_cause

CURRENT = "default/web-a"
OTHER = "default/web-b"
GOING = [Status.STOPPING, Status.STOPPED, Status.FAILED, Status.REMOVED, Status.RESTARTING, Status.UNKNOWN]
THERE = [Status.PENDING, Status.STARTING, Status.RUNNING, Status.UNHEALTHY]

T0 = 1_700_000_000.0


class FakeHost:
    """The instance actor as a workload sees it: applies updates to its record, records everything else."""

    def __init__(self, record: InstanceRecord) -> None:
        self.record = record
        self.exits: list[tuple[Status, str, StopCause]] = []
        self.scheduled: list[tuple[float, WorkloadMessage]] = []
        self.restart_cancelled = 0
        self.failures: list[tuple[str, str, bool]] = []

    @property
    def ref(self) -> pykka.ActorRef[Any]:
        raise AssertionError("not used by these workloads")

    def now(self) -> float:
        return T0

    def update(
        self, *, source: str, status: Status | None = None, metadata: Mapping[str, str] | None = None, **fields: Any
    ) -> None:
        if metadata is not None:
            fields["metadata"] = dict(metadata)
        self.record = self.record.replace(status=status or self.record.status, **fields)

    def exited(self, status: Status, reason: str, cause: StopCause, ran_for: float, **fields: Any) -> None:
        self.exits.append((status, reason, cause))
        self.update(status=status, last_reason=reason, last_stop_cause=cause, **fields)

    def apply_policy(self, ran_for: float, *, cause: str | None = None) -> None:
        pass

    def cancel_restart(self) -> bool:
        self.restart_cancelled += 1
        return True

    def report_failure(self, action: str, error: str, retryable: bool) -> None:
        self.failures.append((action, error, retryable))

    def schedule(self, delay: float, message: WorkloadMessage) -> int:
        self.scheduled.append((delay, message))
        return len(self.scheduled)

    def cancel_timer(self, handle: int) -> None:
        pass

    def tell_monitor(self, message: Any) -> None:
        pass


class FakeEngine:
    """``DockerPlatform``'s start and stop, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def start(self, container_id: str, on_error: Any) -> None:
        self.calls.append(("start", container_id))

    def stop(self, container_id: str, on_error: Any) -> None:
        self.calls.append(("stop", container_id))


class FakeApi:
    """``KubernetesPlatform``'s delete, recorded."""

    replacement_grace = 5.0

    def __init__(self) -> None:
        self.deleted: list[tuple[str, str]] = []

    def delete_pod(self, namespace: str, name: str, on_error: Any) -> None:
        self.deleted.append((namespace, name))


def _record(platform: Platform, status: Status, workload_id: str | None = None) -> InstanceRecord:
    return InstanceRecord(instance_id=InstanceId("i"), platform=platform, status=status, status_since=T0,
                          workload_id=workload_id)


def _report(status: Status, at: float, workload_id: str | None, exit_code: int | None = None) -> StatusReport:
    return StatusReport(instance_id=InstanceId("i"), status=status, source="daemon", observed_at=at,
                        workload_id=workload_id, exit_code=exit_code)


def _container(status: Status, workload_id: str | None = "c1") -> tuple[ContainerWorkload, FakeHost, FakeEngine]:
    host, engine = FakeHost(_record(Platform.DOCKER, status, workload_id)), FakeEngine()
    return ContainerWorkload(host, cast(DockerPlatform, engine)), host, engine


def _pod(status: Status, pod: str | None = CURRENT) -> tuple[PodWorkload, FakeHost, FakeApi]:
    host, api = FakeHost(_record(Platform.KUBERNETES, status, pod)), FakeApi()
    return PodWorkload(host, cast(KubernetesPlatform, api)), host, api


def _observe(host: FakeHost, report: StatusReport) -> dict[str, float]:
    return {**host.record.last_observed, report.source: report.observed_at}


def _judge(workload: ContainerWorkload | PodWorkload, host: FakeHost, report: StatusReport) -> Judged:
    return workload.judge(report, _observe(host, report))


# -- which workload an instance gets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "kind"),
    [(Platform.PROCESS, ProcessWorkload), (Platform.DOCKER, ContainerWorkload), (Platform.KUBERNETES, PodWorkload)],
)
def test_each_platform_gets_its_own_workload(platform: Platform, kind: type) -> None:
    host = FakeHost(_record(platform, Status.PENDING))
    platforms = Platforms(
        cast(ProcessPlatform, None), cast(DockerPlatform, FakeEngine()), cast(KubernetesPlatform, FakeApi())
    )
    assert isinstance(make_workload(host.record, host, platforms), kind)


def test_a_process_killed_by_a_signal_it_was_not_sent_stopped_for_that_cause() -> None:
    assert exit_cause(-9, failed=True) is StopCause.KILLED
    assert exit_cause(1, failed=True) is StopCause.CRASHED
    assert exit_cause(0, failed=False) is StopCause.EXITED


# -- containers: exits from reports ----------------------------------------------------------------------------


def test_a_reported_container_exit_is_an_exit_of_the_instance() -> None:
    container, host, _ = _container(Status.RUNNING)
    assert _judge(container, host, _report(Status.FAILED, T0 + 5, "c1", exit_code=137)) is Judged.DONE
    assert host.exits == [(Status.FAILED, "exited with code 137", StopCause.CRASHED)]
    assert (host.record.last_exit_code, host.record.last_exit_at) == (137, T0 + 5)


def test_a_resync_listing_the_exited_container_again_is_no_new_exit() -> None:
    container, host, _ = _container(Status.RUNNING)
    _judge(container, host, _report(Status.FAILED, T0 + 5, "c1", exit_code=1))
    _judge(container, host, _report(Status.FAILED, T0 + 9, "c1", exit_code=1))
    assert len(host.exits) == 1


def test_an_exit_after_the_container_ran_again_is_a_new_exit() -> None:
    container, host, _ = _container(Status.RUNNING)
    _judge(container, host, _report(Status.FAILED, T0 + 5, "c1", exit_code=1))
    assert _judge(container, host, _report(Status.RUNNING, T0 + 6, "c1")) is Judged.APPLY
    _judge(container, host, _report(Status.FAILED, T0 + 7, "c1", exit_code=1))
    assert len(host.exits) == 2


def test_a_stop_report_without_an_exit_code_waits_for_the_exit_while_stopping() -> None:
    container, host, _ = _container(Status.STOPPING)
    assert _judge(container, host, _report(Status.STOPPED, T0 + 1, "c1")) is Judged.DONE
    assert host.record.status is Status.STOPPING and host.exits == []
    running, host, _ = _container(Status.RUNNING)
    assert _judge(running, host, _report(Status.STOPPED, T0 + 1, "c1")) is Judged.APPLY


def test_a_container_is_started_and_stopped_through_the_engine() -> None:
    container, host, engine = _container(Status.STOPPED)
    container.start("operator", restart=True)
    host.record = host.record.replace(status=Status.RUNNING)
    container.stop()
    assert engine.calls == [("start", "c1"), ("stop", "c1")]
    assert host.record.restart_count == 1


def test_a_failed_container_start_is_a_failure_to_start_only_when_it_was_not_running() -> None:
    stopped, _, _ = _container(Status.STOPPED)
    assert stopped.action_failed("start", "docker start failed: x") is Failure.START
    running, _, _ = _container(Status.RUNNING)
    assert running.action_failed("start", "docker start failed: x") is Failure.NOTED
    assert stopped.action_failed("stop", "docker stop failed: x") is Failure.NOTED


def test_a_container_no_report_named_cannot_be_stopped() -> None:
    container, _, _ = _container(Status.RUNNING, workload_id=None)
    with pytest.raises(Conflict) as caught:
        container.check_operator("stop")
    assert caught.value.field == "containerId"
    without_engine = ContainerWorkload(FakeHost(_record(Platform.DOCKER, Status.RUNNING, "c1")), None)
    with pytest.raises(Conflict):
        without_engine.check_operator("restart")


# -- pods: restart by delete, and which pod counts ----------------------------------------------------------------


def test_a_pod_is_restarted_by_deleting_it() -> None:
    pod, host, api = _pod(Status.RUNNING)
    pod.start("operator", restart=True)
    assert api.deleted == [("default", "web-a")]
    assert host.record.status is Status.RESTARTING and host.record.restart_count == 1
    assert "deleting pod default/web-a" in host.record.metadata["reason"]


def test_the_deleted_pods_last_reports_are_not_exits() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    pod.start("restart-policy", restart=True)
    assert _judge(pod, host, _report(Status.FAILED, T0 + 1, CURRENT, exit_code=137)) is Judged.NOT_OURS
    assert host.exits == [] and host.record.rejected_transitions == 1


def test_a_bare_pod_that_nothing_replaced_within_the_grace_is_removed() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    pod.start("operator", restart=True)
    assert _judge(pod, host, _report(Status.REMOVED, T0 + 1, CURRENT)) is Judged.NOT_OURS
    [(grace, due)] = host.scheduled
    assert (grace, due) == (5.0, ReplacementDue(CURRENT))
    pod.receive(due)
    assert host.record.status is Status.REMOVED and host.record.last_stop_cause is StopCause.DELETED
    assert "no pod replaced it within 5s" in (host.record.last_reason or "")
    assert not pod.can_start() and "was removed" in pod.nothing_to_start()


def test_a_replacement_pod_takes_over_and_the_grace_then_changes_nothing() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    pod.start("operator", restart=True)
    _judge(pod, host, _report(Status.REMOVED, T0 + 1, CURRENT))
    assert _judge(pod, host, _report(Status.RUNNING, T0 + 2, OTHER)) is Judged.APPLY
    host.record = host.record.replace(status=Status.RUNNING, workload_id=OTHER)
    pod.receive(ReplacementDue(CURRENT))
    assert host.record.status is Status.RUNNING


def test_a_replacement_before_the_planned_restart_cancels_it() -> None:
    pod, host, _ = _pod(Status.RESTARTING)
    host.record = host.record.replace(next_restart_at=T0 + 10)
    assert _judge(pod, host, _report(Status.RUNNING, T0 + 1, OTHER)) is Judged.APPLY
    assert host.restart_cancelled == 1 and host.record.next_restart_at is None


def test_a_statefulsets_pod_back_under_its_name_takes_over() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    pod.start("operator", restart=True)
    assert _judge(pod, host, _report(Status.RUNNING, T0 + 1, CURRENT)) is Judged.APPLY
    assert CURRENT not in pod.deleted_pods


def test_a_failed_delete_of_a_live_pod_leaves_it_as_it_was() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    pod.start("operator", restart=True)
    assert pod.action_failed("delete", "kubernetes delete failed: HTTP 403") is Failure.HANDLED
    assert host.record.status is Status.RUNNING
    assert host.record.last_reason == "kubernetes delete failed: HTTP 403; the pod was not restarted"
    assert CURRENT not in pod.deleted_pods


def test_a_failed_delete_for_the_policy_is_a_failure_to_start() -> None:
    pod, host, _ = _pod(Status.FAILED)
    host.record = host.record.replace(status=Status.RESTARTING)
    pod.start("restart-policy", restart=True)
    assert pod.action_failed("delete", "kubernetes delete failed: HTTP 500") is Failure.START


def test_only_the_last_few_deleted_pods_are_remembered() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    for n in range(DELETED_PODS_KEPT + 2):
        host.record = host.record.replace(workload_id=f"default/web-{n}", status=Status.RUNNING)
        pod.start("operator", restart=True)
    assert pod.deleted_pods == tuple(f"default/web-{n}" for n in range(2, DELETED_PODS_KEPT + 2))


@pytest.mark.parametrize("action", ["start", "stop"])
def test_a_pod_cannot_be_started_or_stopped_by_the_operator(action: str) -> None:
    pod, _, _ = _pod(Status.RUNNING)
    with pytest.raises(Conflict) as caught:
        pod.check_operator(action)
    assert "scale the Deployment" in caught.value.message
    pod.check_operator("restart")


def test_a_pod_exit_reported_with_an_exit_code_is_an_exit_of_the_instance() -> None:
    pod, host, _ = _pod(Status.RUNNING)
    assert _judge(pod, host, _report(Status.FAILED, T0 + 1, CURRENT, exit_code=2)) is Judged.DONE
    assert host.exits == [(Status.FAILED, "exited with code 2", StopCause.CRASHED)]


# -- which pod a report is about -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_every_report_about_the_current_pod_applies(status: Status) -> None:
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", list(Status))
def test_the_first_pod_reported_applies_whatever_it_says(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=None, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", list(Status))
def test_a_report_that_names_no_pod_applies(status: Status) -> None:
    assert judge_pod_report(None, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.APPLY


@pytest.mark.parametrize("status", THERE)
def test_another_pod_that_is_there_takes_over(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", GOING)
def test_another_pod_that_is_going_or_gone_changes_nothing(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=()) is PodVerdict.IGNORE


@pytest.mark.parametrize("status", [s for s in GOING if s is not Status.REMOVED])
def test_a_pod_we_deleted_is_never_an_exit(status: Status) -> None:
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.IGNORE
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=[OTHER]) is PodVerdict.IGNORE


def test_the_removal_of_the_pod_we_deleted_matters_only_while_nothing_replaced_it() -> None:
    assert judge_pod_report(CURRENT, Status.REMOVED, current=CURRENT, deleted=[CURRENT]) is PodVerdict.GONE
    assert judge_pod_report(OTHER, Status.REMOVED, current=CURRENT, deleted=[OTHER]) is PodVerdict.IGNORE


@pytest.mark.parametrize("status", THERE)
def test_a_pod_we_deleted_that_is_there_again_is_a_new_pod_of_the_same_name(status: Status) -> None:
    # A StatefulSet recreates web-0 as web-0.
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.RECREATED


