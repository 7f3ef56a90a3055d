"""The Kubernetes daemon against the fake API server (real HTTP, the real ``kubernetes`` client) and a real control
plane on 127.0.0.1.

The daemon runs in-process in a thread (``GatedDaemon``: the real daemon with a gate before each watch, so that a
test can keep it away from the API server while it changes pods, whatever the backoff draws); the SIGTERM and
configuration tests run it as ``python -m daemons.k8s_daemon`` with a kubeconfig written by the fake.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from daemons.k8s_daemon import VANISHED, DaemonSettings, KubernetesDaemon
from tests.helpers import RunningControlPlane, wait_until
from tests.integration.daemon_support import (
    assert_command_refuses,
    control_plane_on,
    daemon_env,
    daemon_process,
    free_port,
    listening_ports,
    platform_views,
    quick_push_client,
    running_in_thread,
    spooled_bodies,
    stop_with_sigterm,
)
from tests.integration.daemon_support import wait_for_statuses as wait_for_platform_statuses
from tests.integration.daemon_support import wait_for_view as wait_for_instance_view
from tests.kube.fake_apiserver import FakeApiServer, running_fake_apiserver
from tests.kube.pods import make_pod

pytestmark = pytest.mark.kubernetes

k8s_views = functools.partial(platform_views, platform="kubernetes")
wait_for_statuses = functools.partial(wait_for_platform_statuses, platform="kubernetes")

NS = "default"
GATE_TIMEOUT = 10.0


# -- the daemon, in a thread ------------------------------------------------------------------------


class GatedDaemon(KubernetesDaemon):
    """The real daemon; while ``gate`` is clear, it waits (``waiting`` set) before opening its next watch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def watch(self) -> bool:
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait(GATE_TIMEOUT)
            self.waiting.clear()
        return super().watch()

    def stop(self) -> None:
        self.gate.set()  # held at the gate, it would not see that it is stopping
        super().stop()


