"""Where a daemon's updates go: the push client (with its durable spool) and, beside the spool, what was last pushed
per instance (``daemons.reported``), which a daemon compares its first listing with after a restart."""

from __future__ import annotations

import logging
from pathlib import Path

from .daemon_env import CommonSettings
from .push_client import PushClient
from .reported import ReportedState
from .updates import StatusUpdate

__all__ = ["Outbox"]


class Outbox:
    """``push`` delivers; ``reported`` (instance id -> the last update pushed for it, by this run or an earlier
    one) is the daemon's to consult and note in (``reported.take_news``); ``send`` keeps the file in step."""

    def __init__(self, settings: CommonSettings, log: logging.Logger, push: PushClient | None = None) -> None:
        self.settings = settings
        self._log = log  # the daemon's own, so that its lines say which daemon stopped
        self.push = push if push is not None else PushClient(settings.push_settings())
        # After the push client: its lock on the spool keeps a second daemon away from this file too.
        self._state = ReportedState(Path(f"{settings.spool_path}.reported"))
        self.reported = self._state.load()

    def send(self, updates: list[StatusUpdate]) -> None:
        if updates:
            self.push.submit([update.to_wire() for update in updates])
            # Only once spooled: a crash in between costs a duplicate at the next start, never a lost push.
            self._state.record(updates)

    def close(self) -> None:
        """Deliver what is spooled within ``shutdown_flush``; what is not stays in the spool for the next run."""
        self._state.close()
        self.push.close(timeout=self.settings.shutdown_flush)
        pending = self.push.stats.pending
        if pending:
            self._log.warning("stopped with %d update(s) not yet delivered; they stay in %s",
                        pending, self.settings.spool_path)
