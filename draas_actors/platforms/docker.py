"""Docker containers: start, stop and restart through the Docker Engine API, off the actors' threads.

Container state is not read here: the Docker daemon reports it (events), and instance actors apply those
reports. This module only acts, on a small thread pool, because an engine call can take as long as the
container's stop timeout; a failure is handed back to the caller's callback.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import docker
import docker.errors

log = logging.getLogger(__name__)

OnError = Callable[[str, str], None]  # (action, error text)


class DockerPlatform:
    def __init__(self, *, client_factory: Callable[[], Any] = docker.from_env, workers: int = 4) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="draas-docker")

    def start(self, container_id: str, on_error: OnError) -> None:
        self._submit("start", on_error, lambda api: api.start(container_id))

    def stop(self, container_id: str, timeout: float, on_error: OnError) -> None:
        self._submit("stop", on_error, lambda api: api.stop(container_id, timeout=int(max(0, timeout))))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                # DOCKER_HOST or the local socket; created on first use so a control plane without Docker starts.
                self._client = self._client_factory()
            return self._client.api

    def _submit(self, action: str, on_error: OnError, call: Callable[[Any], Any]) -> None:
        def run() -> None:
            try:
                call(self._api())
            except (docker.errors.DockerException, OSError) as error:
                log.warning("docker %s failed: %s", action, error)
                on_error(action, str(error))

        self._pool.submit(run)
