"""Restart policies and operator actions for Kubernetes instances: a real control plane deletes pods in the fake API.

The tests push the Kubernetes daemon's reports themselves (what ``daemons/k8s_mapping.py`` sends: platform
``kubernetes``, source ``k8s-daemon``, pod metadata, ``exitCode`` for a pod that ended), and a ``ReplicaSet`` on
the fake's ``on_delete`` hook plays the pod's controller: it creates a replacement with a new name and reports it.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from draas_actors.platforms.kubernetes import KubernetesSettings
from tests.helpers import ProcessJanitor, RunningControlPlane, holds_for, running_control_plane, wait_until
from tests.integration.test_k8s_daemon import running_daemon
from tests.kube.fake_apiserver import FakeApiServer, running_fake_apiserver
from tests.kube.pods import make_pod

pytestmark = pytest.mark.kubernetes

SOURCE = "k8s-daemon"
NAMESPACE = "default"
GRACE = 5.0  # long enough that a replacement always reports first where there is a controller


# -- the daemon's side, played by the test --------------------------------------------------------------------


class Reporter:
    """Pushes reports as the Kubernetes daemon would, with an observedAt that never goes back."""

    def __init__(self, plane: RunningControlPlane) -> None:
        self.plane = plane
        self._lock = threading.Lock()
        self._last = 0.0

    def report(self, instance_id: str, pod: dict[str, Any], status: str, **metadata: Any) -> dict[str, Any]:
        """Push one report about ``pod``; returns the body, so that a test can replay it."""
        with self._lock:
            self._last = max(time.time(), self._last + 0.001)
            observed = self._last
        meta = pod["metadata"]
        body = {
            "instanceId": instance_id,
            "status": status,
            "source": SOURCE,
            "platform": "kubernetes",
            "observedAt": observed,
            "metadata": {
                "podName": meta["name"],
                "namespace": meta["namespace"],
                "nodeName": pod["spec"].get("nodeName", "node-1"),
                "phase": pod["status"].get("phase", "Running"),
                **metadata,
            },
        }
        self.push(body)
        return body

    def push(self, body: dict[str, Any]) -> None:
        response = self.plane.push(body)
        assert response.status_code == 202, response.text

    def failed(self, instance_id: str, pod: dict[str, Any], exit_code: int = 1) -> dict[str, Any]:
        return self.report(instance_id, pod, "Failed", phase="Failed", exitCode=exit_code, reason="Error")

    def runs(self, instance_id: str, pod: dict[str, Any]) -> None:
        self.report(instance_id, pod, "Pending", phase="Pending")
        self.report(instance_id, pod, "Running", phase="Running", podIP="10.0.0.2", restartCount=0)


class ReplicaSet:
    """The fake's ``on_delete`` hook: reports the deleted pod ``Removed``, then creates and reports a replacement."""

    def __init__(self, api: FakeApiServer, reporter: Reporter, instance_id: str) -> None:
        self.api = api
        self.reporter = reporter
        self.instance_id = instance_id
        self.replacements: list[dict[str, Any]] = []
        self._names = (f"{instance_id}-r{n}" for n in itertools.count(1))

    def __call__(self, deleted: dict[str, Any]) -> None:
        if deleted["metadata"]["labels"].get("draas.instanceId") != self.instance_id:
            return
        self.reporter.report(self.instance_id, deleted, "Removed", reason="deleted")
        pod = self.api.create_pod(make_pod(next(self._names), instance_id=self.instance_id))
        self.replacements.append(pod)
        self.reporter.runs(self.instance_id, pod)

    @property
    def current(self) -> dict[str, Any]:
        return self.replacements[-1]

    def wait_for(self, count: int) -> dict[str, Any]:
        """Replacement number ``count``, once it has been created and reported."""
        wait_until(lambda: len(self.replacements) >= count, 5.0, message=f"replacement number {count}")
        return self.replacements[count - 1]