@contextlib.contextmanager
def running_daemon(
    api: FakeApiServer, base_url: str, api_key: str, spool_path: Path, **overrides: Any
) -> Iterator[GatedDaemon]:
    """A daemon with quick retries, watching when this yields; stopped (and checked) on the way out."""
    quick: dict[str, Any] = {
        "reconnect_initial": 0.05, "reconnect_max": 0.3, "shutdown_flush": 2.0, "watch_timeout": 30,
        "request_timeout": 40.0,
    }
    settings = DaemonSettings(
        control_plane_url=base_url, api_key=api_key, spool_path=spool_path, **{**quick, **overrides}
    )
    daemon = GatedDaemon(settings, api.configuration(), push=quick_push_client(base_url, api_key, spool_path))
    with running_in_thread(daemon, "test-k8s-daemon", daemon.watching, "the daemon watches pods") as running:
        yield running


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with running_fake_apiserver(bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
def daemon(api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path) -> Iterator[GatedDaemon]:
    with running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool") as running:
        yield running


# -- what the control plane says --------------------------------------------------------------------


def wait_for_view(
    plane: RunningControlPlane, instance_id: str, status: str, *, timeout: float = 5.0, **metadata: str
) -> dict[str, Any]:
    """Poll until the instance has ``status`` and these metadata values (strings, as the control plane keeps them)."""
    return wait_for_instance_view(lambda iid: k8s_views(plane).get(iid), instance_id, status, timeout, metadata)


def statuses_reported(plane: RunningControlPlane, instance_id: str) -> list[str]:
    return [new for _, new in plane.transitions(instance_id)]


def watch_queries(api: FakeApiServer, since: int = 0) -> list[dict[str, str]]:
    return [q for method, path, q in api.requests[since:] if path.endswith("/pods") and q.get("watch") in ("true", "1")]


# -- the mapping, end to end ------------------------------------------------------------------------

ROWS: list[tuple[str, dict[str, Any], str, dict[str, str]]] = [
    ("running", {"pod_ip": "10.1.2.3"}, "Running",
     {"phase": "Running", "podIP": "10.1.2.3", "nodeName": "node-1", "namespace": NS, "restartCount": "0"}),
    ("unready", {"ready": False}, "Unhealthy", {"phase": "Running"}),
    ("unscheduled", {"phase": "Pending", "node_name": None, "pod_ip": None}, "Pending",
     {"phase": "Pending", "nodeName": "", "podIP": ""}),
    ("scheduled", {"phase": "Pending"}, "Starting", {"reason": "ContainerCreating"}),
    ("crashing", {"waiting_reason": "CrashLoopBackOff", "restart_count": 5}, "Restarting",
     {"reason": "CrashLoopBackOff: container app: CrashLoopBackOff", "restartCount": "5"}),
    ("failed", {"phase": "Failed", "terminated_exit_code": 3}, "Failed", {"exitCode": "3", "reason": "Error"}),
    ("succeeded", {"phase": "Succeeded"}, "Stopped", {"exitCode": "0", "reason": "Completed"}),
    ("lost", {"phase": "Unknown", "reason": "NodeLost"}, "Unknown", {"phase": "Unknown", "reason": "NodeLost"}),
]


def test_every_mapping_row_reaches_the_control_plane_listed_or_watched(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    for row, state, _, _ in ROWS:
        api.create_pod(make_pod(f"listed-{row}", **state))
    with running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool") as daemon:
        for row, state, _, _ in ROWS:
            api.create_pod(make_pod(f"watched-{row}", **state))
        for prefix in ("listed", "watched"):
            for row, _, status, metadata in ROWS:
                view = wait_for_view(plane, f"{prefix}-{row}", status, podName=f"{prefix}-{row}")
                assert metadata.items() <= view["metadata"].items(), view
                assert view["platform"] == "kubernetes"
                assert ("exitCode" in view["metadata"]) is (status in ("Failed", "Stopped"))
        assert (daemon.stats.lists, daemon.stats.listed, daemon.stats.events) == (1, len(ROWS), len(ROWS))

        # A Failed or Stopped report with an exit code is a workload exit for the control plane.
        assert k8s_views(plane)["watched-failed"]["lastExitCode"] == 3

        # Deleting: gracefully (Stopping, then Removed), and at once (Removed).
        api.delete_pod(NS, "listed-running", graceful=True)
        view = wait_for_view(plane, "listed-running", "Stopping", reason="pod is being deleted")
        api.finish_deletion(NS, "listed-running")
        view = wait_for_view(plane, "listed-running", "Removed", reason="pod deleted")
        assert view["lastReason"] == "pod deleted"
        api.delete_pod(NS, "watched-running")
        wait_for_view(plane, "watched-running", "Removed", reason="pod deleted", podName="watched-running")


def test_one_pod_through_its_life_reports_every_transition_in_order(
    api: FakeApiServer, plane: RunningControlPlane, daemon: GatedDaemon
) -> None:
    api.create_pod(make_pod("life", phase="Pending", node_name=None, pod_ip=None))
    wait_for_view(plane, "life", "Pending")
    steps: list[tuple[dict[str, Any], str]] = [
        ({"node_name": "node-1"}, "Starting"),
        ({"phase": "Running", "pod_ip": "10.0.0.9"}, "Running"),
        ({"ready": False}, "Unhealthy"),
        ({"ready": True}, "Running"),
        ({"waiting_reason": "CrashLoopBackOff", "restart_count": 1}, "Restarting"),
        ({"waiting_reason": None, "restart_count": 2}, "Running"),
        ({"phase": "Unknown"}, "Unknown"),
        ({"phase": "Failed", "terminated_exit_code": 137}, "Failed"),
    ]
    for changes, status in steps:
        api.patch_pod_status(NS, "life", **changes)
        wait_for_view(plane, "life", status)
    api.delete_pod(NS, "life")
    wait_for_view(plane, "life", "Removed")

    assert statuses_reported(plane, "life") == ["Pending"] + [status for _, status in steps] + ["Removed"]
    assert k8s_views(plane)["life"]["metadata"]["restartCount"] == "2"


# -- breaks: 410, dropped connections, bookmarks, silence -------------------------------------------

# A pod's possible changes, in order: any subsequence of them is a valid run of transitions at the control plane,
# so the final state is reachable whatever a relisting collapses.
STEPS: list[tuple[dict[str, Any] | None, str]] = [
    ({"ready": False}, "Unhealthy"),
    ({"ready": True}, "Running"),
    ({"waiting_reason": "CrashLoopBackOff", "restart_count": 1}, "Restarting"),
    ({"waiting_reason": None, "phase": "Failed", "terminated_exit_code": 1}, "Failed"),
    (None, "Removed"),  # deleted
]


class Cluster:
    """The test's own account of what each pod's instance must end as."""

    def __init__(self, api: FakeApiServer, rng: random.Random) -> None:
        self.api = api
        self.rng = rng
        self.step: dict[str, int] = {}
        self.expected: dict[str, str] = {}

    def add(self, name: str) -> None:
        self.api.create_pod(make_pod(name))
        self.step[name] = 0
        self.expected[name] = "Running"

    def advance(self, name: str) -> None:
        changes, status = STEPS[self.step[name]]
        if changes is None:
            self.api.delete_pod(NS, name)
        else:
            self.api.patch_pod_status(NS, name, **changes)
        self.step[name] += 1
        self.expected[name] = status

    def advance_some(self, count: int) -> None:
        alive = sorted(name for name, step in self.step.items() if step < len(STEPS))
        for name in self.rng.sample(alive, min(count, len(alive))):
            self.advance(name)

    def delete_one(self) -> None:
        name = self.rng.choice(sorted(name for name, step in self.step.items() if step < len(STEPS)))
        self.api.delete_pod(NS, name)
        self.step[name] = len(STEPS)
        self.expected[name] = "Removed"


def watching_after(daemon: GatedDaemon, lists: int) -> Callable[[], bool]:
    """Watching again, after ``lists`` listings in all."""
    return lambda: daemon.watching.is_set() and daemon.stats.lists == lists


def test_fifty_pods_changing_through_compactions_and_watches_dropped_three_ways_end_in_their_true_state(
    api: FakeApiServer, plane: RunningControlPlane, daemon: GatedDaemon
) -> None:
    cluster = Cluster(api, random.Random(4))
    for index in range(50):
        cluster.add(f"pod-{index:02d}")
    wait_for_statuses(plane, cluster.expected, timeout=10.0)
    new = 0

    for mode in ("reset", "eof", "clean"):
        for compacted in (False, True):
            lists, requests_before = daemon.stats.lists, len(api.requests)
            daemon.gate.clear()
            assert api.drop_watches(mode) == 1
            wait_until(daemon.waiting.is_set, 5.0, 0.01, f"the daemon notices the {mode} drop")
            resume_from = daemon.resource_version
            cluster.advance_some(8)
            if compacted:
                cluster.delete_one()  # gone before the compaction: only a relisting can tell
                new += 1
                cluster.add(f"new-{new}")
                api.compact()
                cluster.advance_some(4)  # after the compaction, but the daemon's resourceVersion is older
            daemon.gate.set()
            wait_until(
                watching_after(daemon, lists + compacted), 10.0, 0.01,
                f"the daemon watches again after the {mode} drop ({'compacted' if compacted else 'replayed'})",
            )
            if not compacted:
                assert watch_queries(api, requests_before)[0]["resourceVersion"] == resume_from
            cluster.advance_some(4)  # while it watches

    views = wait_for_statuses(plane, cluster.expected, timeout=15.0)
    stats = daemon.stats
    assert (stats.lists, stats.expired) == (4, 3), stats
    assert (stats.drops, stats.stream_ends) == (4, 2), stats  # reset and eof break the stream; clean ends it
    assert stats.vanished >= 3, stats
    assert [iid for iid, view in views.items() if view["metadata"].get("reason") == VANISHED]
    assert set(views) == set(cluster.expected)


def test_bookmarks_keep_the_resource_version_fresh_so_resuming_after_a_compaction_needs_no_relisting(
    api: FakeApiServer, plane: RunningControlPlane, daemon: GatedDaemon
) -> None:
    api.create_pod(make_pod("watched"))
    wait_for_view(plane, "watched", "Running")
    for index in range(5):
        api.create_pod(make_pod(f"other-{index}", labels={"app": "other"}))  # not selected: no event for the daemon
    target = int(api.resource_version)
    wait_until(lambda: int(daemon.resource_version or 0) >= target, 5.0, 0.01, "a bookmark carries the new RV")
    assert daemon.stats.bookmarks > 0

    api.compact()
    api.drop_watches("reset")
    api.patch_pod_status(NS, "watched", ready=False)

    wait_for_view(plane, "watched", "Unhealthy")
    stats = daemon.stats
    assert (stats.lists, stats.expired, stats.drops) == (1, 0, 1), stats
    assert "other-0" not in k8s_views(plane)


def test_a_silent_watch_is_abandoned_after_the_read_timeout_and_resumed_from_its_resource_version(
    plane: RunningControlPlane, tmp_path: Path
) -> None:
    # No bookmarks: an idle stream sends nothing at all, as a half-open connection would.
    with running_fake_apiserver(bookmark_interval=60.0) as api:
        api.create_pod(make_pod("quiet"))
        with running_daemon(
            api, plane.base_url, plane.daemon_key, tmp_path / "spool", watch_timeout=60, request_timeout=0.4
        ) as daemon:
            wait_until(lambda: daemon.stats.drops >= 1 and daemon.watching.is_set(), 5.0, 0.01, "a read timeout")
            api.patch_pod_status(NS, "quiet", ready=False)
            wait_for_view(plane, "quiet", "Unhealthy")
            assert daemon.stats.lists == 1
            queries = watch_queries(api)
            assert len(queries) >= 2
            assert all(q["timeoutSeconds"] == "60" and q["allowWatchBookmarks"] == "true" for q in queries)


def test_an_error_410_answer_to_the_watch_request_relists(
    api: FakeApiServer, plane: RunningControlPlane, daemon: GatedDaemon
) -> None:
    # The client raises ApiException(410) for a watch answered 410 itself (not a 200 with an ERROR event).
    api.create_pod(make_pod("early"))
    wait_for_view(plane, "early", "Running")
    daemon.gate.clear()
    api.drop_watches("clean")
    wait_until(daemon.waiting.is_set, 5.0, 0.01, "the daemon at its gate")
    api.delete_pod(NS, "early")
    api.compact()
    original = daemon._call  # the request the gate lets through next is answered 410 by the API server's code

    def answered_410(**params: Any) -> Any:
        if params.get("watch"):
            daemon._call = original  # type: ignore[method-assign]
            raise ApiException(status=410, reason="Gone")
        return original(**params)

    daemon._call = answered_410  # type: ignore[method-assign]
    daemon.gate.set()
    view = wait_for_view(plane, "early", "Removed", reason=VANISHED)
    assert view["metadata"]["podName"] == "early"
    assert daemon.stats.expired == 1


# -- restarts and outages ---------------------------------------------------------------------------


def test_a_daemon_started_again_on_the_same_spool_resyncs_by_listing_and_misses_nothing(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    for name in ("kept", "changed", "deleted", "crashing"):
        api.create_pod(make_pod(name))
    spool = tmp_path / "spool"
    with running_daemon(api, plane.base_url, plane.daemon_key, spool) as first:
        wait_for_statuses(plane, dict.fromkeys(("kept", "changed", "deleted", "crashing"), "Running"), 10.0)
        api.patch_pod_status(NS, "crashing", waiting_reason="CrashLoopBackOff", restart_count=1)
        wait_for_view(plane, "crashing", "Restarting")
    assert first.push.stats.pending == 0

    # Nobody watches now.
    api.patch_pod_status(NS, "changed", phase="Failed", terminated_exit_code=2)
    api.delete_pod(NS, "deleted")
    api.create_pod(make_pod("created", phase="Pending"))

    with running_daemon(api, plane.base_url, plane.daemon_key, spool) as second:
        views = wait_for_statuses(
            plane,
            {"kept": "Running", "changed": "Failed", "deleted": "Removed", "created": "Starting",
             "crashing": "Restarting"},
            10.0,
        )
        assert second.stats.lists == 1
        assert second.stats.pushed == 3  # what changed; kept and crashing are as the first daemon reported them
        api.patch_pod_status(NS, "kept", ready=False)  # and it watches from its listing on
        wait_for_view(plane, "kept", "Unhealthy")
    assert views["deleted"]["metadata"]["reason"] == VANISHED
    assert views["changed"]["metadata"]["exitCode"] == "2"
    assert statuses_reported(plane, "kept") == ["Running", "Unhealthy"]
    assert statuses_reported(plane, "crashing") == ["Running", "Restarting"]


# Five transitions per pod, ending in different states; each is a valid run at the control plane.
OUTAGE_STEPS: list[list[tuple[dict[str, Any] | None, str]]] = [
    [*[(c, s) for c, s in STEPS[:4]], (None, "Removed")],
    [*[(c, s) for c, s in STEPS[:4]], ({"phase": "Running", "terminated_exit_code": None, "ready": True}, "Running")],
    [*[(c, s) for c, s in STEPS[:4]], ({"phase": "Pending", "terminated_exit_code": None}, "Starting")],
]


def test_updates_made_while_the_control_plane_is_down_are_replayed_and_none_acknowledged_is_lost(
    api: FakeApiServer, tmp_path: Path
) -> None:
    port = free_port()
    data_dir = tmp_path / "cp"
    keys = secrets.token_hex(16), secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{port}"
    names = [f"outage-{index}" for index in range(10)]
    for name in names:
        api.create_pod(make_pod(name))

    with contextlib.ExitStack() as keep_daemon:  # the daemon outlives the first control plane
        with control_plane_on(data_dir, port, *keys) as (first, first_cp):
            daemon = keep_daemon.enter_context(running_daemon(api, base_url, keys[0], tmp_path / "spool"))
            wait_for_statuses(first, dict.fromkeys(names, "Running"), timeout=10.0)
            wait_until(lambda: daemon.push.stats.pending == 0, 5.0, 0.01, "everything so far is acknowledged")
        # The first control plane is stopped (HTTP server and actors): 50 transitions while it is away.
        events_before, pushed_before = daemon.stats.events, daemon.stats.pushed
        expected: dict[str, str] = {}
        for index, name in enumerate(names):
            for changes, expected[name] in OUTAGE_STEPS[index % 3]:
                if changes is None:
                    api.delete_pod(NS, name)
                else:
                    api.patch_pod_status(NS, name, **changes)
        wait_until(lambda: daemon.stats.pushed - pushed_before >= 50, 10.0, 0.01, "the daemon pushed the 50 changes")
        during_outage = daemon.stats.pushed - pushed_before
        stats = daemon.push.stats
        assert (during_outage, daemon.stats.events - events_before) == (50, 50), daemon.stats
        assert stats.pending >= during_outage, stats  # spooled, not delivered
        assert stats.retried > 0, stats

        with control_plane_on(data_dir, port, *keys) as (second, second_cp):
            wait_until(lambda: daemon.push.stats.pending == 0, 10.0, 0.01, "the spool is replayed")
            views = wait_for_statuses(second, expected, timeout=5.0)
            final = daemon.push.stats
            accepted = first_cp.accepted, second_cp.accepted
            transitions = {name: statuses_reported(second, name) for name in names}

    assert (final.dropped_full, final.dropped_rejected, final.pending) == (0, 0, 0), final
    assert final.submitted == final.acknowledged == daemon.stats.pushed, final
    assert sum(accepted) >= final.acknowledged, (accepted, final)
    assert accepted[1] >= during_outage, (accepted, during_outage)
    for index, name in enumerate(names):
        # Every one of the five transitions reached the control plane, in order.
        assert transitions[name][-5:] == [status for _, status in OUTAGE_STEPS[index % 3]], transitions[name]
    assert views["outage-1"]["lastExitCode"] == 1


# -- a control plane that lost its state ---------------------------------------------------------------


REFILL_PODS = 40


def _refill_cluster(api: FakeApiServer) -> dict[str, str]:
    """40 pods, one of them Failed with an exit code: instance id -> the status the control plane must show."""
    expected = {}
    for index in range(REFILL_PODS):
        name = f"refill-{index}"
        if index == 7:
            api.create_pod(make_pod(name, phase="Failed", terminated_exit_code=3))
            expected[name] = "Failed"
        else:
            api.create_pod(make_pod(name, ready=index % 5 != 0))
            expected[name] = "Running" if index % 5 else "Unhealthy"
    return expected


@contextlib.contextmanager
def _replaced_control_plane(
    api: FakeApiServer, tmp_path: Path, expected: dict[str, str], **overrides: Any
) -> Iterator[tuple[GatedDaemon, RunningControlPlane]]:
    """The daemon reports ``expected`` to control plane A; A is stopped, and B (a new, empty store with its own
    storeId) is started on the same port; yields the daemon, still running, and B."""
    port = free_port()
    keys = secrets.token_hex(16), secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as keep_daemon:  # the daemon outlives control plane A
        with control_plane_on(tmp_path / "a", port, *keys) as (first, first_cp):
            daemon = keep_daemon.enter_context(
                running_daemon(api, base_url, keys[0], tmp_path / "spool", **overrides)
            )
            wait_for_statuses(first, expected, timeout=10.0)
            wait_until(lambda: daemon.push.stats.pending == 0, 5.0, 0.01, "everything is acknowledged by A")
            store_a = first_cp.store_id
        with control_plane_on(tmp_path / "b", port, *keys) as (second, second_cp):
            assert second_cp.store_id != store_a
            assert k8s_views(second) == {}
            yield daemon, second


def test_a_fresh_control_plane_at_the_same_url_gets_every_status_within_10_s_of_the_next_push(
    api: FakeApiServer, tmp_path: Path
) -> None:
    expected = _refill_cluster(api)
    with _replaced_control_plane(api, tmp_path, expected) as (daemon, second):
        pushed_before = daemon.stats.pushed
        # One change: its answer names another store, so the daemon pushes everything it knows again.
        api.patch_pod_status(NS, "refill-1", ready=False)
        expected["refill-1"] = "Unhealthy"
        views = wait_for_statuses(second, expected, timeout=10.0)
        assert daemon.stats.pushed == pushed_before + 1  # the snapshot is the outbox's, not new observations
        assert views["refill-7"]["lastExitCode"] == 3
        # Only the one snapshot: B's later answers name the store it has already seen.
        api.patch_pod_status(NS, "refill-2", ready=False)
        wait_for_view(second, "refill-2", "Unhealthy")
        assert daemon.push.stats.acknowledged <= 2 * REFILL_PODS + 2, daemon.push.stats
        assert statuses_reported(second, "refill-7") == ["Failed"]  # B took the exit once, restarting nothing


def test_a_quiet_daemon_refills_a_fresh_control_plane_within_10_s_though_nothing_changes(
    api: FakeApiServer, tmp_path: Path
) -> None:
    expected = _refill_cluster(api)
    with _replaced_control_plane(api, tmp_path, expected, store_check_interval=1.0) as (daemon, second):
        started = time.monotonic()
        # No pod changes, and no resync for 10 minutes: the store check (GET /healthz) finds B's storeId.
        views = wait_for_statuses(second, expected, timeout=10.0)
        took = time.monotonic() - started
        assert (daemon.stats.events, daemon.stats.pushed) == (0, REFILL_PODS), daemon.stats
        assert daemon.settings.resync_interval == 600.0 and took < 10.0
        assert views["refill-7"]["lastExitCode"] == 3
        assert statuses_reported(second, "refill-7") == ["Failed"]


def test_a_quiet_daemon_refills_a_fresh_control_plane_at_its_periodic_resync(
    api: FakeApiServer, tmp_path: Path
) -> None:
    expected = _refill_cluster(api)
    # The store check is off in effect (an hour): only the resync is left to find B.
    with _replaced_control_plane(api, tmp_path, expected, resync_interval=1.0, store_check_interval=3600.0) as (
        daemon, second
    ):
        # No pod changes: only the resync (DRAAS_RESYNC_INTERVAL) pushes, and B gets everything from it.
        wait_for_statuses(second, expected, timeout=10.0)
        assert (daemon.stats.events, daemon.stats.pushed) == (0, REFILL_PODS), daemon.stats


def test_a_restarted_daemon_refills_a_fresh_control_plane_though_nothing_changed(
    api: FakeApiServer, tmp_path: Path
) -> None:
    expected = _refill_cluster(api)
    port = free_port()
    keys = secrets.token_hex(16), secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{port}"
    with (
        control_plane_on(tmp_path / "a", port, *keys) as (first, _),
        running_daemon(api, base_url, keys[0], tmp_path / "spool") as daemon,
    ):
        wait_for_statuses(first, expected, timeout=10.0)
        wait_until(lambda: daemon.push.stats.pending == 0, 5.0, 0.01, "everything is acknowledged by A")
    with (
        control_plane_on(tmp_path / "b", port, *keys) as (second, _),
        running_daemon(api, base_url, keys[0], tmp_path / "spool") as again,
    ):
        wait_for_statuses(second, expected, timeout=10.0)
        assert again.stats.pushed == 0  # its listing found nothing new: the resync at start did it


# -- which pods ------------------------------------------------------------------------------------


def test_the_daemonset_variant_reports_only_the_pods_of_its_node(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    api.create_pod(make_pod("mine-1", node_name="node-1"))
    api.create_pod(make_pod("theirs-1", node_name="node-2"))
    api.create_pod(make_pod("unscheduled", phase="Pending", node_name=None))
    with running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool", node_name="node-1") as daemon:
        wait_for_view(plane, "mine-1", "Running")
        api.patch_pod_status(NS, "theirs-1", ready=False)
        api.create_pod(make_pod("theirs-2", node_name="node-2"))
        api.patch_pod_status(NS, "unscheduled", node_name="node-1", phase="Running")  # scheduled here: ADDED
        api.create_pod(make_pod("mine-2", node_name="node-1"))  # after theirs: once it is in, theirs would be
        wait_for_view(plane, "mine-2", "Running")
        wait_for_view(plane, "unscheduled", "Running", nodeName="node-1")
        assert set(k8s_views(plane)) == {"mine-1", "mine-2", "unscheduled"}
        assert daemon.stats.listed == 1
        # Its reports are its node's: the control plane never compares two nodes' clocks.
        assert {c["source"] for c in plane.changes()} == {"k8s-daemon@node-1"}
    queries = [q for _, path, q in api.requests if path.endswith("/pods")]
    assert queries and all(q.get("fieldSelector") == "spec.nodeName=node-1" for q in queries)
    assert all(q.get("labelSelector") == "app=drasi,managed-by=draas" for q in queries)


def test_one_namespace_is_watched_through_its_own_path(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    api.create_pod(make_pod("here", namespace="drasi"))
    api.create_pod(make_pod("elsewhere", namespace="other"))
    with running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool", namespace="drasi"):
        api.create_pod(make_pod("elsewhere-2", namespace="other"))
        api.create_pod(make_pod("here-2", namespace="drasi"))
        wait_for_statuses(plane, {"here": "Running", "here-2": "Running"}, 5.0)
        assert set(k8s_views(plane)) == {"here", "here-2"}
    assert {path for _, path, _ in api.requests if path.endswith("/pods")} == {"/api/v1/namespaces/drasi/pods"}


def restart_count_set_to(value: object) -> Callable[[dict[str, Any]], None]:
    """A change that gives the pod's container a restart count of any type (no API server would send a string)."""
    return lambda pod: pod["status"]["containerStatuses"][0].update(restartCount=value)


def test_pods_without_an_instance_id_or_malformed_are_counted_and_logged_once(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api.create_pod(make_pod("anonymous", instance_id=None))
    api.create_pod(make_pod("good"))
    with (
        caplog.at_level(logging.WARNING, logger="draas.k8s_daemon"),
        running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool") as daemon,
    ):
        wait_for_view(plane, "good", "Running")
        for ready in (False, True, False):
            api.patch_pod_status(NS, "anonymous", ready=ready)
        for count in ("two", "three"):
            api.update_pod(NS, "good", restart_count_set_to(count))
        api.create_pod(make_pod("witness"))
        wait_for_view(plane, "witness", "Running")
        stats = daemon.stats
    assert (stats.skipped_no_instance_id, stats.malformed) == (4, 2), stats
    assert k8s_views(plane)["good"]["status"] == "Running"  # what it said before stands
    assert "anonymous" not in k8s_views(plane)
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "default/anonymous" in m]) == 1, messages
    malformed = [m for m in messages if "default/good" in m]
    assert len(malformed) == 1, messages
    assert "status.containerStatuses[0].restartCount" in malformed[0]


def test_a_pod_replaced_by_its_controller_keeps_the_instance_without_stopping_or_removed(
    api: FakeApiServer, plane: RunningControlPlane, daemon: GatedDaemon
) -> None:
    # A Deployment's pods share the label from the pod template: the old and the new pod are the same instance.
    old = make_pod("web-5d8f-old", instance_id="web")
    old["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    api.create_pod(old)
    wait_for_view(plane, "web", "Running", podName="web-5d8f-old")

    api.create_pod(make_pod("web-5d8f-new", instance_id="web", phase="Pending"))
    wait_for_view(plane, "web", "Starting", podName="web-5d8f-new")
    api.patch_pod_status(NS, "web-5d8f-new", phase="Running")
    wait_for_view(plane, "web", "Running", podName="web-5d8f-new")
    api.delete_pod(NS, "web-5d8f-old", graceful=True)
    api.finish_deletion(NS, "web-5d8f-old")
    wait_until(lambda: daemon.stats.superseded == 1, 5.0, 0.01, "the old pod's deletion is seen")
    api.delete_pod(NS, "web-5d8f-new")
    wait_for_view(plane, "web", "Removed", podName="web-5d8f-new")

    assert statuses_reported(plane, "web") == ["Running", "Starting", "Running", "Removed"]


# -- the command ------------------------------------------------------------------------------------


def k8s_daemon_env(base_url: str, api_key: str, spool: Path, kubeconfig: Path, **extra: str) -> dict[str, str]:
    return daemon_env(
        base_url, api_key, spool,
        {"DRAAS_WATCH_TIMEOUT_SECONDS": "5", "DRAAS_SHUTDOWN_FLUSH_SECONDS": "2", "KUBECONFIG": str(kubeconfig),
         **extra},
        inherit=lambda k: k not in ("WATCH_NAMESPACE", "KUBECONFIG") and not k.startswith("KUBERNETES_"),
    )


def test_the_command_reports_pods_and_exits_0_on_sigterm_with_nothing_left_spooled(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    api.create_pod(make_pod("listed"))
    spool = tmp_path / "spool"
    log_path = tmp_path / "daemon.log"
    env = k8s_daemon_env(plane.base_url, plane.daemon_key, spool, kubeconfig)
    with daemon_process("daemons.k8s_daemon", env, log_path) as process:
        wait_for_view(plane, "listed", "Running", timeout=30.0)
        api.create_pod(make_pod("watched"))
        wait_for_view(plane, "watched", "Running")
        assert api.wait_for_watches(1, 5.0)
        assert listening_ports(process.pid) == []  # no metrics port unless DRAAS_METRICS_PORT is set

        stop_with_sigterm(process, log_path, within=5.0)
    log = log_path.read_text()
    assert "SIGTERM: stopping" in log
    assert "stopped:" in log
    assert spooled_bodies(spool) == []


@pytest.mark.parametrize(
    ("extra", "variable"),
    [({"WATCH_NAMESPACE": "Not_A_Namespace"}, "WATCH_NAMESPACE"), ({"KUBECONFIG": "/nonexistent/kubeconfig"},
                                                                    "KUBECONFIG")],
)
def test_the_command_exits_2_naming_a_bad_variable(tmp_path: Path, extra: dict[str, str], variable: str) -> None:
    env = k8s_daemon_env("http://127.0.0.1:1", "k" * 32, tmp_path / "spool", tmp_path / "kubeconfig", **extra)
    assert_command_refuses("daemons.k8s_daemon", env, variable, tmp_path / "spool")
