"""The push endpoint over real HTTP: a bad push is refused with a 4xx naming the field and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import ProcessJanitor, RunningControlPlane, running_control_plane, wait_until

GOOD = {"instanceId": "web-1", "status": "Stopped", "source": "DockerDaemon"}

BAD_PUSHES: dict[str, tuple[dict[str, str], bytes, int, str | None]] = {
    # name: (headers beyond Content-Type, body, expected status, expected field)
    "malformed JSON": ({}, b'{"instanceId": "web-1", "status": "Stopped",', 400, "body"),
    "missing instanceId": ({}, json.dumps({"status": "Stopped", "source": "DockerDaemon"}).encode(), 400, "instanceId"),
    "blank source": ({}, json.dumps({**GOOD, "source": "  "}).encode(), 400, "source"),
    "unknown status": ({}, json.dumps({**GOOD, "status": "Sleeping"}).encode(), 422, "status"),
    "metadata not an object": ({}, json.dumps({**GOOD, "metadata": ["x"]}).encode(), 422, "metadata"),
    "observedAt not a time": ({}, json.dumps({**GOOD, "observedAt": "yesterday"}).encode(), 422, "observedAt"),
    "wrong key": ({"X-API-Key": "not-the-daemon-key"}, json.dumps(GOOD).encode(), 401, None),
    "no key": ({"X-API-Key": ""}, json.dumps(GOOD).encode(), 401, None),
}


def snapshot(plane: RunningControlPlane) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    # GET /api/instances/{id} asks the instance actor itself, after anything told to it before.
    return plane.instance("web-1"), plane.changes()


@pytest.mark.parametrize("case", list(BAD_PUSHES), ids=list(BAD_PUSHES))
def test_a_bad_push_gets_a_4xx_naming_the_field_and_changes_nothing(plane: RunningControlPlane, case: str) -> None:
    assert plane.push({**GOOD, "status": "Running"}).status_code == 202
    plane.wait_for_changes(1)
    before = snapshot(plane)
    assert before[0]["status"] == "Running"
    extra_headers, body, expected_status, expected_field = BAD_PUSHES[case]
    headers = {**plane.daemon_headers, "Content-Type": "application/json", **extra_headers}

    response = requests.post(plane.base_url + "/api/status/updates", data=body, headers=headers, timeout=5)

    assert response.status_code == expected_status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()
    assert set(error) == {"error", "detail", "field"}
    assert error["field"] == expected_field
    assert snapshot(plane) == before

    # The same instance does take a good push: the unchanged snapshot above was not for want of trying.
    assert plane.push(GOOD).status_code == 202
    feed = plane.wait_for_changes(2)
    assert plane.instance("web-1")["status"] == "Stopped"
    assert (feed[-1]["oldStatus"], feed[-1]["newStatus"]) == ("Running", "Stopped")


def test_a_client_written_for_the_upstream_csharp_api_works_unchanged(plane: RunningControlPlane) -> None:
    """Bytes as Newtonsoft.Json writes upstream's StatusUpdateRequest (PascalCase, the enum as its integer, a null
    Metadata), to the paths as the C# client spells them (ASP.NET routes match in any case)."""
    headers = {**plane.daemon_headers, "Content-Type": "application/json; charset=utf-8"}

    def post(body: bytes) -> requests.Response:
        return requests.post(plane.base_url + "/api/Status/updates", data=body, headers=headers, timeout=5)

    running = post(b'{"InstanceId":"web-1","Status":1,"Source":"DockerDaemon","Metadata":null}')
    assert running.status_code == 202, running.text
    assert running.json()["instanceId"] == "web-1"
    configured = post(b'{"InstanceId":"web-1","Status":4,"Source":"DockerDaemon","Metadata":{"Version":"2"},'
                      b'"TraceId":"abc"}')
    assert configured.status_code == 202, configured.text
    assert configured.json()["warnings"] == ["unknown property 'TraceId' ignored"]
    plane.wait_for_changes(2)

    # A daemon's health check and synchronisation read (upstream's GetInstanceStatus), with the daemon's key.
    status = requests.get(plane.base_url + "/api/Status/web-1/status", headers=plane.daemon_headers, timeout=5)
    assert status.status_code == 200, status.text
    assert (status.json()["instanceId"], status.json()["status"]) == ("web-1", "Running")
    assert status.json()["startedAt"] is not None and status.json()["stoppedAt"] is None

    recent = plane.get("/API/STATUS/recent-changes", params={"statusFilter": "configurationChanged"})
    assert recent.status_code == 200, recent.text
    assert [(c["instanceId"], c["oldStatus"], c["newStatus"], c["source"], c["metadata"]) for c in recent.json()] == [
        ("web-1", "Running", "ConfigurationChanged", "DockerDaemon", {"Version": "2"})]

    missing = post(b'{"InstanceId":"","Status":2,"Source":"DockerDaemon"}')
    assert missing.status_code == 400
    assert missing.json()["field"] == "instanceId"


