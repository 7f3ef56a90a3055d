"""The daemons' own metrics over real HTTP: the commands (``python -m daemons.<name>``) with DRAAS_METRICS_PORT against
the real Docker engine and the fake Kubernetes API server, scraped and parsed with prometheus_client's parser while
their counters move; the port closes with the daemon. (Off by default: the command tests in test_docker_daemon.py
and test_k8s_daemon.py check that no port is opened without it.)"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.samples import Sample

from daemons.metrics import MetricsServer
from tests.helpers import RunningControlPlane, answers, wait_until
from tests.integration.daemon_support import ROOT, daemon_process, free_port, listening_ports, stop_with_sigterm
from tests.integration.docker_fixtures import (  # noqa: F401  (fixtures)
    ContainerFactory,
    containers,
    docker_client,
    docker_run_id,
)
from tests.integration.test_docker_daemon import docker_daemon_env
from tests.integration.test_docker_daemon import wait_for_view as wait_for_container
from tests.integration.test_k8s_daemon import NS, api, k8s_daemon_env, running_daemon  # noqa: F401  (api)
from tests.integration.test_k8s_daemon import wait_for_view as wait_for_pod
from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.pods import make_pod
from tests.metrics_support import label_values, scrape_until, value


@contextlib.contextmanager
def socket_listening() -> Iterator[int]:
    """A TCP socket listening on 127.0.0.1 (an ephemeral port, yielded) for the length of a ``with``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port: int = taken.getsockname()[1]
        yield port


def check_names_and_labels(samples: list[Sample], ids: set[str]) -> None:
    assert all(s.name.startswith("draas_") for s in samples), sorted({s.name for s in samples})
    assert not label_values(samples) & ids


# -- the Docker daemon ------------------------------------------------------------------------------


@pytest.mark.docker
def test_the_docker_command_serves_its_counters_while_they_move_and_closes_the_port_on_sigterm(
    plane: RunningControlPlane, containers: ContainerFactory, tmp_path: Path, docker_run_id: str
) -> None:
    listed, streamed = containers.instance_id("listed"), containers.instance_id("streamed")
    containers.run(listed)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = docker_daemon_env(plane.base_url, plane.daemon_key, tmp_path / "spool", docker_run_id,
                            DRAAS_METRICS_PORT=str(port))
    log_path = tmp_path / "daemon.log"
    with daemon_process("daemons.docker_daemon", env, log_path) as process:
        wait_for_container(plane, listed, "Running", timeout=10.0, containerState="running")
        samples = scrape_until(url, "draas_daemon_updates_pushed_total", 1, outcome="acknowledged")
        assert value(samples, "draas_daemon_lists_total") == 1
        assert value(samples, "draas_daemon_listed_total") == 1
        assert value(samples, "draas_daemon_events_total") == 0
        assert listening_ports(process.pid) == [port]

        containers.run(streamed)
        wait_for_container(plane, streamed, "Running", eventAction="start")
        samples = scrape_until(url, "draas_daemon_events_total", 2)  # create and start at least
        updates = value(samples, "draas_daemon_updates_total")
        assert updates >= 2  # the listed one, and the start (the create maps to one too)
        # Once every update is acknowledged the spool is empty: depth and the outcome counted from one spool.
        samples = scrape_until(url, "draas_daemon_updates_pushed_total", updates, outcome="acknowledged")
        assert value(samples, "draas_daemon_spool_depth") == 0
        assert value(samples, "draas_daemon_reconnects_total") == 0
        check_names_and_labels(samples, {listed, streamed})

        stop_with_sigterm(process, log_path, within=5.0)
    assert not answers(url)


