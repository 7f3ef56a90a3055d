"""The Kubernetes daemon's pure part: a pod (raw JSON, as the API server sends it) -> a status update."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from daemons.k8s_mapping import (
    INSTANCE_LABEL,
    MalformedPod,
    PodReport,
    Skip,
    map_pod,
    pod_key,
    removed_update,
    source_for,
)
from draas_actors.model import Status
from draas_actors.wire import parse_status_update
from tests.kube.pods import make_pod

NOW = 1_795_740_722.5


def served(pod: dict[str, Any], uid: str = "uid-1") -> dict[str, Any]:
    """What the API server adds to a pod it stores."""
    pod["metadata"].update(uid=uid, creationTimestamp="2026-11-27T00:52:02Z", resourceVersion="1001")
    return pod


def mapped(pod: dict[str, Any], *, deleted: bool = False) -> PodReport:
    report = map_pod(pod, observed_at=NOW, deleted=deleted)
    assert isinstance(report, PodReport), report
    return report


def with_container(pod: dict[str, Any], index: int, *, init: bool = False, **fields: Any) -> dict[str, Any]:
    """Adds a container status (``state`` etc. as keyword arguments) to a pod."""
    key = "initContainerStatuses" if init else "containerStatuses"
    statuses = pod["status"].setdefault(key, [])
    statuses.append({"name": f"c{index}", "image": "img", "ready": False, "restartCount": 0, **fields})
    return pod


def deleting(pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["deletionTimestamp"] = "2026-11-27T00:53:00Z"
    return pod


def scheduled_by_condition_only(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"].pop("nodeName", None)
    pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    return pod


def without_container_statuses(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"].pop("containerStatuses", None)
    return pod


def init_crash_loop(pod: dict[str, Any]) -> dict[str, Any]:
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}}
    return with_container(pod, 0, init=True, state=waiting, restartCount=3)


def odd_phase(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"]["phase"] = "Hibernating"
    return pod


def no_phase(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"] = {}
    pod["spec"].pop("nodeName", None)
    return pod


def same(pod: dict[str, Any]) -> dict[str, Any]:
    return pod


# -- every row of the table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "change", "deleted", "status", "reason"),
    [
        ({}, same, True, Status.REMOVED, "pod deleted"),
        ({"waiting_reason": "CrashLoopBackOff"}, same, True, Status.REMOVED, "pod deleted"),
        ({}, deleting, False, Status.STOPPING, "pod is being deleted"),
        ({"waiting_reason": "CrashLoopBackOff"}, deleting, False, Status.STOPPING, "CrashLoopBackOff"),
        ({"phase": "Failed"}, deleting, False, Status.STOPPING, "Error"),
        ({"waiting_reason": "CrashLoopBackOff", "restart_count": 4}, same, False, Status.RESTARTING,
         "CrashLoopBackOff: container app: CrashLoopBackOff"),
        ({"phase": "Pending"}, init_crash_loop, False, Status.RESTARTING,
         "CrashLoopBackOff: back-off 20s restarting failed container"),
        ({"phase": "Failed", "terminated_exit_code": 3}, same, False, Status.FAILED, "Error"),
        ({"phase": "Failed", "reason": "Evicted"}, same, False, Status.FAILED, "Evicted"),
        ({"phase": "Succeeded"}, same, False, Status.STOPPED, "Completed"),
        ({}, same, False, Status.RUNNING, None),
        ({"ready": False}, same, False, Status.UNHEALTHY, None),
        ({}, without_container_statuses, False, Status.UNHEALTHY, None),
        ({"phase": "Pending", "node_name": None}, same, False, Status.PENDING, None),
        ({"phase": "Pending", "node_name": None, "reason": "Unschedulable"}, same, False, Status.PENDING,
         "Unschedulable"),
        ({"phase": "Pending"}, same, False, Status.STARTING, "ContainerCreating"),
        ({"phase": "Pending", "waiting_reason": "ImagePullBackOff"}, same, False, Status.STARTING, "ImagePullBackOff"),
        ({"phase": "Pending", "node_name": None}, scheduled_by_condition_only, False, Status.STARTING, None),
        ({}, no_phase, False, Status.PENDING, None),
        ({"phase": "Unknown"}, same, False, Status.UNKNOWN, None),
        ({"phase": "Unknown", "reason": "NodeLost"}, same, False, Status.UNKNOWN, "NodeLost"),
        ({}, odd_phase, False, Status.UNKNOWN, "unknown phase 'Hibernating'"),
    ],
)
def test_each_row_of_the_table_gives_its_status_and_reason(
    state: dict[str, Any],
    change: Callable[[dict[str, Any]], dict[str, Any]],
    deleted: bool,
    status: Status,
    reason: str | None,
) -> None:
    report = mapped(change(served(make_pod("web-1", **state))), deleted=deleted)
    update = report.update
    assert update.status is status
    assert update.metadata.get("reason") == reason
    assert update.instance_id == "web-1"
    assert update.workload_id == "uid-1"
    assert update.observed_at == NOW
    assert report.terminating is (deleted or change is deleting)


def test_the_metadata_describes_the_pod() -> None:
    pod = served(make_pod("web-1", namespace="drasi", node_name="aks-node-7", pod_ip="10.244.1.7", restart_count=2))
    report = mapped(pod)
    assert dict(report.update.metadata) == {
        "podName": "web-1",
        "namespace": "drasi",
        "nodeName": "aks-node-7",
        "phase": "Running",
        "podIP": "10.244.1.7",
        "restartCount": 2,
    }
    assert report.created_at == "2026-11-27T00:52:02Z"
    assert report.key == "uid-1"


def test_an_unscheduled_pod_has_empty_node_and_ip() -> None:
    update = mapped(served(make_pod("web-1", phase="Pending", node_name=None, pod_ip=None))).update
    assert (update.metadata["nodeName"], update.metadata["podIP"]) == ("", "")


def test_the_restart_count_is_summed_over_the_containers_but_not_the_init_containers() -> None:
    pod = served(make_pod("web-1", restart_count=2))
    running = {"running": {"startedAt": "2026-11-27T00:52:03Z"}}
    with_container(pod, 1, state=running, ready=True, restartCount=5)
    with_container(pod, 2, init=True, state={"terminated": {"exitCode": 0, "reason": "Completed"}}, restartCount=7)
    update = mapped(pod).update
    assert update.metadata["restartCount"] == 7
    assert update.status is Status.RUNNING


def test_one_container_not_ready_makes_a_running_pod_unhealthy() -> None:
    pod = served(make_pod("web-1"))
    with_container(pod, 1, state={"running": {}}, ready=False)
    assert mapped(pod).update.status is Status.UNHEALTHY


def test_the_pods_own_reason_wins_over_a_containers() -> None:
    update = mapped(served(make_pod("web-1", phase="Failed", terminated_exit_code=137, reason="DeadlineExceeded")))
    assert update.update.metadata["reason"] == "DeadlineExceeded"


def test_a_waiting_reason_wins_over_a_terminated_one_and_a_failed_exit_over_a_clean_one() -> None:
    pod = served(make_pod("web-1", phase="Running", ready=False))
    with_container(pod, 1, state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    with_container(pod, 2, state={"terminated": {"exitCode": 1, "reason": "Error"}})
    assert mapped(pod).update.metadata.get("reason") == "Error"
    with_container(pod, 3, state={"waiting": {"reason": "ErrImagePull"}})
    assert mapped(pod).update.metadata.get("reason") == "ErrImagePull"


# -- exit codes -------------------------------------------------------------------------------------


def test_a_failed_pod_reports_the_first_non_zero_exit_code_init_containers_first() -> None:
    pod = served(make_pod("web-1", phase="Failed", terminated_exit_code=2))
    with_container(pod, 0, init=True, state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    with_container(pod, 1, init=True, state={"terminated": {"exitCode": 9, "reason": "Error"}})
    update = mapped(pod).update
    assert update.status is Status.FAILED
    assert update.metadata["exitCode"] == 9


def test_a_succeeded_pod_reports_exit_code_0() -> None:
    update = mapped(served(make_pod("web-1", phase="Succeeded"))).update
    assert (update.status, update.metadata["exitCode"]) == (Status.STOPPED, 0)


def test_a_failed_pod_whose_containers_all_exited_0_reports_0() -> None:
    update = mapped(served(make_pod("web-1", phase="Failed", terminated_exit_code=0, reason="DeadlineExceeded")))
    assert update.update.metadata["exitCode"] == 0


def test_a_failed_pod_without_a_terminated_container_has_no_exit_code() -> None:
    pod = served(make_pod("web-1", phase="Failed", reason="Evicted"))
    pod["status"].pop("containerStatuses")
    update = mapped(pod).update
    assert update.status is Status.FAILED
    assert "exitCode" not in update.metadata


@pytest.mark.parametrize(
    "state",
    [{}, {"ready": False}, {"phase": "Pending"}, {"waiting_reason": "CrashLoopBackOff"}, {"phase": "Unknown"}],
)
def test_only_failed_and_stopped_pods_carry_an_exit_code(state: dict[str, Any]) -> None:
    assert "exitCode" not in mapped(served(make_pod("web-1", **state))).update.metadata


def test_a_deleted_or_deleting_failed_pod_carries_no_exit_code() -> None:
    # The control plane takes a Failed/Stopped report with an exit code as a workload exit; these are not.
    pod = served(make_pod("web-1", phase="Failed", terminated_exit_code=3))
    assert "exitCode" not in mapped(pod, deleted=True).update.metadata
    assert "exitCode" not in mapped(deleting(pod)).update.metadata


# -- the wire ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [{}, {"phase": "Failed", "terminated_exit_code": 1}, {"phase": "Pending", "node_name": None, "pod_ip": None}],
)
def test_the_wire_form_is_accepted_by_the_control_planes_parser(state: dict[str, Any]) -> None:
    update = mapped(served(make_pod("web-1", **state))).update
    body = update.to_wire()
    assert (body["source"], body["platform"]) == ("k8s-daemon", "kubernetes")
    report = parse_status_update(body, received_at=NOW + 0.5)  # received just after it happened
    assert report.status is update.status
    assert report.observed_at == NOW
    assert report.metadata["podName"] == "web-1"
    assert report.metadata["restartCount"] == "0"


# -- pods that are not reported ---------------------------------------------------------------------


def test_a_pod_without_the_instance_label_is_skipped() -> None:
    assert map_pod(served(make_pod("web-1", instance_id=None)), observed_at=NOW) is Skip.NO_INSTANCE_ID


def test_a_pod_with_an_empty_instance_label_is_skipped() -> None:
    assert map_pod(served(make_pod("web-1", instance_id="")), observed_at=NOW) is Skip.NO_INSTANCE_ID


@pytest.mark.parametrize("value", ["-leading-dash", "has space", "x" * 254, 42])
def test_a_pod_whose_label_is_not_a_valid_instance_id_is_skipped(value: Any) -> None:
    pod = served(make_pod("web-1"))
    pod["metadata"]["labels"][INSTANCE_LABEL] = value  # not what the API server admits; a fake or old server might
    assert map_pod(pod, observed_at=NOW) is Skip.INVALID_INSTANCE_ID


def set_at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (set_at("metadata", None), "metadata"),
        (set_at("metadata", "web-1"), "metadata"),
        (set_at("metadata.name", ""), "metadata.name"),
        (set_at("metadata.name", 7), "metadata.name"),
        (set_at("metadata.labels", ["a"]), "metadata.labels"),
        (set_at("status", "Running"), "status"),
        (set_at("status.phase", 1), "status.phase"),
        (set_at("status.containerStatuses", {}), "status.containerStatuses"),
        (set_at("status.containerStatuses", ["app"]), "status.containerStatuses[0]"),
        (set_at("status.containerStatuses.0.ready", "yes"), "status.containerStatuses[0].ready"),
        (set_at("status.containerStatuses.0.restartCount", "3"), "status.containerStatuses[0].restartCount"),
        (set_at("status.containerStatuses.0.state", []), "status.containerStatuses[0].state"),
        (set_at("status.conditions", "scheduled"), "status.conditions"),
        (set_at("spec.nodeName", ["node-1"]), "spec.nodeName"),
    ],
)
def test_a_malformed_pod_raises_an_error_naming_the_field(change: Callable[[dict[str, Any]], None], field: str) -> None:
    pod = served(make_pod("web-1", phase="Pending" if field == "status.conditions" else "Running"))
    if field == "status.conditions":
        pod["spec"].pop("nodeName")
    change(pod)
    with pytest.raises(MalformedPod) as caught:
        map_pod(pod, observed_at=NOW)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_something_that_is_not_a_pod_raises_a_malformed_pod() -> None:
    with pytest.raises(MalformedPod) as caught:
        map_pod(["not", "a", "pod"], observed_at=NOW)  # type: ignore[arg-type]
    assert caught.value.field == "pod"


# -- keys and removals ------------------------------------------------------------------------------


def test_a_pod_is_keyed_by_its_uid_else_by_namespace_and_name() -> None:
    pod = make_pod("web-1", namespace="drasi")
    assert pod_key(pod) == "drasi/web-1"
    assert pod_key(served(pod, uid="0b6f")) == "0b6f"


def test_a_removed_update_keeps_the_pod_but_not_its_exit_code() -> None:
    last = mapped(served(make_pod("web-1", phase="Failed", terminated_exit_code=3))).update
    removed = removed_update(last, observed_at=NOW + 5, reason="pod no longer exists (found at relist)")
    assert removed.status is Status.REMOVED
    assert removed.observed_at == NOW + 5
    assert removed.metadata == {
        **{k: v for k, v in last.metadata.items() if k != "exitCode"},
        "reason": "pod no longer exists (found at relist)",
    }
    assert (removed.instance_id, removed.workload_id, removed.source) == ("web-1", "uid-1", "k8s-daemon")


def test_a_daemonsets_reports_have_a_source_per_node_that_fits_the_api() -> None:
    long_a, long_b = "n" * 200 + "a", "n" * 200 + "b"

    assert source_for(None) == source_for("") == "k8s-daemon"
    assert source_for("aks-pool1-12345678-vmss000000") == "k8s-daemon@aks-pool1-12345678-vmss000000"
    assert len(source_for(long_a)) == 128 and source_for(long_a) != source_for(long_b)
    report = map_pod(served(make_pod("web-1")), observed_at=NOW, source=source_for("node-1"))
    assert isinstance(report, PodReport) and report.update.source == "k8s-daemon@node-1"
    assert mapped(served(make_pod("web-1"))).update.source == "k8s-daemon"
