"""The Docker benchmark runs end to end in quick mode, measures both sides (not its targets) and leaves no container."""

from __future__ import annotations

import docker
import pytest

from bench import docker_events
from tests.integration.bench_support import assert_compared, positive
from tests.integration.docker_fixtures import docker_client  # noqa: F401  (fixture)

pytestmark = [pytest.mark.bench, pytest.mark.docker]


def _bench_containers(client: docker.DockerClient) -> set[str]:
    return {row["Id"] for row in client.api.containers(all=True, filters={"label": [docker_events.BENCH_LABEL]})}


def test_quick_docker_benchmark_measures_ours_and_the_naive_daemon_and_removes_its_containers(
    docker_client: docker.DockerClient,
) -> None:
    before = _bench_containers(docker_client)

    result = docker_events.run(kills=docker_events.QUICK_KILLS, containers=docker_events.QUICK_CONTAINERS)

    for side in (result.ours, result.naive):
        assert len(side.die_to_status_ms) == docker_events.QUICK_KILLS and positive(side.die_to_status_ms)
        assert side.containers == docker_events.QUICK_CONTAINERS and positive([side.startup_ms])
    assert_compared(result, docker_events.render, "naive")
    assert _bench_containers(docker_client) - before == set()
