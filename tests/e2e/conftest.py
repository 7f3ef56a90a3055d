"""Start ``run.py`` as a user would: a subprocess with its own config, data dir and stderr log.

Every process a test starts is ended by PID in the fixture's ``finally``: the control planes, then the
managed processes they reported through the API (checked against their create time, so a reused PID is
left alone).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.helpers import kill_if_same, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO_ROOT / "config" / "draas.toml"
DAEMON_KEY = "e2e-daemon-key-0123456789abcdef"
OPERATOR_KEY = "e2e-operator-key-0123456789abcdef"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


def write_config(path: Path, text: str) -> Path:
    """A test's config: fast sweep, no demo instance, plus whatever the test adds."""
    path.write_text('logLevel = "INFO"\n[monitor]\nsweepInterval = 0.5\n' + text)
    return path


def clean_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without DRAAS_* (a developer's settings must not leak in), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAAS_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class ManagedPid:
    """A process the control plane manages, identified against PID reuse."""

    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The live process, or None once it has ended (a zombie counts as ended)."""
        try:
            process = psutil.Process(self.pid)
            if process.create_time() != self.create_time or process.status() == psutil.STATUS_ZOMBIE:
                return None
            return process
        except psutil.NoSuchProcess:
            return None

    def is_alive(self) -> bool:
        return self.process() is not None


@dataclass
class ControlPlaneProcess:
    """One running ``run.py``: its HTTP address, keys, process and stderr log."""

    process: subprocess.Popen[bytes]
    url: str
    operator_key: str
    daemon_key: str
    log_path: Path
    data_dir: Path
    on_instance: Callable[[dict[str, Any]], None]
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.trust_env = False  # never send 127.0.0.1 traffic through a configured proxy

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"X-API-Key": self.operator_key if key is None else key}
        response = self.session.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        self._track(response)
        return response

    def instance(self, instance_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/api/instances/{instance_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def instances(self) -> list[dict[str, Any]]:
        response = self.request("GET", "/api/instances")
        assert response.status_code == 200, response.text
        instances: list[dict[str, Any]] = response.json()["instances"]
        return instances

    def changes_after(self, cursor: int) -> list[dict[str, Any]]:
        """Every change after ``cursor``, following ``nextCursor`` page by page."""
        collected: list[dict[str, Any]] = []
        for _ in range(1000):
            response = self.request("GET", "/api/status/changes", params={"after": cursor, "limit": 100})
            assert response.status_code == 200, response.text
            page = response.json()
            collected.extend(page["changes"])
            if not page["changes"]:
                return collected
            assert page["nextCursor"] > cursor, page
            cursor = page["nextCursor"]
        pytest.fail("the change feed did not end within 1000 pages")

    def _track(self, response: requests.Response) -> None:
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        body = response.json()
        views = body.get("instances", [body]) if isinstance(body, dict) else []
        for view in views if isinstance(views, list) else []:
            if isinstance(view, dict) and "runtime" in view:
                self.on_instance(view)


class RunPy:
    """Starts and stops ``run.py`` subprocesses and remembers every managed PID they report."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ControlPlaneProcess] = []
        self.processes: list[subprocess.Popen[bytes]] = []  # every run.py, even one that never listened
        self.managed: set[ManagedPid] = set()

    def start(
        self,
        *,
        config: Path,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        operator_key: str | None = OPERATOR_KEY,
        daemon_key: str | None = DAEMON_KEY,
        extra_args: tuple[str, ...] = (),
        launcher: tuple[str, ...] = (),
        stdout: Path | None = None,
    ) -> ControlPlaneProcess:
        """Start run.py and wait for its ``listening on`` line; keys None means "let run.py generate one".

        ``launcher``: what runs the interpreter (``opentelemetry-instrument --``), which must exec it (one PID to
        signal); ``stdout``: a file for what run.py prints there (nothing, unless an exporter writes to it)."""
        data_dir = data_dir or self.tmp_path / "var"
        keys = {"DRAAS_OPERATOR_API_KEY": operator_key, "DRAAS_DAEMON_API_KEY": daemon_key}
        environment = clean_environment(**{k: v for k, v in keys.items() if v is not None}, **(env or {}))
        log_path = self.tmp_path / f"run-{len(self.started)}.stderr.log"
        with open(log_path, "wb") as stderr, open(stdout or os.devnull, "wb") as out:
            process = subprocess.Popen(
                [*launcher, sys.executable, "run.py", "--config", str(config), "--port", "0", "--data-dir",
                 str(data_dir), *extra_args],
                cwd=REPO_ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=stderr,
                start_new_session=True,  # a ^C at the terminal must reach pytest only
            )
        self.processes.append(process)

        def listening() -> re.Match[str] | None:
            if process.poll() is not None:
                pytest.fail(f"run.py exited with {process.returncode} before listening:\n{log_path.read_text()}")
            return LISTENING.search(log_path.read_text(errors="replace"))

        match = wait_until(listening, timeout=START_TIMEOUT, interval=0.02, message="run.py listening line")
        assert match is not None
        control_plane = ControlPlaneProcess(
            process=process,
            url=f"http://{match.group(1)}:{match.group(2)}",
            operator_key=operator_key or (data_dir / "operator.key").read_text().strip(),
            daemon_key=daemon_key or (data_dir / "daemon.key").read_text().strip(),
            log_path=log_path,
            data_dir=data_dir,
            on_instance=self.track,
        )
        self.started.append(control_plane)
        return control_plane

    def track(self, view: dict[str, Any]) -> None:
        """Remember a managed process from an instance view, so teardown can end it."""
        runtime = view.get("runtime")
        if not runtime:
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            self.managed.add(ManagedPid(runtime["pid"], psutil.Process(runtime["pid"]).create_time()))

    def stop(
        self, control_plane: ControlPlaneProcess, signum: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT
    ) -> int:
        """Signal run.py and wait for it to exit; fail (after killing it) if it takes longer than ``timeout``."""
        process = control_plane.process
        if process.poll() is None:
            self._track_children(process.pid)
            os.kill(process.pid, signum)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(process)
            pytest.fail(f"run.py did not exit within {timeout}s of {signum.name}:\n{control_plane.log()}")

    def close(self) -> None:
        for control_plane in self.started:
            if control_plane.process.poll() is None:
                # Last chance to learn about processes the test did not look at.
                with contextlib.suppress(requests.RequestException, AssertionError):
                    control_plane.instances()
        for process in self.processes:
            if process.poll() is None:
                self._track_children(process.pid)
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._kill(process)
        for managed in self.managed:
            kill_if_same(managed.pid, managed.create_time)
        reap_orphaned_groups({managed.pid for managed in self.managed})

    def _track_children(self, pid: int) -> None:
        """Also remember what run.py started but no API answer showed (e.g. it stopped answering)."""
        try:
            children = psutil.Process(pid).children()
        except psutil.NoSuchProcess:
            return
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.managed.add(ManagedPid(child.pid, child.create_time()))

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def reap_orphaned_groups(groups: set[int], timeout: float = 5.0) -> None:
    """Reap the processes of ``groups`` that came back to this process after run.py ended.

    An in-process control plane earlier in the run made this test process a child subreaper, so what a run.py
    spawned is re-parented here, not to init, once that run.py is gone. They are nobody's ``Popen``: without this
    wait each stays a zombie until the test run ends. Only members of the managed processes' own groups are killed
    and waited for, never another child of this process.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = []
        for child in psutil.Process().children():
            try:
                if os.getpgid(child.pid) in groups:
                    members.append(child.pid)
            except ProcessLookupError:
                continue
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # our unreaped child: its PID cannot have been reused
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if not members:
            return
        time.sleep(0.01)


@pytest.fixture
def run_py(tmp_path: Path) -> Iterator[RunPy]:
    launcher = RunPy(tmp_path)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "draas.toml", "")
