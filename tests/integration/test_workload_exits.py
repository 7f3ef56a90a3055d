"""Exits of containers reported by a daemon, replayed or listed again: each exit is acted on once.

The control plane runs with a Docker platform whose engine client only records what it is asked to do, so the
test controls exactly which reports arrive and in what order (the real engine is covered by the Docker tests).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from draas_actors.messages import StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.platforms.docker import DockerPlatform, DockerSettings
from draas_actors.policy import RestartPolicy
from draas_actors.records import InstanceRecord
from draas_actors.system import ControlPlane, SystemSettings
from tests.helpers import holds_for, wait_until

SOURCE = "docker-daemon"


class RecordingEngine:
    """Stands in for ``docker.DockerClient``: the low-level API's start/stop only record their container."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.stopped: list[tuple[str, int]] = []  # container, stop timeout
        self._lock = threading.Lock()
        self.api = self

    def start(self, container_id: str) -> None:
        with self._lock:
            self.started.append(container_id)

    def stop(self, container_id: str, timeout: int) -> None:
        with self._lock:
            self.stopped.append((container_id, timeout))

    def close(self) -> None:
        pass


@pytest.fixture
def engine() -> RecordingEngine:
    return RecordingEngine()


@pytest.fixture
def cp(tmp_path: Path, engine: RecordingEngine) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        SystemSettings(data_dir=tmp_path, sweep_interval=60.0),
        docker=DockerPlatform(client_factory=lambda: engine),
    )
    plane.start()
    try:
        yield plane
    finally:
        plane.stop(timeout=5.0)


def report(status: Status, observed_at: float, **metadata: Any) -> StatusReport:
    return StatusReport(
        instance_id=InstanceId("web"), status=status, source=SOURCE, observed_at=observed_at,
        metadata={"containerId": "c1", **{key: str(value) for key, value in metadata.items()}},
        platform=Platform.DOCKER,
    )


def register(cp: ControlPlane, **policy: Any) -> None:
    record = InstanceRecord(
        instance_id=InstanceId("web"), platform=Platform.DOCKER, restart_policy=RestartPolicy(**policy)
    )
    cp.register(record)


def test_a_resync_listing_an_exit_already_handled_does_not_restart_the_container_again(
    cp: ControlPlane, engine: RecordingEngine
) -> None:
    # A long second delay: were the listing taken for a new exit, a second restart would be planned and counted.
    register(cp, initial_backoff=30.0, max_backoff=60.0)
    now = time.time()
    cp.submit((report(Status.RUNNING, now),))
    cp.submit((report(Status.FAILED, now + 1, exitCode=1),))
    wait_until(lambda: engine.started == ["c1"], 5.0, 0.01, "the first exit restarts the container at once")

    # Before the engine's start event arrives, the daemon resyncs and lists the exited container again.
    cp.submit((report(Status.FAILED, now + 2, exitCode=1),))
    holds_for(lambda: engine.started == ["c1"], 0.3, 0.02, "no second start")
    record = cp.get_instance("web")
    assert record.status is Status.RESTARTING
    assert record.restart_count == 1
    assert record.next_restart_at is None  # no second restart planned
    assert record.history.series == 1


def test_an_exit_after_the_container_ran_again_is_a_new_exit(cp: ControlPlane, engine: RecordingEngine) -> None:
    register(cp, initial_backoff=0.0, max_backoff=0.0)
    now = time.time()
    cp.submit((report(Status.RUNNING, now),))
    cp.submit((report(Status.FAILED, now + 1, exitCode=1),))
    wait_until(lambda: len(engine.started) == 1, 5.0, 0.01, "the first exit restarts the container")
    cp.submit((report(Status.RUNNING, now + 2),))
    cp.submit((report(Status.FAILED, now + 3, exitCode=2),))
    wait_until(lambda: len(engine.started) == 2, 5.0, 0.01, "the second exit restarts it again")
    record = cp.get_instance("web")
    assert (record.restart_count, record.last_exit_code) == (2, 2)


@pytest.mark.parametrize(("stop_timeout", "engine_timeout"), [(None, 10), (2.5, 3), (0.0, 0)])
def test_an_operator_stop_gives_the_container_the_configured_stop_timeout(
    tmp_path: Path, engine: RecordingEngine, stop_timeout: float | None, engine_timeout: int
) -> None:
    settings = SystemSettings(data_dir=tmp_path, sweep_interval=60.0)
    if stop_timeout is not None:
        settings = dataclasses.replace(settings, docker=DockerSettings(stop_timeout=stop_timeout))
    plane = ControlPlane(settings, docker=DockerPlatform(settings.docker, client_factory=lambda: engine))
    plane.start()
    try:
        register(plane)
        plane.submit((report(Status.RUNNING, time.time()),))
        wait_until(lambda: plane.get_instance("web").status is Status.RUNNING, 5.0, 0.01, "web is running")
        plane.act("web", "stop")
        wait_until(lambda: engine.stopped, 5.0, 0.01, "the engine is asked to stop the container")
    finally:
        plane.stop(timeout=5.0)
    assert engine.stopped == [("c1", engine_timeout)]


def test_a_daemons_resync_repeating_its_last_report_changes_nothing_while_a_stop_is_under_way(
    cp: ControlPlane, engine: RecordingEngine
) -> None:
    register(cp)
    running_at = time.time()
    cp.submit((report(Status.RUNNING, running_at),))
    wait_until(lambda: cp.get_instance("web").status is Status.RUNNING, 5.0, 0.01, "web is running")
    cp.act("web", "stop")
    wait_until(lambda: engine.stopped, 5.0, 0.01, "the engine is asked to stop the container")
    before = cp.get_instance("web")

    cp.submit((report(Status.RUNNING, running_at),))  # the periodic resync: the same report, same observedAt

    holds_for(lambda: cp.get_instance("web").status is Status.STOPPING, 0.3, 0.02, "still stopping")
    after = cp.get_instance("web")
    assert (after.version, after.stale_dropped) == (before.version, before.stale_dropped)  # not even a write
