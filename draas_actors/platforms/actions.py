"""Platform actions off the actors' threads: one small thread pool and one lazily made client per platform.

An engine or API call can take as long as its timeout, and an actor must not wait for it. A platform hands each
action to an ``ActionPool``; the pool makes the client on first use (so a control plane without Docker or
Kubernetes starts and works), runs the call on a worker thread, and hands a failure back to the caller's
callback in words fit for an instance's ``lastReason``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

C = TypeVar("C")

# (action, error text, retryable): retryable is False when repeating the same call cannot help (a refusal).
OnError = Callable[[str, str, bool], None]


class ActionFailed(Exception):
    """Raised by an action's call with the words to report; ``retryable=False`` for a refusal (403, 422...)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ActionPool(Generic[C]):
    """Runs ``call(client)`` on a worker thread and hands any failure to ``on_error``.

    ``ActionFailed`` says itself whether it is retryable; the types in ``failures`` (the platform's client and
    network errors) are; anything else is a bug, logged with its traceback and not retryable.
    """

    def __init__(
        self,
        platform: str,
        *,
        connect: Callable[[], C],
        disconnect: Callable[[C], None],
        failures: tuple[type[BaseException], ...],
        workers: int = 4,
    ) -> None:
        self.platform = platform
        self._connect = connect
        self._disconnect = disconnect
        self._failures: tuple[type[BaseException], ...] = (ActionFailed, *failures)
        self._client: C | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"draas-{platform}")

    def submit(self, action: str, on_error: OnError, call: Callable[[C], object]) -> None:
        def run() -> None:
            try:
                call(self._client_for_call())
            except self._failures as error:
                retryable = error.retryable if isinstance(error, ActionFailed) else True
                log.warning("%s %s failed: %s", self.platform, action, error)
                on_error(action, str(error), retryable)
            except Exception as error:  # a bug: say so, rather than leave the instance waiting for nothing
                log.exception("%s %s failed unexpectedly", self.platform, action)
                on_error(action, f"unexpected error: {error!r}", False)

        self._pool.submit(run)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            if self._client is not None:
                self._disconnect(self._client)
                self._client = None

    def _client_for_call(self) -> C:
        with self._lock:
            if self._client is None:
                # A failure here leaves no client behind: the next action tries again.
                self._client = self._connect()
            return self._client


__all__ = ["ActionFailed", "ActionPool", "OnError"]