def test_a_batch_with_a_bad_item_applies_the_good_ones_and_names_the_bad_one(plane: RunningControlPlane) -> None:
    response = plane.push([{**GOOD, "status": "Running"}, {**GOOD, "instanceId": "web-2", "status": "Dozing"}])

    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    rejected = response.json()["results"][1]
    assert (rejected["status"], rejected["field"]) == ("rejected", "[1].status")
    plane.wait_for("web-1", lambda v: v["status"] == "Running")
    assert plane.get("/api/instances/web-2").status_code == 404
    assert [c["instanceId"] for c in plane.wait_for_changes(1)] == ["web-1"]


def test_a_push_for_an_unknown_instance_without_a_platform_is_refused_and_creates_nothing(
    plane: RunningControlPlane,
) -> None:
    response = plane.push({"instanceId": "mystery", "status": "Running", "source": "somewhere"})

    assert response.status_code == 422
    assert response.json()["field"] == "platform"
    assert plane.get("/api/instances/mystery").status_code == 404
    assert plane.changes() == []


def test_stopping_a_pushed_container_whose_reports_named_no_container_is_409_and_changes_nothing(
    plane: RunningControlPlane,
) -> None:
    # Found by the API fuzz test: the stop asserted a container id and answered 500.
    assert plane.push({**GOOD, "status": "Running"}).status_code == 202
    before = plane.wait_for("web-1", lambda v: v["status"] == "Running")

    response = plane.post("/api/instances/web-1/stop")

    assert response.status_code == 409, response.text
    assert response.json()["field"] == "containerId"
    assert plane.instance("web-1") == before



def listed(plane: RunningControlPlane) -> dict[str, str]:
    response = plane.get("/api/instances")
    assert response.status_code == 200, response.text
    return {i["instanceId"]: i["status"] for i in response.json()["instances"]}


def test_an_instance_created_again_after_its_deletion_is_listed_and_stored(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    # Found by fuzzing: the deletion's tombstone outlived it, so the new instance's records never reached the store.
    with running_control_plane(tmp_path, janitor=janitor) as plane:
        for status in ("Running", "Stopped", "Running", "Stopped", "Running"):  # versions a new one need not beat
            assert plane.push({**GOOD, "status": status}).status_code == 202
        plane.wait_for_changes(5)
        deleted = requests.delete(plane.base_url + "/api/instances/web-1", headers=plane.operator_headers, timeout=5)
        assert deleted.status_code == 204, deleted.text
        assert "web-1" not in listed(plane)

        assert plane.push({**GOOD, "status": "Stopped"}).status_code == 202  # auto-created again

        wait_until(lambda: listed(plane).get("web-1") == "Stopped", 5.0, 0.02, "web-1 listed again")
    with running_control_plane(tmp_path, janitor=janitor) as again:  # and stored: a restart finds it
        assert listed(again).get("web-1") == "Stopped"


def test_recent_changes_for_one_instance_are_its_newest_only(plane: RunningControlPlane) -> None:
    # The dashboard's timeline: the last N changes of one instance, however old, whatever the others did since.
    for status in ("Running", "Stopped", "Running"):
        assert plane.push({**GOOD, "instanceId": "web-1", "status": status}).status_code == 202
        assert plane.push({**GOOD, "instanceId": "web-2", "status": status}).status_code == 202
    recent = plane.get("/api/status/recent-changes", params={"since": 0, "limit": 2, "instanceId": "web-1"})
    assert recent.status_code == 200, recent.text
    assert [(c["instanceId"], c["oldStatus"], c["newStatus"]) for c in recent.json()] == [
        ("web-1", "Running", "Stopped"), ("web-1", "Stopped", "Running")]
    too_long = plane.get("/api/status/recent-changes", params={"instanceId": "x" * 254})
    assert too_long.status_code == 422 and too_long.json()["field"] == "instanceId"