@pytest.mark.docker
def test_the_docker_command_counts_its_reconnects_while_the_engine_is_unreachable(
    plane: RunningControlPlane, tmp_path: Path, docker_run_id: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = docker_daemon_env(plane.base_url, plane.daemon_key, tmp_path / "spool", docker_run_id,
                            DRAAS_METRICS_PORT=str(port), DRAAS_RECONNECT_MAX_SECONDS="0.2",
                            DOCKER_HOST=f"unix://{tmp_path / 'no-engine.sock'}")
    log_path = tmp_path / "daemon.log"
    with daemon_process("daemons.docker_daemon", env, log_path) as process:
        samples = scrape_until(url, "draas_daemon_reconnects_total", 3)
        assert value(samples, "draas_docker_daemon_engine_errors_total") >= 3
        assert value(samples, "draas_daemon_lists_total") == 0
        stop_with_sigterm(process, log_path, within=5.0)


def test_a_metrics_port_in_use_stops_the_command_with_status_2_naming_the_variable(tmp_path: Path) -> None:
    with socket_listening() as port:
        env = docker_daemon_env("http://127.0.0.1:1", "k" * 32, tmp_path / "spool", "x",
                                DRAAS_METRICS_PORT=str(port))
        result = subprocess.run(
            [sys.executable, "-m", "daemons.docker_daemon"], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"DRAAS_METRICS_PORT={port}: cannot listen on 127.0.0.1" in result.stderr


# -- the Kubernetes daemon --------------------------------------------------------------------------


@pytest.mark.kubernetes
def test_the_k8s_command_serves_its_counters_and_counts_a_dropped_watch(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    api.create_pod(make_pod("listed"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = k8s_daemon_env(plane.base_url, plane.daemon_key, tmp_path / "spool", api.write_kubeconfig(
        tmp_path / "kubeconfig"), DRAAS_METRICS_PORT=str(port), DRAAS_RECONNECT_MAX_SECONDS="0.2")
    log_path = tmp_path / "daemon.log"
    with daemon_process("daemons.k8s_daemon", env, log_path) as process:
        wait_for_pod(plane, "listed", "Running", timeout=30.0)
        samples = scrape_until(url, "draas_daemon_updates_pushed_total", 1, outcome="acknowledged")
        assert value(samples, "draas_daemon_lists_total") == 1
        assert value(samples, "draas_daemon_listed_total") == 1

        api.create_pod(make_pod("watched"))
        wait_for_pod(plane, "watched", "Running")
        samples = scrape_until(url, "draas_daemon_events_total", 1)
        assert value(samples, "draas_daemon_updates_total") == 2
        assert value(samples, "draas_k8s_daemon_watches_total") == 1

        assert api.drop_watches("reset") == 1
        samples = scrape_until(url, "draas_k8s_daemon_watches_total", 2)
        assert value(samples, "draas_daemon_reconnects_total") >= 1
        assert value(samples, "draas_k8s_daemon_drops_total") >= 1
        assert value(samples, "draas_daemon_lists_total") == 1  # resumed from its resourceVersion: no relist
        check_names_and_labels(samples, {"listed", "watched"})

        stop_with_sigterm(process, log_path, within=5.0)
    assert not answers(url)


@pytest.mark.kubernetes
def test_the_k8s_command_shows_its_spool_growing_while_the_control_plane_is_unreachable(
    api: FakeApiServer, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        api.create_pod(make_pod(name))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = k8s_daemon_env(f"http://127.0.0.1:{free_port()}", "k" * 32, tmp_path / "spool",
                         api.write_kubeconfig(tmp_path / "kubeconfig"), DRAAS_METRICS_PORT=str(port),
                         DRAAS_SHUTDOWN_FLUSH_SECONDS="0")
    log_path = tmp_path / "daemon.log"
    with daemon_process("daemons.k8s_daemon", env, log_path) as process:
        samples = scrape_until(url, "draas_daemon_push_retries_total", 1)
        assert value(samples, "draas_daemon_spool_depth") == 3
        assert value(samples, "draas_daemon_updates_spooled_total") == 3
        assert value(samples, "draas_daemon_updates_pushed_total") == 0
        stop_with_sigterm(process, log_path, within=5.0)


@pytest.mark.kubernetes
def test_a_relist_after_the_watch_expired_is_counted_and_the_server_stops_with_the_daemon(
    api: FakeApiServer, plane: RunningControlPlane, tmp_path: Path
) -> None:
    with running_daemon(api, plane.base_url, plane.daemon_key, tmp_path / "spool") as daemon:
        server = MetricsServer(daemon.metrics, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{server.port}/metrics"
        try:
            api.create_pod(make_pod("early"))
            wait_for_pod(plane, "early", "Running")
            # Kept away from the API server while a pod changes and the history is compacted: its resourceVersion
            # is too old when it watches again, so it lists again.
            daemon.gate.clear()
            api.drop_watches("clean")
            wait_until(daemon.waiting.is_set, 5.0, 0.01, "the daemon at its gate")
            api.delete_pod(NS, "early")
            api.compact()
            daemon.gate.set()
            wait_for_pod(plane, "early", "Removed")
            samples = scrape_until(url, "draas_daemon_lists_total", 2)
            assert value(samples, "draas_k8s_daemon_expired_total") == 1
            assert value(samples, "draas_daemon_vanished_total") == 1
            assert value(samples, "draas_k8s_daemon_stream_ends_total") >= 1
        finally:
            server.stop()
    assert not answers(url)
