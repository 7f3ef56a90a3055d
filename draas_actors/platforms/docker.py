"""Docker containers: start, stop and restart through the Docker Engine API, off the actors' threads.

Container state is not read here: the Docker daemon reports it (events), and instance actors apply those
reports. This module only acts, on a small thread pool (``ActionPool``), because an engine call can take as
long as the container's stop timeout; a failure is handed back to the caller's callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from .actions import ActionPool, OnError


@dataclass(frozen=True, kw_only=True)
class DockerSettings:
    """``[docker]`` in the control plane's settings."""

    # Seconds between the engine's SIGTERM and its SIGKILL when the control plane stops a container (Docker's own
    # default for `docker stop`); the Engine API takes whole seconds, so a fraction is rounded up.
    stop_timeout: float = 10.0


class DockerPlatform:
    def __init__(
        self,
        settings: DockerSettings = DockerSettings(),
        *,
        client_factory: Callable[[], Any] = docker.from_env,
        workers: int = 4,
    ) -> None:
        self.settings = settings
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

    def stop(self, container_id: str, on_error: OnError) -> None:
        """SIGTERM, then SIGKILL after ``settings.stop_timeout`` (the engine does both)."""
        timeout = math.ceil(self.settings.stop_timeout)
        self._actions.submit("stop", on_error, lambda client: client.api.stop(container_id, timeout=timeout))

    def close(self) -> None:
        self._actions.close()
