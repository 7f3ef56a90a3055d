"""Death-watch for pykka actors, which have no links or monitors of their own.

pykka calls ``on_failure`` when a ``tell`` handler raises, but stops an actor whose ``on_start`` raises
without calling it. This base class reports both to a watcher, together with the tells still in the inbox
so the watcher can hand them to the actor's replacement: a crash loses at most the message that caused it.
"""

from __future__ import annotations

import logging
import queue
import sys
from types import TracebackType
from typing import Any

import pykka
import pykka.messages

from ..messages import ActorDied

log = logging.getLogger(__name__)


class WatchedActor(pykka.ThreadingActor):
    kind: str = "actor"
    # Daemon threads: a control plane that failed half-way through start-up must still be able to exit.
    use_daemon_thread = True

    def __init__(self, *, watcher: pykka.ActorRef[Any] | None, key: str) -> None:
        super().__init__()
        self.watcher = watcher
        self.key = key

    def on_start(self) -> None:
        try:
            self.started()
        except Exception:
            self._report_death(sys.exc_info()[1])
            raise

    def started(self) -> None:
        """Start-up work; an exception here is reported to the watcher like any other crash."""

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._report_death(exception_value)

    def _report_death(self, error: BaseException | None) -> None:
        pending = self._drain_inbox()
        if self.watcher is None:
            return
        try:
            self.watcher.tell(ActorDied(self.kind, self.key, repr(error), pending, self.actor_urn))
        except pykka.ActorDeadError:
            log.error("%s %s died and its watcher is gone: %r", self.kind, self.key, error)

    def _drain_inbox(self) -> tuple[Any, ...]:
        pending: list[Any] = []
        while True:
            try:
                envelope = self.actor_inbox.get_nowait()  # type: ignore[attr-defined]
            except queue.Empty:
                return tuple(pending)
            if isinstance(envelope.message, pykka.messages._ActorStop):
                continue  # somebody was stopping us anyway
            if envelope.reply_to is None:
                pending.append(envelope.message)
            else:
                envelope.reply_to.set_exception(
                    exc_info=(pykka.ActorDeadError, pykka.ActorDeadError(f"{self.kind} {self.key} died"), None)
                )
