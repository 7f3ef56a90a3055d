"""What ``lastReason`` says once an instance runs: why it last stopped, never why it had not started yet."""

from __future__ import annotations

from typing import Any

from tests.helpers import RunningControlPlane


def push(plane: RunningControlPlane, instance_id: str, status: str, second: int, **metadata: str) -> None:
    response = plane.push({
        "instanceId": instance_id, "status": status, "source": "DockerDaemon", "platform": "docker",
        "metadata": {"containerId": "c0ffee", **metadata}, "observedAt": f"2026-01-01T12:00:{second:02d}Z",
    })
    assert response.status_code == 202, response.text


def settled(plane: RunningControlPlane, instance_id: str, status: str) -> dict[str, Any]:
    return plane.wait_for(instance_id, lambda view: view["status"] == status, message=f"{instance_id} is {status}")


def test_a_container_that_was_created_then_started_does_not_say_created_while_running(
    plane: RunningControlPlane,
) -> None:
    push(plane, "fresh", "Pending", 1, eventAction="create", reason="created")
    assert settled(plane, "fresh", "Pending")["lastReason"] == "created"
    push(plane, "fresh", "Running", 2, eventAction="start")
    assert settled(plane, "fresh", "Running")["lastReason"] is None


def test_a_running_instance_still_says_why_it_last_stopped(plane: RunningControlPlane) -> None:
    push(plane, "again", "Running", 1, eventAction="start")
    push(plane, "again", "Failed", 2, eventAction="die", exitCode="1", reason="exited with code 1")
    assert settled(plane, "again", "Failed")["lastReason"] == "exited with code 1"
    push(plane, "again", "Running", 3, eventAction="start")
    assert settled(plane, "again", "Running")["lastReason"] == "exited with code 1"
