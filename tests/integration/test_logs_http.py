"""GET /api/instances/{id}/logs over real HTTP: a local process's output, its tail, following it by offset, bounds."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from draas_actors.security import LimitSettings, new_key
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane, wait_until
from tests.security_fixtures import staff_security

ADMIN_KEY, READ_KEY, OPERATE_KEY, DAEMON_KEY, ROGUE_KEY = (new_key() for _ in range(5))
MAX_LOG_BYTES, MAX_LOG_LINES = 4096, 50
SECURITY = dataclasses.replace(
    staff_security(admin=ADMIN_KEY, read=READ_KEY, operate=OPERATE_KEY, daemon=DAEMON_KEY, rogue=ROGUE_KEY),
    limits=LimitSettings(max_log_bytes=MAX_LOG_BYTES, max_log_lines=MAX_LOG_LINES),
)
# Prints five lines on stdout and one on stderr, then appends a line each time the file "more" appears.
PRINTER = """
import os, sys, time
for i in range(1, 6):
    print(f"line {i}", flush=True)
print("oops", file=sys.stderr, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
print("appended", flush=True)
time.sleep(60)
"""


@pytest.fixture
def secured(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor, security=SECURITY) as running:
        yield running


def logs(
    plane: RunningControlPlane, instance_id: str, params: dict[str, int | str] | None = None, key: str = OPERATE_KEY
) -> requests.Response:
    return requests.get(
        f"{plane.base_url}/api/instances/{instance_id}/logs", params=params, headers={"X-API-Key": key},
        timeout=HTTP_TIMEOUT,
    )


def register_printer(plane: RunningControlPlane, trigger: Path) -> None:
    response = requests.post(
        plane.base_url + "/api/instances", headers={"X-API-Key": ADMIN_KEY}, timeout=HTTP_TIMEOUT,
        json={"instanceId": "printer", "platform": "process",
              "process": {"command": [sys.executable, "-c", PRINTER, str(trigger)]}},
    )
    assert response.status_code == 201, response.text
    plane.janitor.track(response.json()["runtime"]["pid"])
    wait_until(lambda: b"line 5" in logs(plane, "printer").content, 5.0, 0.02, "the printer's five lines")


def test_the_tail_is_the_last_lines_as_text_with_the_offset_to_follow_from(
    secured: RunningControlPlane, tmp_path: Path
) -> None:
    register_printer(secured, tmp_path / "more")
    response = logs(secured, "printer", {"tail": 2})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "line 4\nline 5\n"
    assert response.headers["X-Log-Truncated"] == "true"
    offset = int(response.headers["X-Log-Offset"])
    assert offset == len("".join(f"line {i}\n" for i in range(1, 6)))

    assert logs(secured, "printer", {"after": offset}).text == ""  # nothing new yet
    (tmp_path / "more").touch()
    appended = wait_until(lambda: logs(secured, "printer", {"after": offset}).text, 5.0, 0.02, "the appended line")
    assert appended == "appended\n"
    assert logs(secured, "printer", {"stream": "stderr"}).text == "oops\n"


def test_the_output_answered_is_bounded_by_the_settings(secured: RunningControlPlane, tmp_path: Path) -> None:
    register_printer(secured, tmp_path / "more")
    assert logs(secured, "printer", {"after": 0}).headers["X-Log-Truncated"] == "false"
    too_many = logs(secured, "printer", {"tail": MAX_LOG_LINES + 1})
    assert too_many.status_code == 422
    assert too_many.json()["field"] == "tail"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"tail": 0}, "tail"), ({"after": -1}, "after"), ({"tail": 1, "after": 0}, "after"), ({"stream": "x"}, "stream")],
)
def test_bad_parameters_are_422_naming_the_field(
    secured: RunningControlPlane, tmp_path: Path, params: dict[str, int | str], field: str
) -> None:
    register_printer(secured, tmp_path / "more")
    response = logs(secured, "printer", params)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_an_unknown_instance_is_404_and_a_container_is_409(secured: RunningControlPlane) -> None:
    assert logs(secured, "nobody").status_code == 404
    pushed = requests.post(
        secured.base_url + "/api/status/updates", headers={"X-API-Key": DAEMON_KEY}, timeout=HTTP_TIMEOUT,
        json={"instanceId": "web-1", "platform": "docker", "status": "Running", "source": "docker-daemon"},
    )
    assert pushed.status_code == 202, pushed.text
    response = logs(secured, "web-1")
    assert response.status_code == 409
    assert response.json()["field"] == "instanceId"


def test_reading_output_needs_the_operate_role(secured: RunningControlPlane) -> None:
    assert logs(secured, "nobody", key=READ_KEY).status_code == 403
    assert logs(secured, "nobody", key=ADMIN_KEY).status_code == 404
