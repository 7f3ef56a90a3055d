"""Restart policies and operator actions for Docker instances, through the real engine and the real daemon."""

from __future__ import annotations

from typing import Any

import pytest

from daemons.docker_daemon import DockerDaemon
from tests.helpers import RunningControlPlane, holds_for, wait_until
from tests.integration.docker_fixtures import (  # noqa: F401  (fixtures)
    ContainerFactory,
    containers,
    docker_client,
    docker_run_id,
)
from tests.integration.test_docker_daemon import daemon, view_of, wait_for_view  # noqa: F401  (fixture)

pytestmark = pytest.mark.docker


def register_docker(plane: RunningControlPlane, instance_id: str, **policy: Any) -> None:
    plane.register({"instanceId": instance_id, "platform": "docker", "restartPolicy": policy})


def container_status(container: Any) -> str:
    container.reload()
    return str(container.status)


def test_a_killed_container_with_an_on_failure_policy_is_restarted_through_the_engine(
    plane: RunningControlPlane, daemon: DockerDaemon, containers: ContainerFactory
) -> None:
    instance_id = containers.instance_id("onfail")
    register_docker(plane, instance_id, mode="on-failure", maxRestarts=5, window=60)
    container = containers.run(instance_id)
    wait_for_view(plane, instance_id, "Running", eventAction="start")

    container.kill()  # SIGKILL: the engine reports kill, then die with exit code 137

    view = wait_until(
        lambda: (v := view_of(plane, instance_id)) and v["restartCount"] == 1 and v["status"] == "Running" and v,
        timeout=10,
        message="the control plane restarted the container and the daemon saw it running",
    )
    assert view["lastExitCode"] == 137
    assert "137" in view["lastReason"]
    assert view["nextRestartAt"] is None
    assert container_status(container) == "running"
    transitions = plane.transitions(instance_id)
    assert ("Failed", "Restarting") in transitions
    assert transitions[-1] == ("Restarting", "Running")


def test_an_operator_stop_of_a_container_is_not_undone_and_start_and_restart_work(
    plane: RunningControlPlane, daemon: DockerDaemon, containers: ContainerFactory
) -> None:
    instance_id = containers.instance_id("operator")
    register_docker(plane, instance_id, mode="always")
    container = containers.run(instance_id)
    wait_for_view(plane, instance_id, "Running", eventAction="start")

    assert plane.post(f"/api/instances/{instance_id}/stop").status_code == 202
    view = wait_for_view(plane, instance_id, "Stopped", timeout=15)
    assert view["operatorStopped"] is True
    assert view["lastReason"] == "stopped by operator"
    holds_for(lambda: container_status(container) == "exited", 1.0, message="the stopped container stays stopped")
    assert view_of(plane, instance_id)["status"] == "Stopped"  # type: ignore[index]

    assert plane.post(f"/api/instances/{instance_id}/start").status_code == 202
    wait_for_view(plane, instance_id, "Running", timeout=10)
    assert container_status(container) == "running"

    assert plane.post(f"/api/instances/{instance_id}/restart").status_code == 202
    view = wait_until(
        lambda: (v := view_of(plane, instance_id)) and v["restartCount"] == 1 and v["status"] == "Running" and v,
        timeout=15,
        message="the operator restart went through the engine",
    )
    assert container_status(container) == "running"


def test_a_container_reported_by_a_daemon_only_is_observed_and_never_restarted(
    plane: RunningControlPlane, daemon: DockerDaemon, containers: ContainerFactory
) -> None:
    instance_id = containers.instance_id("observed")
    container = containers.run(instance_id)
    view = wait_for_view(plane, instance_id, "Running", eventAction="start")
    assert view["restartPolicy"]["mode"] == "never"

    container.kill()

    view = wait_for_view(plane, instance_id, "Failed", exitCode="137")
    holds_for(lambda: container_status(container) == "exited", 1.0, message="nobody restarts the container")
    assert view_of(plane, instance_id)["restartCount"] == 0  # type: ignore[index]
