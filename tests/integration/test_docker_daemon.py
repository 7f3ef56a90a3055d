"""The Docker daemon against the real engine and a real control plane on 127.0.0.1.

The daemon runs in-process in a thread (one test runs it as ``python -m daemons.docker_daemon``). Its label filter
always includes this run's ``draas.test`` label, so containers of anything else on the engine are never seen.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
import pytest

from daemons.docker_daemon import VANISHED, DaemonSettings, DockerDaemon
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
from tests.integration.daemon_support import (
    wait_for_statuses as wait_for_platform_statuses,
)
from tests.integration.daemon_support import (
    wait_for_view as wait_for_instance_view,
)
from tests.integration.docker_fixtures import (  # noqa: F401  (fixtures)
    MANAGED_LABEL,
    RUN_LABEL,
    ContainerFactory,
    containers,
    docker_client,
    docker_run_id,
    dockerd_pidfile,
    engine_socket,
    ensure_engine,
    running_dockerd,
    skip_or_fail,
    stop_dockerd,
)

pytestmark = pytest.mark.docker

docker_views = functools.partial(platform_views, platform="docker")
wait_for_statuses = functools.partial(wait_for_platform_statuses, platform="docker")

HEALTHCHECK = {
    # The test image's rootfs has no /tmp, so the marker file lives at the root.
    "test": ["CMD", "sh", "-c", "test -f /healthy"],
    "interval": 200_000_000,
    "timeout": 2_000_000_000,
    "retries": 1,
    "start_period": 0,
}
# Doubles a string until the memory limit kills it; if limits were not enforced it would stop at 128 MiB and exit 0.
ALLOCATE = ("sh", "-c", "x=a; i=0; while [ $i -lt 27 ]; do x=$x$x; i=$((i+1)); done; exit 0")


# -- helpers ----------------------------------------------------------------------------------------


def labels_for(run_id: str, *extra: str) -> tuple[str, ...]:
    return (f"{MANAGED_LABEL}=true", f"{RUN_LABEL}={run_id}", *extra)


@contextlib.contextmanager
def running_daemon(
    base_url: str,
    api_key: str,
    spool_path: Path,
    label_filter: Sequence[str],
    *,
    client_factory: Callable[[DaemonSettings], docker.DockerClient] | None = None,
) -> Iterator[DockerDaemon]:
    """A DockerDaemon in a thread with quick retries, streaming when this yields; stopped (and checked) after."""
    settings = DaemonSettings(
        control_plane_url=base_url,
        api_key=api_key,
        label_filter=tuple(label_filter),
        spool_path=spool_path,
        reconnect_initial=0.05,
        reconnect_max=0.5,
        shutdown_flush=2.0,
    )
    kwargs: dict[str, Any] = {} if client_factory is None else {"client_factory": client_factory}
    daemon = DockerDaemon(settings, push=quick_push_client(base_url, api_key, spool_path), **kwargs)
    with running_in_thread(daemon, "test-docker-daemon", daemon.streaming, "the daemon streams events") as running:
        yield running


@pytest.fixture
def daemon(
    plane: RunningControlPlane, tmp_path: Path, docker_run_id: str, containers: ContainerFactory
) -> Iterator[DockerDaemon]:
    # Depends on ``containers`` so that it stops before the test's containers are removed.
    with running_daemon(plane.base_url, plane.daemon_key, tmp_path / "spool", labels_for(docker_run_id)) as running:
        yield running


def view_of(plane: RunningControlPlane, instance_id: str) -> dict[str, Any] | None:
    response = plane.get(f"/api/instances/{instance_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def wait_for_view(
    plane: RunningControlPlane, instance_id: str, status: str, timeout: float = 5.0, **metadata: str | None
) -> dict[str, Any]:
    """Poll until the instance has ``status`` and these metadata values (strings, as the control plane keeps them).

    A value may be typed ``str | None`` (docker's ``Container.id``), but must be there."""
    present = {key: value for key, value in metadata.items() if value is not None}
    assert len(present) == len(metadata), f"metadata without a value: {metadata}"
    return wait_for_instance_view(lambda iid: view_of(plane, iid), instance_id, status, timeout, present)


def last_change(plane: RunningControlPlane, instance_id: str) -> dict[str, Any]:
    changes = plane.changes(instance_id)
    assert changes, f"no change for {instance_id}"
    return changes[-1]


def statuses_reported(plane: RunningControlPlane, instance_id: str) -> list[str]:
    return [new for _, new in plane.transitions(instance_id)]


def is_running(container: Any) -> bool:
    container.reload()
    return bool(container.attrs["State"]["Running"])


# -- events -----------------------------------------------------------------------------------------


def test_each_mapped_event_reaches_the_control_plane_with_its_status_and_metadata(
    plane: RunningControlPlane, containers: ContainerFactory, daemon: DockerDaemon
) -> None:
    # create -> Pending; start -> Running
    iid = containers.instance_id("plain")
    plain = containers.create(iid)
    view = wait_for_view(plane, iid, "Pending", eventAction="create")
    assert view["platform"] == "docker"
    assert view["metadata"]["containerId"] == plain.id
    assert view["metadata"]["imageName"] == "draas-test-busybox:latest"
    plain.start()
    wait_for_view(plane, iid, "Running", eventAction="start")

    # pause -> Stopped (paused); unpause -> Running
    plain.pause()
    view = wait_for_view(plane, iid, "Stopped", eventAction="pause", reason="paused")
    assert view["lastReason"] == "paused"
    plain.unpause()
    wait_for_view(plane, iid, "Running", eventAction="unpause")

    # restart -> Running (after the kill, die and start it is made of)
    plain.restart(timeout=5)
    wait_for_view(plane, iid, "Running", eventAction="restart")

    # kill -> Failed with the signal as the reason; then die 137 keeps it Failed with the exit code
    plain.kill()
    view = wait_for_view(plane, iid, "Failed", eventAction="die", exitCode="137")
    assert view["metadata"]["reason"] == "exited with code 137"
    change = last_change(plane, iid)
    assert (change["oldStatus"], change["newStatus"]) == ("Running", "Failed")
    assert change["metadata"]["eventAction"] == "kill"
    assert change["metadata"]["reason"] == "killed by signal 9"

    # die with exit code 0 -> Stopped
    plain.start()
    wait_for_view(plane, iid, "Running", eventAction="start")
    plain.stop(timeout=5)
    wait_for_view(plane, iid, "Stopped", eventAction="die", exitCode="0")

    # destroy -> Removed
    plain.remove()
    wait_for_view(plane, iid, "Removed", eventAction="destroy", containerId=plain.id)

    # die with a non-zero exit code -> Failed
    failing = containers.instance_id("exit3")
    containers.exited(failing, 3)
    view = wait_for_view(plane, failing, "Failed", eventAction="die", exitCode="3")
    assert view["lastReason"] == "exited with code 3"


def test_removing_the_old_container_of_a_recreated_instance_does_not_mark_it_removed(
    plane: RunningControlPlane, containers: ContainerFactory, daemon: DockerDaemon
) -> None:
    iid = containers.instance_id("recreated")
    old = containers.run(iid)
    wait_for_view(plane, iid, "Running", containerId=old.id)
    # docker compose's recreate: stop the old one, create and start the new one, then remove the old one.
    old.stop(timeout=5)
    wait_for_view(plane, iid, "Stopped", containerId=old.id)
    new = containers.run(iid)
    wait_for_view(plane, iid, "Running", containerId=new.id)

    old.remove()
    wait_until(lambda: daemon.stats.superseded == 1, 5.0, 0.01, "the old container's destroy is seen")
    view = view_of(plane, iid)
    assert view is not None and view["status"] == "Running"

    new.remove(force=True)
    wait_for_view(plane, iid, "Removed", containerId=new.id)


def test_health_status_events_make_the_instance_unhealthy_and_running_again(
    plane: RunningControlPlane, containers: ContainerFactory, daemon: DockerDaemon
) -> None:
    iid = containers.instance_id("health")
    checked = containers.run(iid, healthcheck=HEALTHCHECK)

    # The first probe fails (no marker file yet): unhealthy after start.
    view = wait_for_view(plane, iid, "Unhealthy", eventAction="health_status: unhealthy")
    assert view["metadata"]["reason"] == "health check failing"
    assert ("Running", "Unhealthy") in plane.transitions(iid)
    result = checked.exec_run(["sh", "-c", "echo ok > /healthy"])
    assert result.exit_code == 0, result.output

    view = wait_for_view(plane, iid, "Running", eventAction="health_status: healthy")
    assert view["metadata"]["reason"] == "health check passing"
    assert plane.transitions(iid)[-1] == ("Unhealthy", "Running")


def test_an_out_of_memory_kill_is_reported_failed_with_the_oom_reason(
    plane: RunningControlPlane, containers: ContainerFactory, daemon: DockerDaemon
) -> None:
    iid = containers.instance_id("oom")
    hungry = containers.run(iid, command=ALLOCATE, mem_limit="6m", memswap_limit="6m")
    result = hungry.wait(timeout=30)
    hungry.reload()
    assert hungry.attrs["State"]["OOMKilled"], f"the memory limit was not enforced here: {result}"

    view = wait_for_view(plane, iid, "Failed", exitCode="137")
    # The engine sends oom then die; whichever moved the status, the oom report reached the control plane.
    seen = [c["metadata"] for c in plane.changes(iid) if c["newStatus"] == "Failed"] + [view["metadata"]]
    assert any(m.get("eventAction") == "oom" and m.get("reason") == "out of memory (OOM)" for m in seen), seen


def test_unlabelled_containers_are_ignored_and_the_label_filter_is_configurable(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    unmanaged = containers.instance_id("unmanaged")
    other_team = containers.instance_id("team-b")
    wanted = containers.instance_id("team-a")
    label_filter = labels_for(docker_run_id, "team=a")
    with running_daemon(plane.base_url, plane.daemon_key, tmp_path / "spool", label_filter) as daemon:
        containers.run(unmanaged, managed=False, labels={"team": "a"})
        containers.run(other_team, labels={"team": "b"})
        containers.run(None, labels={"team": "a"})  # matches the filter but has no draas.instanceId
        containers.run(wanted, labels={"team": "a"})
        wait_for_view(plane, wanted, "Running", eventAction="start")

        # The engine's events come in order on one stream: by the time "wanted" started, the others were seen.
        assert set(docker_views(plane)) == {wanted}
        stats = daemon.stats
        assert stats.skipped_no_instance_id == 1  # one container, however many of its events came
        assert stats.pushed == 2  # wanted's create and start, nothing else


# -- resync -----------------------------------------------------------------------------------------


def test_a_starting_daemon_reports_twenty_existing_containers_and_misses_no_change_made_meanwhile(
    plane: RunningControlPlane,
    containers: ContainerFactory,
    docker_client: docker.DockerClient,
    tmp_path: Path,
    docker_run_id: str,
) -> None:
    groups: dict[str, list[tuple[str, Any]]] = {k: [] for k in ("running", "exit0", "exit1", "created", "paused")}
    for _ in range(4):
        groups["running"].append(((iid := containers.instance_id("running")), containers.run(iid)))
        groups["exit0"].append(((iid := containers.instance_id("exit0")), containers.exited(iid, 0)))
        groups["exit1"].append(((iid := containers.instance_id("exit1")), containers.exited(iid, 1)))
        groups["created"].append(((iid := containers.instance_id("created")), containers.create(iid)))
        paused = containers.run(iid := containers.instance_id("paused"))
        paused.pause()
        groups["paused"].append((iid, paused))
    wanted = {"running": "Running", "exit0": "Stopped", "exit1": "Failed", "created": "Pending", "paused": "Stopped"}
    expected = {iid: wanted[group] for group, members in groups.items() for iid, _ in members}
    newcomer = containers.instance_id("newcomer")
    changed: list[str] = []

    def change_things() -> None:
        # Between the listing and the opening of the event stream: the window "since" has to cover.
        groups["running"][0][1].stop(timeout=5)
        groups["created"][0][1].start()
        groups["exit0"][0][1].remove()
        groups["paused"][0][1].unpause()
        containers.run(newcomer)
        changed.append("done")

    def client_factory(settings: DaemonSettings) -> docker.DockerClient:
        client = docker.from_env(timeout=30)
        listing = client.api.containers

        def listing_then_change(*args: Any, **kwargs: Any) -> Any:
            rows = listing(*args, **kwargs)
            if not changed:
                change_things()
            return rows

        client.api.containers = listing_then_change  # type: ignore[method-assign]  # one patched listing
        return client

    with running_daemon(
        plane.base_url, plane.daemon_key, tmp_path / "spool", labels_for(docker_run_id), client_factory=client_factory
    ) as daemon:
        assert changed == ["done"]
        assert (daemon.stats.resyncs, daemon.stats.listed) == (1, 20)
        expected.update(
            {
                groups["running"][0][0]: "Stopped",
                groups["created"][0][0]: "Running",
                groups["exit0"][0][0]: "Removed",
                groups["paused"][0][0]: "Running",
                newcomer: "Running",
            }
        )
        views = wait_for_statuses(plane, expected, timeout=10.0)

    for iid, _ in groups["paused"][1:]:
        assert views[iid]["metadata"]["reason"] == "paused"
    for iid, _ in groups["exit1"]:
        assert views[iid]["metadata"]["exitCode"] == "1"
    assert views[groups["exit0"][1][0]]["metadata"]["exitCode"] == "0"
    assert len(views) == 21


def test_a_container_removed_while_nobody_streams_is_reported_removed_at_the_next_resync(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    kept, gone = containers.instance_id("kept"), containers.instance_id("gone")
    containers.run(kept)
    doomed = containers.run(gone)
    settings = DaemonSettings(
        control_plane_url=plane.base_url,
        api_key=plane.daemon_key,
        label_filter=labels_for(docker_run_id),
        spool_path=tmp_path / "spool",
    )
    daemon = DockerDaemon(settings)
    daemon.push.start()
    try:
        daemon.resync()
        wait_for_statuses(plane, {kept: "Running", gone: "Running"}, timeout=5.0)
        doomed.remove(force=True)  # no stream is open: only the next listing can tell

        daemon.resync()

        views = wait_for_statuses(plane, {kept: "Running", gone: "Removed"}, timeout=5.0)
        assert views[gone]["metadata"]["containerId"] == doomed.id
        assert views[gone]["metadata"]["reason"] == "container no longer exists (found at resync)"
        assert daemon.stats.vanished == 1
    finally:
        daemon.push.close(timeout=2.0)


def test_a_listing_reports_an_instance_with_two_containers_by_its_newest(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    iid = containers.instance_id("recreating")
    old = containers.run(iid)
    old.stop(timeout=5)
    new = containers.run(iid)  # a recreate caught half-way: the old container is not removed yet

    with running_daemon(plane.base_url, plane.daemon_key, tmp_path / "spool", labels_for(docker_run_id)) as daemon:
        assert (daemon.stats.listed, daemon.stats.pushed) == (2, 1)
        wait_for_view(plane, iid, "Running", containerId=new.id)
        old.remove()
        wait_until(lambda: daemon.stats.superseded == 1, 5.0, 0.01, "the old container's destroy is seen")
    assert statuses_reported(plane, iid) == ["Running"]


# -- restarts of the daemon -------------------------------------------------------------------------


def test_a_daemon_started_again_on_the_same_spool_reports_what_changed_and_removed_for_what_went(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    ids = {name: containers.instance_id(name) for name in ("removed", "stopped", "kept", "moved")}
    spool, label_filter = tmp_path / "spool", labels_for(docker_run_id)
    doomed = containers.run(ids["removed"])  # reported from the first listing
    with running_daemon(plane.base_url, plane.daemon_key, spool, label_filter) as first:
        halted = containers.run(ids["stopped"])  # the others from their events
        containers.run(ids["kept"])
        old = containers.run(ids["moved"])
        wait_for_statuses(plane, dict.fromkeys(ids.values(), "Running"), timeout=10.0)
    assert first.push.stats.pending == 0
    before = {iid: statuses_reported(plane, iid) for iid in ids.values()}

    # Nobody streams now.
    doomed.remove(force=True)
    halted.stop(timeout=5)
    old.remove(force=True)
    new = containers.run(ids["moved"])  # the instance moved to another container

    with running_daemon(plane.base_url, plane.daemon_key, spool, label_filter) as second:
        stats = second.stats
        assert (stats.resyncs, stats.vanished, stats.unchanged, stats.pushed) == (1, 1, 1, 3), stats
        wait_for_view(plane, ids["moved"], "Running", containerId=new.id, containerState="running")
        views = wait_for_statuses(
            plane,
            {ids["removed"]: "Removed", ids["stopped"]: "Stopped", ids["kept"]: "Running", ids["moved"]: "Running"},
            timeout=10.0,
        )
    assert views[ids["removed"]]["metadata"]["containerId"] == doomed.id
    assert views[ids["removed"]]["metadata"]["reason"] == VANISHED
    assert views[ids["stopped"]]["metadata"]["exitCode"] == "0"
    assert statuses_reported(plane, ids["removed"]) == before[ids["removed"]] + ["Removed"]
    assert statuses_reported(plane, ids["stopped"]) == before[ids["stopped"]] + ["Stopped"]
    assert statuses_reported(plane, ids["kept"]) == before[ids["kept"]]
    assert statuses_reported(plane, ids["moved"]) == before[ids["moved"]]  # never Removed on its way


def test_a_daemon_started_again_with_nothing_changed_pushes_nothing_and_streams_from_its_listing(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    # Reported the first time from the listing, or from events (whose metadata differs from the listing's).
    listed, listed_failed = containers.instance_id("listed"), containers.instance_id("listed-failed")
    streamed, streamed_failed = containers.instance_id("streamed"), containers.instance_id("streamed-failed")
    paused = containers.instance_id("paused")
    spool, label_filter = tmp_path / "spool", labels_for(docker_run_id)
    running = containers.run(listed)
    containers.exited(listed_failed, 1)
    with running_daemon(plane.base_url, plane.daemon_key, spool, label_filter) as first:
        containers.run(streamed)
        containers.exited(streamed_failed, 2)
        containers.run(paused).pause()
        wait_for_view(plane, paused, "Stopped", eventAction="pause")
        wait_for_view(plane, streamed_failed, "Failed", eventAction="die", exitCode="2")
        wait_for_statuses(plane, {listed: "Running", listed_failed: "Failed", streamed: "Running"}, timeout=10.0)
    assert first.push.stats.pending == 0
    changes = plane.changes()

    with running_daemon(plane.base_url, plane.daemon_key, spool, label_filter) as second:
        stats = second.stats
        assert (stats.listed, stats.unchanged, stats.vanished, stats.pushed) == (5, 5, 0, 0), stats
        assert second.push.stats.submitted == 0
        running.stop(timeout=5)  # and it streams from its listing on
        wait_for_view(plane, listed, "Stopped", eventAction="die", exitCode="0")
    # Not an exit replayed as a new one, not a Running that moves nothing: the control plane heard nothing else.
    assert plane.changes()[: len(changes)] == changes
    after = plane.changes()[len(changes):]  # the stop's kill (Failed) and die (Stopped), from the stream
    assert {c["instanceId"] for c in after} == {listed} and after[-1]["newStatus"] == "Stopped", after


# -- the engine goes away ---------------------------------------------------------------------------


def test_a_daemon_started_while_the_engine_is_unreachable_keeps_trying_and_reports_once_it_is_there(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    iid = containers.instance_id("patient")
    containers.run(iid)
    attempts: list[str] = []

    def client_factory(settings: DaemonSettings) -> docker.DockerClient:
        attempts.append("attempt")
        if len(attempts) <= 3:  # a socket nobody listens on: what a stopped engine looks like
            return docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", timeout=2)
        return docker.from_env(timeout=30)

    with running_daemon(
        plane.base_url, plane.daemon_key, tmp_path / "spool", labels_for(docker_run_id), client_factory=client_factory
    ) as daemon:
        wait_for_view(plane, iid, "Running", containerState="running")
        assert daemon.stats.engine_errors == 3
        assert daemon.stats.resyncs == 1


def test_the_daemon_reconnects_after_an_engine_restart_and_ends_with_the_true_state(
    plane: RunningControlPlane,
    containers: ContainerFactory,
    docker_client: docker.DockerClient,
    daemon: DockerDaemon,
) -> None:
    dockerd = running_dockerd()
    if dockerd is None:
        skip_or_fail(
            f"no running dockerd found behind {engine_socket()} nor in {dockerd_pidfile()} (DRAAS_DOCKERD_PIDFILE) "
            "or /var/run/docker.pid"
        )
    ids = {name: containers.instance_id(name) for name in "abdefgh"}
    containers.run(ids["a"])  # stopped by the engine's shutdown: exits 0 on SIGTERM
    containers.run(ids["b"], restart_policy={"Name": "always"})  # started again by the engine
    containers.run(ids["d"], auto_remove=True)  # removed when it stops, while the daemon is cut off
    created = containers.create(ids["e"])  # started right after the engine is back
    stopped_before = containers.run(ids["f"])  # stopped just before the engine goes
    containers.exited(ids["g"], 1)
    killed_after = containers.run(ids["h"], restart_policy={"Name": "always"})  # killed once the engine is back
    wait_for_statuses(plane, {**{i: "Running" for i in ids.values()}, ids["e"]: "Pending", ids["g"]: "Failed"}, 10)
    resyncs = daemon.stats.resyncs

    try:
        stopped_before.stop(timeout=5)
        stop_dockerd(dockerd)
        wait_until(lambda: not daemon.streaming.is_set(), 5.0, 0.01, "the daemon sees the stream end")
        ensure_engine(docker_client)
        created.start()
        wait_until(lambda: is_running(killed_after), 10.0, 0.05, "the engine restarts the 'always' container")
        killed_after.kill()  # SIGKILL by hand: the restart policy leaves it dead
    finally:
        ensure_engine(docker_client)  # whatever happened, the engine runs again for everyone after us

    expected = {
        ids["a"]: "Stopped",
        ids["b"]: "Running",
        ids["d"]: "Removed",
        ids["e"]: "Running",
        ids["f"]: "Stopped",
        ids["g"]: "Failed",
        ids["h"]: "Failed",
    }
    views = wait_for_statuses(plane, expected, timeout=15.0)
    assert views[ids["h"]]["metadata"]["exitCode"] == "137"
    assert daemon.stats.resyncs > resyncs
    assert daemon.stats.engine_errors + daemon.stats.reconnects >= 1


# -- the control plane goes away --------------------------------------------------------------------


def outage_transitions(index: int, container: Any) -> tuple[list[Callable[[], Any]], int, str]:
    """Five state changes for one container: (the changes, the engine events they cause, the final status)."""
    final: list[tuple[Callable[[], Any], int, str]] = [
        (container.pause, 1, "Stopped"),
        (container.kill, 2, "Failed"),  # kill, die
        (lambda: container.restart(timeout=5), 5, "Running"),  # kill, die, stop, start, restart
    ]
    last, last_events, status = final[index % 3]
    # pause, unpause, kill (kill + die), start: 5 events
    return [container.pause, container.unpause, container.kill, container.start, last], 5 + last_events, status


def test_updates_made_while_the_control_plane_is_down_are_replayed_and_none_acknowledged_is_lost(
    containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    port = free_port()
    data_dir = tmp_path / "cp"
    keys = secrets.token_hex(16), secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{port}"
    ids = [containers.instance_id("outage") for _ in range(10)]
    witnesses = {containers.instance_id("witness-up"): "Running", containers.instance_id("witness-failed"): "Failed"}

    with contextlib.ExitStack() as keep_daemon:  # the daemon outlives the first control plane
        with control_plane_on(data_dir, port, *keys) as (first, first_cp):
            daemon = keep_daemon.enter_context(
                running_daemon(base_url, keys[0], tmp_path / "spool", labels_for(docker_run_id))
            )
            handles = [containers.run(iid) for iid in ids]
            up, failed = list(witnesses)
            containers.run(up)
            containers.exited(failed, 1)
            wait_for_statuses(first, {**{iid: "Running" for iid in ids}, **witnesses}, timeout=10.0)
            wait_until(lambda: daemon.push.stats.pending == 0, 5.0, 0.01, "everything so far is acknowledged")
        # The first control plane is stopped (HTTP server and actors): 50 transitions while it is away.
        events_before, pushed_before = daemon.stats.events, daemon.stats.pushed
        expected: dict[str, str] = dict(witnesses)
        expected_events = 0
        for index, (iid, handle) in enumerate(zip(ids, handles, strict=True)):
            changes, events, expected[iid] = outage_transitions(index, handle)
            for change in changes:
                change()
            expected_events += events
        wait_until(
            lambda: daemon.stats.events - events_before >= expected_events, 10.0, 0.01,
            f"the daemon saw the {expected_events} events of the 50 transitions",
        )
        during_outage = daemon.stats.pushed - pushed_before
        stats = daemon.push.stats
        assert stats.pending >= during_outage > 0, stats  # spooled, not delivered
        assert stats.retried > 0, stats

        with control_plane_on(data_dir, port, *keys) as (second, second_cp):
            wait_until(lambda: daemon.push.stats.pending == 0, 10.0, 0.01, "the spool is replayed")
            views = wait_for_statuses(second, expected, timeout=5.0)
            final = daemon.push.stats
            accepted = first_cp.accepted, second_cp.accepted

    assert (final.dropped_full, final.dropped_rejected, final.pending) == (0, 0, 0), final
    assert final.submitted == final.acknowledged == daemon.stats.pushed, final
    # Every acknowledged update was accepted by a control plane (more only if a reply was lost and it was resent),
    # and everything made during the outage went to the second one.
    assert sum(accepted) >= final.acknowledged, (accepted, final)
    assert accepted[1] >= during_outage, (accepted, during_outage)
    for index, iid in enumerate(ids):
        if index % 3 == 0:
            assert views[iid]["metadata"]["reason"] == "paused"
        elif index % 3 == 1:
            assert views[iid]["metadata"]["exitCode"] == "137"
        else:
            assert views[iid]["metadata"]["eventAction"] == "restart"


# -- the command ------------------------------------------------------------------------------------


def docker_daemon_env(base_url: str, api_key: str, spool: Path, run_id: str, **extra: str) -> dict[str, str]:
    return daemon_env(base_url, api_key, spool, {"DRAAS_LABEL_FILTER": ",".join(labels_for(run_id)), **extra})


def test_the_command_reports_containers_and_exits_0_on_sigterm_with_nothing_left_spooled(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    listed, streamed = containers.instance_id("listed"), containers.instance_id("streamed")
    containers.run(listed)
    spool = tmp_path / "spool"
    log_path = tmp_path / "daemon.log"
    env = docker_daemon_env(plane.base_url, plane.daemon_key, spool, docker_run_id)
    with daemon_process("daemons.docker_daemon", env, log_path) as process:
        wait_for_view(plane, listed, "Running", timeout=10.0, containerState="running")
        containers.run(streamed)
        wait_for_view(plane, streamed, "Running", eventAction="start")
        assert listening_ports(process.pid) == []  # no metrics port unless DRAAS_METRICS_PORT is set

        stop_with_sigterm(process, log_path, within=5.0)
    log = log_path.read_text()
    assert "SIGTERM: stopping" in log
    assert "stopped:" in log
    assert spooled_bodies(spool) == []


def test_the_command_bounds_its_final_flush_when_the_control_plane_is_unreachable(
    containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    iid = containers.instance_id("undelivered")
    containers.run(iid)
    spool = tmp_path / "spool"
    log_path = tmp_path / "daemon.log"
    env = docker_daemon_env(
        f"http://127.0.0.1:{free_port()}", "k" * 32, spool, docker_run_id, DRAAS_SHUTDOWN_FLUSH_SECONDS="1"
    )
    with daemon_process("daemons.docker_daemon", env, log_path) as process:
        wait_until(lambda: "resync: 1 labelled" in log_path.read_text(), 10.0, 0.02, "the daemon listed")
        stop_with_sigterm(process, log_path, within=4.0)
    assert "not yet delivered" in log_path.read_text()
    assert [iid in body for body in spooled_bodies(spool)] == [True]


def test_the_command_exits_2_naming_a_bad_variable(tmp_path: Path) -> None:
    env = docker_daemon_env("http://127.0.0.1:1", "k" * 32, tmp_path / "spool", "x", DRAAS_LABEL_FILTER="a=b,,c")
    assert_command_refuses("daemons.docker_daemon", env, "DRAAS_LABEL_FILTER", tmp_path / "spool")
