"""W3C trace context over real HTTP: a push's traceparent (header, or an update's own field) is kept by the change it
causes, shown by GET /api/status/changes, and still there after the control plane restarts on the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane

HEADER_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OWN_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def push(plane: RunningControlPlane, body: Any, traceparent: str | None = None) -> requests.Response:
    headers = {**plane.daemon_headers, **({} if traceparent is None else {"traceparent": traceparent})}
    return requests.post(plane.base_url + "/api/status/updates", json=body, headers=headers, timeout=HTTP_TIMEOUT)


def update(instance_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"instanceId": instance_id, "status": status, "source": "DockerDaemon", "platform": "docker", **fields}


def traces(plane: RunningControlPlane) -> dict[str, str | None]:
    return {f"{c['instanceId']} {c['newStatus']}": c["traceparent"] for c in plane.changes()}


def test_a_pushed_traceparent_is_kept_by_the_change_and_survives_a_restart(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    expected = {
        "web-1 Running": HEADER_TRACE,  # the header's, for an update without its own
        "web-2 Running": OWN_TRACE,  # an update's own field wins over the header
        "web-3 Running": None,  # pushed without any
    }
    with running_control_plane(tmp_path / "data", janitor=janitor) as plane:
        single = push(plane, update("web-1", "Running"), traceparent=HEADER_TRACE)
        assert single.status_code == 202, single.text
        assert "warnings" not in single.json()
        batch = push(plane, [update("web-2", "Running", traceparent=OWN_TRACE)], traceparent=HEADER_TRACE)
        assert batch.status_code == 202, batch.text
        assert push(plane, update("web-3", "Running")).status_code == 202
        assert traces(plane) == expected  # a 202 means the change is committed: no waiting
    with running_control_plane(tmp_path / "data", janitor=janitor) as plane:
        assert traces(plane) == expected


def test_an_invalid_traceparent_header_is_ignored_with_a_warning_and_an_invalid_field_is_a_422(
    plane: RunningControlPlane,
) -> None:
    ignored = push(plane, update("web-1", "Running"), traceparent=HEADER_TRACE.upper())
    assert ignored.status_code == 202, ignored.text
    assert ignored.json()["warnings"] == [
        "traceparent header ignored: not a W3C traceparent: version-traceid-parentid-flags in lower-case hex "
        "(00-<32>-<16>-<2>), with a trace id and a parent id not all zeros"
    ]
    batch = push(plane, [update("web-2", "Running")], traceparent="00-nonsense")
    assert batch.status_code == 202, batch.text
    assert batch.json()["warnings"] == [ignored.json()["warnings"][0]]
    assert traces(plane) == {"web-1 Running": None, "web-2 Running": None}

    refused = push(plane, update("web-1", "Stopped", traceparent="00-nonsense"), traceparent=HEADER_TRACE)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "traceparent"
    items = push(plane, [update("web-1", "Stopped"), update("web-2", "Stopped", traceparent=HEADER_TRACE.upper())])
    assert items.status_code == 202, items.text
    assert [(r["status"], r.get("field")) for r in items.json()["results"]] == [
        ("accepted", None), ("rejected", "[1].traceparent")
    ]
    assert traces(plane)["web-2 Running"] is None and "web-2 Stopped" not in traces(plane)
