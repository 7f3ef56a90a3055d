"""The Docker daemon's loop logic against a scripted engine (no Docker engine needed): what it counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import docker
import pytest

from daemons.docker_daemon import DaemonSettings, DockerDaemon
from daemons.docker_mapping import INSTANCE_LABEL

TIME_NANO = 1_795_740_722_732_995_776


class ScriptedEngine:
    """Stands in for ``docker.DockerClient``: ``api.info``, ``api.containers`` and ``api.events`` answer what the
    test put in ``rows`` and ``events``."""

    def __init__(self) -> None:
        self.api = self
        self.rows: list[dict[str, Any]] = []
        self.events_to_send: list[dict[str, Any]] = []

    def info(self) -> dict[str, Any]:
        return {"SystemTime": "2026-11-26T10:12:02.732995776Z"}

    def containers(self, *, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        del all, filters
        return list(self.rows)

    def events(self, *, since: Any, filters: dict[str, Any], decode: bool) -> Iterator[dict[str, Any]]:
        del since, filters, decode
        return iter(list(self.events_to_send))

    def close(self) -> None:
        pass


def labels(instance_id: str | None) -> dict[str, str]:
    return {"draas.managed": "true", **({INSTANCE_LABEL: instance_id} if instance_id is not None else {})}


def row(container_id: str, instance_id: str | None) -> dict[str, Any]:
    return {"Id": container_id, "Names": [f"/{container_id}"], "Image": "busybox", "State": "running",
            "Status": "Up 3 seconds", "Labels": labels(instance_id), "Created": 1_795_740_000}


def event(action: str, container_id: str, instance_id: str | None, offset: int = 0) -> dict[str, Any]:
    return {
        "Type": "container", "Action": action, "status": action, "id": container_id, "from": "busybox",
        "Actor": {"ID": container_id, "Attributes": {**labels(instance_id), "image": "busybox", "name": container_id}},
        "scope": "local", "time": (TIME_NANO + offset) // 1_000_000_000, "timeNano": TIME_NANO + offset,
    }


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def daemon(tmp_path: Path, engine: ScriptedEngine) -> Iterator[DockerDaemon]:
    settings = DaemonSettings(control_plane_url="http://127.0.0.1:9", api_key="k", spool_path=tmp_path / "spool",
                              shutdown_flush=0.0)
    # The push client is never started; the scripted engine stands in for the docker client.
    made = DockerDaemon(settings, client_factory=lambda _: cast(docker.DockerClient, engine))
    try:
        yield made
    finally:
        made._outbox.close()


def test_a_container_without_an_instance_id_is_counted_once_however_often_it_is_seen(
    daemon: DockerDaemon, engine: ScriptedEngine
) -> None:
    engine.rows = [row("listed-a", None), row("listed-b", "bad/id"), row("web", "web-1")]
    since = daemon.resync()
    engine.events_to_send = [
        event("stop", "listed-a", None, 1), event("start", "listed-a", None, 2),
        event("create", "new-c", None, 3), event("start", "new-c", None, 4), event("die", "new-c", None, 5),
        event("destroy", "new-c", None, 6),
    ]
    daemon.stream(since)
    daemon.resync()  # a and b listed again: not counted again

    stats = daemon.stats
    assert stats.skipped_no_instance_id == 3  # listed-a, listed-b and new-c: three containers
    assert stats.events == 6
    assert daemon.push.stats.submitted == 1  # web-1, the only instance
