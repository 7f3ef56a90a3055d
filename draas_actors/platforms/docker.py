"""Docker containers: start, stop and restart through the Docker Engine API, off the actors' threads.

Container state is not read here: the Docker daemon reports it (events), and instance actors apply those
reports. This module only acts, on a small thread pool (``ActionPool``), because an engine call can take as
long as the container's stop timeout; a failure is handed back to the caller's callback.
"""

from __future__ import annotations

from typing import Any, Callable

import docker
import docker.errors

from .actions import ActionPool, OnError


class DockerPlatform:
    def __init__(self, *, client_factory: Callable[[], Any] = docker.from_env, workers: int = 4) -> None:
        # DOCKER_HOST or the local socket, on first use.
        self._actions: ActionPool[Any] = ActionPool(
            "docker",
            connect=client_factory,
            disconnect=lambda client: client.close(),
            failures=(docker.errors.DockerException, OSError),
            workers=workers,
        )

    def start(self, container_id: str, on_error: OnError) -> None:
        self._actions.submit("start", on_error, lambda client: client.api.start(container_id))

    def stop(self, container_id: str, timeout: float, on_error: OnError) -> None:
        self._actions.submit(
            "stop", on_error, lambda client: client.api.stop(container_id, timeout=int(max(0, timeout)))
        )

    def close(self) -> None:
        self._actions.close()