@contextlib.contextmanager
def kubernetes_plane(
    tmp_path: Path, api: FakeApiServer, *, grace: float = GRACE, kubeconfig: dict[str, Any] | None = None
) -> Iterator[RunningControlPlane]:
    path = tmp_path / "kubeconfig"
    if kubeconfig is None:
        api.write_kubeconfig(path)
    else:
        path.write_text(yaml.safe_dump(kubeconfig))
    settings = KubernetesSettings(kubeconfig=str(path), request_timeout=5.0, replacement_grace=grace)
    janitor = ProcessJanitor()
    try:
        with running_control_plane(tmp_path / "data", janitor=janitor, kubernetes=settings) as plane:
            yield plane
    finally:
        janitor.kill_all()


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with running_fake_apiserver(bookmark_interval=0.2) as server:
        yield server
        assert server.on_delete_errors == [], "the test's ReplicaSet failed"


@pytest.fixture
def plane(tmp_path: Path, api: FakeApiServer) -> Iterator[RunningControlPlane]:
    with kubernetes_plane(tmp_path, api) as running:
        yield running


@pytest.fixture
def reporter(plane: RunningControlPlane) -> Reporter:
    return Reporter(plane)


def register(plane: RunningControlPlane, instance_id: str, **policy: Any) -> None:
    plane.register({"instanceId": instance_id, "platform": "kubernetes", "restartPolicy": policy})


def running_pod(api: FakeApiServer, reporter: Reporter, plane: RunningControlPlane, instance_id: str) -> dict[str, Any]:
    """A pod of the instance, created in the fake and reported Pending then Running."""
    pod = api.create_pod(make_pod(f"{instance_id}-0", instance_id=instance_id))
    reporter.runs(instance_id, pod)
    plane.wait_for(instance_id, lambda v: v["status"] == "Running", message=f"{instance_id} runs")
    return pod


def replicated(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter, instance_id: str, **policy: Any
) -> tuple[ReplicaSet, dict[str, Any]]:
    """A registered instance whose pod runs, with a ReplicaSet that replaces the pods the control plane deletes."""
    register(plane, instance_id, **policy)
    replica_set = ReplicaSet(api, reporter, instance_id)
    api.on_delete = replica_set
    return replica_set, running_pod(api, reporter, plane, instance_id)


def fail(
    api: FakeApiServer, reporter: Reporter, instance_id: str, pod: dict[str, Any], code: int = 1
) -> dict[str, Any]:
    """The pod's container exits with ``code``: the fake and the control plane both hear of it."""
    name = pod["metadata"]["name"]
    api.patch_pod_status(NAMESPACE, name, phase="Failed", ready=False, terminated_exit_code=code)
    return reporter.failed(instance_id, pod, code)


def deleted_names(api: FakeApiServer) -> list[str]:
    return [name for namespace, name in api.deletions if namespace == NAMESPACE]


def delete_requests(api: FakeApiServer) -> int:
    return sum(1 for method, _, _ in api.requests if method == "DELETE")


def runs_on(view: dict[str, Any], pod: dict[str, Any], restarts: int) -> bool:
    return bool(
        view["status"] == "Running"
        and view["restartCount"] == restarts
        and view["metadata"].get("podName") == pod["metadata"]["name"]
    )


ON_FAILURE = {"mode": "on-failure", "initialBackoff": 0.2, "maxBackoff": 1.0, "jitter": 0, "maxRestarts": 5,
              "window": 60, "resetAfter": 600}


# -- the restart policy --------------------------------------------------------------------------------------


