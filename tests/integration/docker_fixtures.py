"""Shared fixtures for tests against the real Docker Engine (started by scripts/ensure-docker.sh).

Use them by importing the fixture names into a test module::

    from tests.integration.docker_fixtures import containers, docker_client, docker_run_id  # noqa: F401

- ``docker_client``: a ``docker.DockerClient`` for the engine; the test is skipped with the reason when there is
  no engine (``DRAAS_DOCKER_UNAVAILABLE`` from scripts/test.sh, or no answer to a ping, or no test image), and
  fails instead with ``CI=true``.
- ``docker_run_id``: unique per test session; every container made here carries ``draas.test=<run id>``, so that
  clean-up (and a daemon's label filter) can single out exactly this run's containers.
- ``containers``: a ``ContainerFactory``; every container it makes, and any other container carrying this run's
  label, is force-removed by id after the test, even when the test failed. Nothing else is ever touched.

Containers run the busybox test image with ``network_mode="none"`` and, by default, a shell that exits 0 on
SIGTERM at once (busybox ``sh`` as PID 1 would ignore it, and every stop would wait out the stop timeout).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import docker
import docker.errors
import psutil
import pytest
from docker.models.containers import Container

from tests.helpers import wait_until

__all__ = [
    "DEFAULT_COMMAND",
    "INSTANCE_LABEL",
    "MANAGED_LABEL",
    "RUN_LABEL",
    "TEST_IMAGE",
    "ContainerFactory",
    "containers",
    "docker_client",
    "docker_run_id",
    "dockerd_pidfile",
    "engine_answers",
    "engine_socket",
    "ensure_engine",
    "is_dockerd",
    "pid_in",
    "running_dockerd",
    "skip_or_fail",
    "socket_peer_pid",
    "stop_dockerd",
]

ROOT = Path(__file__).resolve().parents[2]
TEST_IMAGE = "draas-test-busybox:latest"
MANAGED_LABEL = "draas.managed"
RUN_LABEL = "draas.test"
INSTANCE_LABEL = "draas.instanceId"
DEFAULT_PIDFILE = Path("/tmp/draas-dockerd/dockerd.pid")  # scripts/ensure-docker.sh's, when it starts dockerd
ENGINE_SOCKET = Path("/var/run/docker.sock")
ENGINE_PIDFILE = Path("/var/run/docker.pid")  # dockerd's own default --pidfile
# Exits 0 on SIGTERM straight away (``wait`` is interrupted by a trapped signal, a foreground sleep is not).
DEFAULT_COMMAND = ("sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with the reason; with CI=true a missing prerequisite is a failure, never a skip."""
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def engine_answers(client: docker.DockerClient) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # anything short of an answer means "not now"
        return False


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    unavailable = os.environ.get("DRAAS_DOCKER_UNAVAILABLE")
    if unavailable:
        skip_or_fail(f"no Docker engine: {unavailable}")
    try:
        client = docker.from_env(timeout=30)
    except docker.errors.DockerException as error:
        skip_or_fail(f"no Docker engine ({error}); run scripts/ensure-docker.sh")
    try:
        if not engine_answers(client):
            skip_or_fail("the Docker engine does not answer /_ping; run scripts/ensure-docker.sh")
        try:
            client.images.get(TEST_IMAGE)
        except docker.errors.ImageNotFound:
            skip_or_fail(f"the test image {TEST_IMAGE} is missing; run scripts/ensure-docker.sh")
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_run_id(docker_client: docker.DockerClient) -> Iterator[str]:
    run_id = secrets.token_hex(6)
    try:
        yield run_id
    finally:
        # Whatever a test left behind (or something it drove, like a control plane) that carries this run's label.
        remove_labelled(docker_client, run_id)


class ContainerFactory:
    """Makes labelled test containers and removes them (by id) afterwards."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.ids: list[str] = []
        self._count = 0

    def instance_id(self, name: str = "c") -> str:
        """A fresh instance id for this run (valid at the control plane)."""
        self._count += 1
        return f"dk-{self.run_id}-{name}-{self._count}"

    def labels(self, instance_id: str | None, *, managed: bool = True, **extra: str) -> dict[str, str]:
        labels = {RUN_LABEL: self.run_id}
        if managed:
            labels[MANAGED_LABEL] = "true"
        if instance_id is not None:
            labels[INSTANCE_LABEL] = instance_id
        labels.update(extra)
        return labels

    def create(
        self,
        instance_id: str | None,
        *,
        command: Sequence[str] = DEFAULT_COMMAND,
        managed: bool = True,
        labels: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Container:
        """``docker create`` with this run's labels and no network; ``kwargs`` go to ``containers.create``."""
        container = self.client.containers.create(
            TEST_IMAGE,
            list(command),
            labels=self.labels(instance_id, managed=managed, **dict(labels or {})),
            network_mode="none",
            detach=True,
            **kwargs,
        )
        assert container.id is not None  # created: the engine gave it an id
        self.ids.append(container.id)
        return container

    def run(self, instance_id: str | None, **kwargs: Any) -> Container:
        """Create and start."""
        container = self.create(instance_id, **kwargs)
        container.start()
        return container

    def exited(self, instance_id: str | None, exit_code: int, **kwargs: Any) -> Container:
        """A container that has run and exited with ``exit_code``."""
        container = self.run(instance_id, command=("sh", "-c", f"exit {exit_code}"), **kwargs)
        result = container.wait(timeout=30)
        assert result["StatusCode"] == exit_code, result
        return container

    def remove_all(self) -> None:
        for container_id in self.ids:
            remove_quietly(self.client, container_id)
        self.ids.clear()


