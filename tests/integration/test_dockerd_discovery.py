"""Finding the running engine's dockerd for the engine-restart test, whoever started it (no real engine here).

A "dockerd" in these tests is a Python process started through a symlink named ``dockerd`` (so that its name and
its command line say dockerd) that listens on a unix socket in the test's directory; the engine itself is never
touched.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ProcessJanitor
from tests.integration.docker_fixtures import running_dockerd, socket_peer_pid

# Listens on argv[1], says so, and lives until its stdin closes (it never accepts: the backlog takes the connection).
LISTENER = (
    "import socket, sys\n"
    "server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "server.bind(sys.argv[1])\n"
    "server.listen(8)\n"
    "print('listening', flush=True)\n"
    "sys.stdin.read()\n"
)


@contextlib.contextmanager
def listener(executable: Path, sock: Path, janitor: ProcessJanitor) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [str(executable), "-c", LISTENER, str(sock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    janitor.track(process.pid)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "listening"
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def fake_dockerd(tmp_path: Path) -> Path:
    """A path named dockerd that runs this Python: the kernel names the process after the file it executed."""
    link = tmp_path / "bin" / "dockerd"
    link.parent.mkdir()
    link.symlink_to(os.path.realpath(sys.executable))
    return link


def test_so_peercred_on_a_unix_socket_names_the_process_that_listens(tmp_path: Path, janitor: ProcessJanitor) -> None:
    sock = tmp_path / "server.sock"
    with listener(Path(sys.executable), sock, janitor) as server:
        assert socket_peer_pid(sock) == server.pid
    assert socket_peer_pid(sock) is None  # nobody listens any more
    assert socket_peer_pid(tmp_path / "never.sock") is None


def test_an_engine_started_by_someone_else_is_found_behind_its_socket(
    tmp_path: Path, janitor: ProcessJanitor, fake_dockerd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "docker.sock"
    # What CI looks like when the engine was up before the test command: scripts/ensure-docker.sh wrote no pidfile.
    monkeypatch.setenv("DRAAS_DOCKERD_PIDFILE", str(tmp_path / "missing" / "dockerd.pid"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    with listener(fake_dockerd, sock, janitor) as engine:
        found = running_dockerd(pidfiles=[tmp_path / "missing" / "dockerd.pid", tmp_path / "docker.pid"])
        assert found is not None and found.pid == engine.pid


def test_a_pidfile_naming_a_running_dockerd_is_used_when_the_socket_does_not_say(
    tmp_path: Path, janitor: ProcessJanitor, fake_dockerd: Path
) -> None:
    pidfile = tmp_path / "docker.pid"
    with listener(fake_dockerd, tmp_path / "elsewhere.sock", janitor) as engine:
        pidfile.write_text(f"{engine.pid}\n")
        found = running_dockerd(socket_path=tmp_path / "nobody.sock", pidfiles=[tmp_path / "none.pid", pidfile])
        assert found is not None and found.pid == engine.pid


def test_a_stale_pidfile_or_a_listener_that_is_not_dockerd_is_never_taken_for_the_engine(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)  # exited and reaped: its PID names nothing, or by now another process
    stale, ours, garbled = tmp_path / "stale.pid", tmp_path / "ours.pid", tmp_path / "garbled.pid"
    stale.write_text(f"{gone.pid}\n")
    ours.write_text(f"{os.getpid()}\n")  # alive, but pytest is no dockerd
    garbled.write_text("dockerd\n")
    sock = tmp_path / "python.sock"
    with listener(Path(sys.executable), sock, janitor) as python:
        assert socket_peer_pid(sock) == python.pid
        assert running_dockerd(socket_path=sock, pidfiles=[stale, ours, garbled]) is None
