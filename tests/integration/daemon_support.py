"""What the daemon tests share: control planes on a fixed port, and polling the instances of one platform."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from draas_actors.actors.supervisor import ACCEPTED
from draas_actors.api.app import create_app
from draas_actors.api.server import HttpServer
from draas_actors.messages import StatusReport
from draas_actors.system import ControlPlane, SystemSettings
from tests.helpers import ProcessJanitor, RunningControlPlane, answers, wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CountingControlPlane(ControlPlane):
    """Counts the reports it accepted, to compare with what the push client counted as acknowledged."""

    def __init__(self, settings: SystemSettings) -> None:
        super().__init__(settings)
        self.accepted = 0
        self._count_lock = threading.Lock()

    def submit(self, reports: tuple[StatusReport, ...]) -> tuple[str, ...]:
        outcomes = super().submit(reports)
        with self._count_lock:
            self.accepted += sum(1 for outcome in outcomes if outcome == ACCEPTED)
        return outcomes


@contextlib.contextmanager
def control_plane_on(
    data_dir: Path, port: int, daemon_key: str, operator_key: str
) -> Iterator[tuple[RunningControlPlane, CountingControlPlane]]:
    """A control plane on a fixed port (to come back where the daemon expects it), stopped on the way out."""
    cp = CountingControlPlane(SystemSettings(data_dir=data_dir, sweep_interval=60.0))
    server: HttpServer | None = None
    try:
        cp.start()
        app = create_app(cp, daemon_keys=(daemon_key,), operator_keys=(operator_key,))
        server = HttpServer(app, host="127.0.0.1", port=port, threads=4).start()
        base_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(base_url + "/healthz"), 5.0, 0.02, "the control plane answers /healthz")
        yield RunningControlPlane(cp, server, base_url, daemon_key, operator_key, ProcessJanitor()), cp
    finally:
        if server is not None:
            server.stop()
        cp.stop(timeout=5.0)


def platform_views(plane: RunningControlPlane, *, platform: str) -> dict[str, dict[str, Any]]:
    response = plane.get("/api/instances", params={"platform": platform})
    assert response.status_code == 200, response.text
    return {view["instanceId"]: view for view in response.json()["instances"]}


def wait_for_statuses(
    plane: RunningControlPlane, expected: dict[str, str], timeout: float, *, platform: str
) -> dict[str, Any]:
    """Poll GET /api/instances until every instance in ``expected`` has its status; fail with the differences."""
    deadline = time.monotonic() + timeout
    while True:
        views = platform_views(plane, platform=platform)
        wrong = {
            iid: (views[iid]["status"] if iid in views else None, want)
            for iid, want in expected.items()
            if iid not in views or views[iid]["status"] != want
        }
        if not wrong:
            return views
        if time.monotonic() >= deadline:
            pytest.fail(f"within {timeout}s these instances did not reach (seen, wanted): {wrong}")
        time.sleep(0.02)