def remove_quietly(client: docker.DockerClient, container_id: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        try:
            client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.APIError as error:
            if "already in progress" not in str(error):
                raise


def remove_labelled(client: docker.DockerClient, run_id: str) -> None:
    if not engine_answers(client):
        return
    for row in client.api.containers(all=True, filters={"label": [f"{RUN_LABEL}={run_id}"]}):
        remove_quietly(client, row["Id"])


@pytest.fixture
def containers(docker_client: docker.DockerClient, docker_run_id: str) -> Iterator[ContainerFactory]:
    factory = ContainerFactory(docker_client, docker_run_id)
    try:
        yield factory
    finally:
        if engine_answers(docker_client):
            factory.remove_all()
            remove_labelled(docker_client, docker_run_id)


# -- restarting the engine ---------------------------------------------------------------------------


def dockerd_pidfile() -> Path:
    """Where scripts/ensure-docker.sh keeps the PID of a dockerd it started (DRAAS_DOCKERD_PIDFILE)."""
    return Path(os.environ.get("DRAAS_DOCKERD_PIDFILE") or DEFAULT_PIDFILE)


def engine_socket() -> Path | None:
    """The unix socket the Docker SDK talks to (``DOCKER_HOST``, else the default); None for a TCP engine."""
    host = os.environ.get("DOCKER_HOST") or f"unix://{ENGINE_SOCKET}"
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else None


def socket_peer_pid(path: Path, timeout: float = 2.0) -> int | None:
    """The PID of the process listening on the unix socket ``path``, from SO_PEERCRED on a connection to it.

    The kernel records the listener's credentials when it calls listen(): for dockerd's socket that is dockerd
    (under systemd socket activation it is PID 1, which ``running_dockerd`` then refuses as not a dockerd).
    None when nobody listens there, or when the listener is in a PID namespace we cannot see (the kernel says 0).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        try:
            connection.connect(str(path))
            credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid = struct.unpack("3i", credentials)[0]
    return pid if pid > 0 else None


def pid_in(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def is_dockerd(process: psutil.Process) -> bool:
    """Running (not a zombie) and a dockerd by both its name and its command line: the only process we signal."""
    try:
        cmdline = process.cmdline()
        return (
            process.name() == "dockerd"
            and bool(cmdline)
            and Path(cmdline[0]).name == "dockerd"
            and _alive(process)
        )
    except psutil.Error:
        return False


def running_dockerd(
    *, socket_path: Path | None = None, pidfiles: Sequence[Path] | None = None
) -> psutil.Process | None:
    """The running engine's dockerd, or None; never another process, never found by its name.

    Asked in order: the process listening on the engine's socket (it is the engine the tests talk to, whoever
    started it), then the PID in ``DRAAS_DOCKERD_PIDFILE`` (a dockerd that scripts/ensure-docker.sh started), then
    dockerd's own default pidfile ``/var/run/docker.pid``. A candidate counts only if it is a running dockerd, so a
    stale pidfile whose PID now names another process is ignored. Tests of this pass their own socket and pidfiles.
    """
    path = socket_path or engine_socket()
    files = (dockerd_pidfile(), ENGINE_PIDFILE) if pidfiles is None else pidfiles
    candidates = [socket_peer_pid(path) if path is not None else None, *(pid_in(file) for file in files)]
    for pid in candidates:
        if pid is None:
            continue
        try:
            process = psutil.Process(pid)
        except psutil.Error:
            continue
        if is_dockerd(process):
            return process
    return None


def stop_dockerd(process: psutil.Process, timeout: float = 30.0) -> None:
    """SIGTERM this dockerd and wait until it is gone (it stops its containers first)."""
    process.terminate()
    wait_until(lambda: not _alive(process), timeout, 0.05, f"dockerd (PID {process.pid}) exits after SIGTERM")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def ensure_engine(client: docker.DockerClient, timeout: float = 90.0) -> None:
    """Start the engine the way the test command does (scripts/ensure-docker.sh) unless it already answers."""
    if engine_answers(client):
        return
    pidfile = dockerd_pidfile()
    env = dict(os.environ)
    if pidfile.name == "dockerd.pid":  # the script writes <DRAAS_DOCKERD_DIR>/dockerd.pid
        env["DRAAS_DOCKERD_DIR"] = str(pidfile.parent)
    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure-docker.sh")],
        capture_output=True, text=True, timeout=timeout, check=False, env=env,
    )
    assert result.returncode == 0, f"scripts/ensure-docker.sh failed: {result.stdout}{result.stderr}"
    wait_until(lambda: engine_answers(client), 10.0, 0.1, "the engine answers after ensure-docker.sh")