def test_a_failed_pod_is_deleted_and_the_instance_runs_again_on_its_replacement(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    replica_set, pod = replicated(api, plane, reporter, "web", **ON_FAILURE)

    fail(api, reporter, "web", pod, code=3)

    assert api.wait_for_deletion(NAMESPACE, "web-0", 5.0), "the control plane deleted the failed pod"
    view = plane.wait_for("web", lambda v: bool(replica_set.replacements) and runs_on(v, replica_set.current, 1))
    assert view["lastExitCode"] == 3
    assert view["nextRestartAt"] is None
    assert deleted_names(api) == ["web-0"]
    assert plane.transitions("web")[-4:] == [
        ("Running", "Failed"), ("Failed", "Restarting"), ("Restarting", "Pending"), ("Pending", "Running"),
    ]
    # The deleted pod's own Removed report is not an exit, and was not taken as the instance's removal.
    assert "Removed" not in [new for _, new in plane.transitions("web")]


def test_a_restart_due_when_the_control_plane_stopped_is_made_when_it_starts_again(
    tmp_path: Path, api: FakeApiServer
) -> None:
    slow = {**ON_FAILURE, "initialBackoff": 3.0, "maxBackoff": 3.0}
    with kubernetes_plane(tmp_path, api) as plane:
        reporter = Reporter(plane)
        replica_set, pod = replicated(api, plane, reporter, "web", **slow)
        fail(api, reporter, "web", pod)  # the first restart of a series: at once
        first = replica_set.wait_for(1)
        plane.wait_for("web", lambda v: runs_on(v, first, 1))
        fail(api, reporter, "web", first)  # the second: in 3 s, but the control plane stops before
        due = plane.wait_for("web", lambda v: v["status"] == "Restarting")["nextRestartAt"]
    assert deleted_names(api) == ["web-0"]

    with kubernetes_plane(tmp_path, api) as again:
        replica_set.reporter = Reporter(again)
        second = replica_set.wait_for(2)  # its pod deleted by the restart that was due, not forgotten
        view = again.wait_for("web", lambda v: runs_on(v, second, 2))
        replaced_at = [c["timestamp"] for c in again.changes("web") if c["newStatus"] == "Pending"][-1]
    assert deleted_names(api) == ["web-0", first["metadata"]["name"]]
    assert replaced_at >= due, (replaced_at, due)  # when it was due (both RFC 3339 UTC, same precision), not before
    assert view["nextRestartAt"] is None


def test_repeated_failures_back_off_and_end_failed_when_the_budget_is_spent(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    replica_set, pod = replicated(api, plane, reporter, "crashy", **{**ON_FAILURE, "maxRestarts": 3})

    waited: list[float] = []
    for restarts in range(1, 4):
        failed_at = time.monotonic()
        fail(api, reporter, "crashy", pod)
        # Each closure is called within its own iteration, so late binding (B023) cannot bite.
        wait_until(lambda: len(api.deletions) == restarts, 5.0, 0.005, f"delete number {restarts}")  # noqa: B023
        waited.append(time.monotonic() - failed_at)
        pod = replica_set.wait_for(restarts)
        plane.wait_for(
            "crashy", lambda v: runs_on(v, pod, restarts), message=f"runs after restart {restarts}"  # noqa: B023
        )
    fail(api, reporter, "crashy", pod)

    view = plane.wait_for("crashy", lambda v: v["status"] == "Failed" and v["lastReason"] == "restart budget exhausted")
    assert view["restartCount"] == 3
    holds_for(lambda: len(api.deletions) == 3, 0.6, message="no pod is deleted once the budget is spent")
    delays = [c["metadata"]["delay"] for c in plane.changes("crashy") if c["newStatus"] == "Restarting"]
    assert delays == ["0.000", "0.200", "0.400"]  # the first restart at once, then doubling
    assert waited[1] >= 0.2 and waited[2] >= 0.4, waited
    assert api.get_pod(NAMESPACE, pod["metadata"]["name"]) is not None  # the last failed pod is left for a human


def test_a_replayed_failed_report_deletes_nothing_twice(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    slower = {**ON_FAILURE, "initialBackoff": 0.5, "maxBackoff": 0.5}
    replica_set, first = replicated(api, plane, reporter, "replay", **slower)
    first_failure = fail(api, reporter, "replay", first)
    second = replica_set.wait_for(1)
    plane.wait_for("replay", lambda v: runs_on(v, second, 1))

    # The second restart of the series waits 0.5 s: a replay before it fires, and one after, restart nothing;
    # nor does the same failure listed again (a daemon's restart) with a later observedAt.
    second_failure = fail(api, reporter, "replay", second)
    reporter.push(second_failure)
    reporter.push(first_failure)
    reporter.failed("replay", second)
    third = replica_set.wait_for(2)
    plane.wait_for("replay", lambda v: runs_on(v, third, 2))
    reporter.push(second_failure)

    holds_for(
        lambda: deleted_names(api) == ["replay-0", "replay-r1"] and plane.instance("replay")["status"] == "Running",
        0.8,
        message="each failed pod is deleted once, and the instance keeps running",
    )
    view = plane.instance("replay")
    assert view["restartCount"] == 2
    assert [c["metadata"]["delay"] for c in plane.changes("replay") if c["newStatus"] == "Restarting"] == [
        "0.000", "0.500",
    ]


def test_a_bare_pod_is_not_recreated_and_its_instance_ends_removed_saying_why(
    tmp_path: Path, api: FakeApiServer
) -> None:
    with kubernetes_plane(tmp_path, api, grace=0.3) as plane:
        reporter = Reporter(plane)
        register(plane, "bare", **ON_FAILURE)
        pod = running_pod(api, reporter, plane, "bare")

        fail(api, reporter, "bare", pod)
        assert api.wait_for_deletion(NAMESPACE, "bare-0", 5.0)
        reporter.report("bare", pod, "Removed", reason="deleted")  # what the daemon sees next; no controller

        view = plane.wait_for("bare", lambda v: v["status"] == "Removed", message="the instance ends Removed")
        assert "pod default/bare-0 was deleted to restart the instance" in view["lastReason"]
        assert "bare pod has no controller to recreate it" in view["lastReason"]
        assert view["restartCount"] == 1
        assert plane.transitions("bare")[-1] == ("Restarting", "Removed")
        refused = plane.post("/api/instances/bare/restart")
        assert refused.status_code == 409
        assert refused.json()["field"] == "podName"
        assert "bare-0 was removed" in refused.json()["detail"]
        assert deleted_names(api) == ["bare-0"]


# -- failures of the delete ----------------------------------------------------------------------------------


def test_a_delete_the_api_refuses_is_explained_and_not_retried(tmp_path: Path, api: FakeApiServer) -> None:
    # Credentials the API does not accept: every request is refused with 401, as an expired token would be.
    kubeconfig = api.kubeconfig()
    kubeconfig["users"][0]["user"]["token"] = "not-the-token"
    with kubernetes_plane(tmp_path, api, kubeconfig=kubeconfig) as plane:
        reporter = Reporter(plane)
        register(plane, "refused", **ON_FAILURE)
        pod = running_pod(api, reporter, plane, "refused")

        fail(api, reporter, "refused", pod)

        view = plane.wait_for("refused", lambda v: v["status"] == "Failed" and "delete failed" in v["lastReason"])
        assert view["lastReason"] == "kubernetes delete failed: HTTP 401 Unauthorized: Unauthorized; not retried"
        holds_for(lambda: delete_requests(api) == 1, 0.6, message="a refusal is not retried")
        assert plane.instance("refused")["status"] == "Failed"
        assert api.get_pod(NAMESPACE, "refused-0") is not None


def test_an_operator_restart_the_api_refuses_leaves_the_running_pod_as_it_was(
    tmp_path: Path, api: FakeApiServer
) -> None:
    kubeconfig = api.kubeconfig()
    kubeconfig["users"][0]["user"]["token"] = "not-the-token"
    with kubernetes_plane(tmp_path, api, kubeconfig=kubeconfig) as plane:
        reporter = Reporter(plane)
        register(plane, "kept", mode="never")
        running_pod(api, reporter, plane, "kept")

        assert plane.post("/api/instances/kept/restart").status_code == 202

        view = plane.wait_for("kept", lambda v: "delete failed" in (v["lastReason"] or ""))
        assert view["status"] == "Running"
        assert view["lastReason"].endswith("; the pod was not restarted")
        assert ("Running", "Restarting") in plane.transitions("kept")
        assert plane.transitions("kept")[-1] == ("Restarting", "Running")


def test_an_unreachable_api_is_retried_with_backoff_until_the_budget_is_spent(
    tmp_path: Path, api: FakeApiServer
) -> None:
    kubeconfig = api.kubeconfig()
    with socket.socket() as probe:  # a port nobody listens on once this is closed
        probe.bind(("127.0.0.1", 0))
        kubeconfig["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with kubernetes_plane(tmp_path, api, kubeconfig=kubeconfig) as plane:
        reporter = Reporter(plane)
        register(plane, "far", **{**ON_FAILURE, "maxRestarts": 2, "initialBackoff": 0.05})
        pod = running_pod(api, reporter, plane, "far")

        fail(api, reporter, "far", pod)

        view = plane.wait_for(
            "far", lambda v: v["lastReason"] == "restart budget exhausted", timeout=15, message="the budget is spent"
        )
        assert view["status"] == "Failed"
        reasons = [c["metadata"].get("reason", "") for c in plane.changes("far") if c["newStatus"] == "Failed"]
        assert sum("kubernetes delete failed" in r for r in reasons) == 2  # both attempts failed, then it gave up
        assert delete_requests(api) == 0


# -- operator actions ----------------------------------------------------------------------------------------


def test_an_operator_restart_deletes_the_pod_and_its_replacement_takes_over(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    replica_set = ReplicaSet(api, reporter, "observed")
    pod = api.create_pod(make_pod("observed-0", instance_id="observed"))
    reporter.runs("observed", pod)  # created by the push: observed only, restart mode never
    plane.wait_for("observed", lambda v: v["status"] == "Running")
    api.on_delete = replica_set

    response = plane.post("/api/instances/observed/restart")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "Restarting"
    assert api.wait_for_deletion(NAMESPACE, "observed-0", 5.0)
    plane.wait_for("observed", lambda v: bool(replica_set.replacements) and runs_on(v, replica_set.current, 1))
    assert plane.transitions("observed")[-3:] == [
        ("Running", "Restarting"), ("Restarting", "Pending"), ("Pending", "Running"),
    ]


def test_an_operator_restart_before_any_pod_is_reported_is_409_naming_the_pod(plane: RunningControlPlane) -> None:
    register(plane, "empty", mode="never")
    response = plane.post("/api/instances/empty/restart")
    assert response.status_code == 409
    assert response.json()["field"] == "podName"
    assert "no pod reported" in response.json()["detail"]


@pytest.mark.parametrize(("action", "scale"), [("start", "--replicas=1"), ("stop", "--replicas=0")])
def test_operator_start_and_stop_are_409_because_the_controller_owns_the_pod(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter, action: str, scale: str
) -> None:
    register(plane, "owned", mode="always")
    running_pod(api, reporter, plane, "owned")

    response = plane.post(f"/api/instances/owned/{action}")

    assert response.status_code == 409
    body = response.json()
    assert body["field"] == "platform"
    assert "belongs to the pod's controller" in body["detail"]
    assert "scale the Deployment" in body["detail"] and scale in body["detail"]
    assert plane.instance("owned")["status"] == "Running"
    assert delete_requests(api) == 0


# -- which pod counts ----------------------------------------------------------------------------------------


def test_reports_from_the_old_pod_after_its_replacement_runs_change_nothing(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    replica_set, old = replicated(api, plane, reporter, "late", **ON_FAILURE)
    fail(api, reporter, "late", old)
    new = replica_set.wait_for(1)
    plane.wait_for("late", lambda v: runs_on(v, new, 1))
    rejected = plane.instance("late")["rejectedTransitions"]

    reporter.report("late", old, "Stopping", reason="deletionTimestamp")
    reporter.failed("late", old, 137)
    reporter.report("late", old, "Removed", reason="deleted")

    view = plane.wait_for("late", lambda v: v["rejectedTransitions"] == rejected + 3, message="all three counted")
    assert runs_on(view, new, 1)
    assert view["lastExitCode"] == 1  # the old pod's late 137 is not an exit of the instance
    assert deleted_names(api) == ["late-0"]


def test_in_a_rolling_update_the_new_pod_takes_over_and_the_old_one_going_changes_nothing(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    register(plane, "rolling", **ON_FAILURE)
    old = running_pod(api, reporter, plane, "rolling")
    new = api.create_pod(make_pod("rolling-1", instance_id="rolling"))

    reporter.runs("rolling", new)
    plane.wait_for("rolling", lambda v: runs_on(v, new, 0))
    reporter.report("rolling", old, "Stopping", reason="deletionTimestamp")
    reporter.report("rolling", old, "Stopped", phase="Succeeded", exitCode=0)
    reporter.report("rolling", old, "Removed", reason="deleted")

    view = plane.wait_for("rolling", lambda v: v["rejectedTransitions"] == 3, message="the old pod's reports counted")
    assert runs_on(view, new, 0)
    assert plane.transitions("rolling")[-2:] == [("Running", "Pending"), ("Pending", "Running")]
    assert delete_requests(api) == 0


def test_a_pod_its_controller_replaced_before_the_restart_was_due_is_not_deleted(
    api: FakeApiServer, plane: RunningControlPlane, reporter: Reporter
) -> None:
    slower = {**ON_FAILURE, "initialBackoff": 0.5, "maxBackoff": 0.5}
    replica_set, first = replicated(api, plane, reporter, "eager", **slower)
    fail(api, reporter, "eager", first)
    second = replica_set.wait_for(1)
    plane.wait_for("eager", lambda v: runs_on(v, second, 1))

    fail(api, reporter, "eager", second)  # the restart is due in 0.5 s...
    plane.wait_for("eager", lambda v: v["status"] == "Restarting" and v["nextRestartAt"] is not None)
    own = api.create_pod(make_pod("eager-own", instance_id="eager"))  # ...but a ReplicaSet replaces failed pods too
    reporter.runs("eager", own)
    reporter.report("eager", own, "Restarting", reason="CrashLoopBackOff")

    holds_for(
        lambda: deleted_names(api) == ["eager-0"], 0.9, message="neither the failed pod nor its replacement is deleted"
    )
    view = plane.instance("eager")
    assert (view["status"], view["metadata"]["podName"], view["nextRestartAt"]) == ("Restarting", "eager-own", None)
    assert view["restartCount"] == 1


# -- through the real daemon ---------------------------------------------------------------------------------


def test_through_the_real_daemon_a_failed_pod_is_deleted_and_its_replacement_runs(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    replacements: list[str] = []

    def replica_set(deleted: dict[str, Any]) -> None:
        """Only the controller's part: the daemon reports what happens to the pods."""
        name = f"daemon-r{len(replacements) + 1}"
        api.create_pod(make_pod(name, instance_id="daemon", phase="Pending", ready=False))
        api.patch_pod_status(NAMESPACE, name, phase="Running", ready=True)
        replacements.append(name)

    register(plane, "daemon", **ON_FAILURE)
    api.on_delete = replica_set
    api.create_pod(make_pod("daemon-0", instance_id="daemon"))
    with running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool"):
        plane.wait_for("daemon", lambda v: v["status"] == "Running", timeout=10, message="the daemon reports it")

        api.patch_pod_status(NAMESPACE, "daemon-0", phase="Failed", ready=False, terminated_exit_code=2)

        assert api.wait_for_deletion(NAMESPACE, "daemon-0", 10.0), "the control plane deleted the failed pod"
        view = plane.wait_for(
            "daemon",
            lambda v: bool(replacements) and v["status"] == "Running" and v["metadata"].get("podName") == "daemon-r1",
            timeout=10,
            message="the replacement runs",
        )
    assert view["restartCount"] == 1
    assert view["lastExitCode"] == 2
    assert deleted_names(api) == ["daemon-0"]
    statuses = [new for _, new in plane.transitions("daemon")]
    assert statuses[statuses.index("Failed"):][:2] == ["Failed", "Restarting"]
    # The daemon pushes Removed for the deleted pod when it was the instance's last: the replacement came in time.
    assert "Removed" not in statuses
