"""What the daemon tests share: control planes on a fixed port, a daemon in a thread with quick retries, polling
what the control plane says, and running a daemon as its command (``python -m daemons.<name>``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psutil
import pytest

from daemons.push_client import PushClient, PushSettings
from daemons.spool import Spool
from draas_actors.api.app import create_app
from draas_actors.api.server import HttpServer
from draas_actors.commit import Outcome
from draas_actors.messages import OutOfScope, Rejected, StatusReport
from draas_actors.security import Identity
from draas_actors.system import ControlPlane, SystemSettings
from tests.helpers import ProcessJanitor, RunningControlPlane, answers, wait_until

ROOT = Path(__file__).resolve().parents[2]


class Daemon(Protocol):
    def run(self) -> None: ...
    def stop(self) -> None: ...


D = TypeVar("D", bound=Daemon)


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

    def submit(
        self, reports: tuple[StatusReport, ...], scope: Identity | None = None
    ) -> tuple[Outcome | Rejected, ...] | OutOfScope:
        outcomes = super().submit(reports, scope)
        if not isinstance(outcomes, OutOfScope):
            with self._count_lock:
                self.accepted += sum(1 for outcome in outcomes if isinstance(outcome, Outcome))
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


# -- a daemon in a thread ---------------------------------------------------------------------------


def quick_push_client(base_url: str, api_key: str, spool_path: Path) -> PushClient:
    """A push client that retries at once and gives up on a dead connection quickly."""
    return PushClient(
        PushSettings(
            url=base_url, api_key=api_key, spool_path=spool_path, backoff_initial=0.02, backoff_max=0.3,
            connect_timeout=1.0, read_timeout=5.0,
        )
    )


@contextlib.contextmanager
def running_in_thread(daemon: D, name: str, ready: threading.Event, what: str) -> Iterator[D]:
    """``daemon.run()`` in a thread, yielded once ``ready`` is set (``what`` says what that means); stopped on the
    way out, and its loop must have ended, within 10 s, without failing."""
    failures: list[BaseException] = []

    def body() -> None:
        try:
            daemon.run()
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    try:
        wait_until(lambda: ready.is_set() or failures, 10.0, 0.01, what)
        assert not failures, f"the daemon's loop failed: {failures[0]!r}"
        yield daemon
    finally:
        daemon.stop()
        thread.join(10.0)
    assert not thread.is_alive(), "the daemon did not stop within 10 s"
    assert not failures, f"the daemon's loop failed: {failures[0]!r}"


# -- what the control plane says --------------------------------------------------------------------


def wait_for_view(
    view_of: Callable[[str], dict[str, Any] | None], instance_id: str, status: str, timeout: float,
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    """Poll ``view_of(instance_id)`` until it has ``status`` and these metadata values (strings, as the control
    plane keeps them)."""
    seen: list[dict[str, Any] | None] = [None]

    def check() -> dict[str, Any] | None:
        view = seen[0] = view_of(instance_id)
        if view is None or view["status"] != status:
            return None
        return view if all(view["metadata"].get(k) == v for k, v in metadata.items()) else None

    deadline = time.monotonic() + timeout
    while (view := check()) is None:
        if time.monotonic() >= deadline:
            pytest.fail(f"{instance_id}: wanted {status} {dict(metadata)} within {timeout}s; last seen {seen[0]}")
        time.sleep(0.01)
    return view


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


# -- a daemon as its command ------------------------------------------------------------------------


def daemon_env(
    base_url: str, api_key: str, spool: Path, settings: Mapping[str, str], *,
    inherit: Callable[[str], bool] = lambda name: True,
) -> dict[str, str]:
    """Our environment without DRAAS_*, CONTROL_PLANE_URL and what ``inherit`` refuses; then the control plane,
    the key, the spool, PYTHONPATH, and ``settings`` over them."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("DRAAS_") and k != "CONTROL_PLANE_URL" and inherit(k)
    }
    env.update(CONTROL_PLANE_URL=base_url, DRAAS_API_KEY=api_key, DRAAS_SPOOL_PATH=str(spool), PYTHONPATH=str(ROOT))
    env.update(settings)
    return env


@contextlib.contextmanager
def daemon_process(module: str, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m module`` with its output in ``log_path``; killed (if still running) and reaped on the way out."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=env, stdout=log_file, stderr=log_file
        )
        janitor = ProcessJanitor()
        janitor.track(process.pid)
        try:
            yield process
        finally:
            janitor.kill_all()
            process.wait(10)


def listening_ports(pid: int) -> list[int]:
    """The TCP ports the process listens on (a daemon opens one only with DRAAS_METRICS_PORT)."""
    return sorted(
        c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
    )


def stop_with_sigterm(process: subprocess.Popen[bytes], log_path: Path, *, within: float) -> None:
    """SIGTERM: the command exits 0 in less than ``within`` seconds."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0, log_path.read_text()
    assert time.monotonic() - started < within


def spooled_bodies(spool: Path) -> list[str]:
    """What a stopped daemon left in its spool (the first 10 items)."""
    left = Spool(spool, max_items=10)
    try:
        return [item.body for item in left.peek(10)]
    finally:
        left.close()


def assert_command_refuses(module: str, env: dict[str, str], variable: str, spool: Path) -> None:
    """``python -m module`` exits 2 with a configuration error naming ``variable``, and makes no spool."""
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert f"configuration error: {variable}" in result.stderr
    assert not spool.exists()
