"""Where a daemon's updates go: the push client (with its durable spool) and, beside the spool, what was last pushed
per instance (``daemons.reported``), which a daemon compares its first listing with after a restart.

A daemon pushes only news, so a control plane that lost its state (restored from a backup, rebuilt on an empty
data dir, replaced at the same URL) would never learn the statuses of quiet workloads. Two things refill it, both
by pushing again every update last pushed (the reported state, read from disk, each with the ``observedAt`` it was
pushed with, so that none of them can overtake a newer update of the same instance on its way):

- **another store**: every push answer carries the ``storeId`` of the control plane's store. When one names another
  store than the last answer did, the snapshot is spooled at once, on the push client's thread, before the new
  ``storeId`` is written down (a crash in between costs a second snapshot, never a missed one). A daemon that
  remembers no ``storeId`` (its first run) just writes it down.
- **a store check** while the daemon is quiet: when no push has been answered for ``store_check_interval``
  (``DRAAS_STORE_CHECK_INTERVAL``), the outbox asks ``GET /healthz`` which store answers and treats its
  ``storeId`` as a push answer's. So a daemon with nothing to push meets a new control plane within about that
  interval, not at its next push. A check that fails changes nothing (logged at debug, asked again one interval
  later); none is made while pushes are being retried, since their answer will name the store.
- **a resync** every ``resync_interval`` (``DRAAS_RESYNC_INTERVAL``, like an informer's resync),
  for a store that kept its ``storeId`` but not its content (a whole data dir restored from a backup, marker and
  all). One is skipped while the control plane does not answer: the spool is already holding what it has missed.
  None is made at start: a restarted daemon pushes only what changed, and its first store check or push answer
  tells it whether the control plane still has the rest.

The control plane applies such a snapshot idempotently: an update it already has changes no status (and an exit
it has handled is not taken for a new one). The resync and the store check share one timer thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import requests

from .daemon_env import CommonSettings
from .push_client import PushClient
from .reported import ReportedState
from .tracing import current_traceparent
from .updates import StatusUpdate

__all__ = ["Outbox"]

# A store check waits at most this long for /healthz (less with a shorter interval), so that close() (which waits
# 5 s for the timer thread) never leaves one behind.
_CHECK_TIMEOUT_MAX = 2.0


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
        self._store_id = self._state.store_id()
        # The push client's sender and the store check both report a storeId: one at a time.
        self._store_lock = threading.Lock()
        self.push.on_store_id = self._on_store_id
        self._stopping = threading.Event()
        self._resyncer: threading.Thread | None = None
        self.snapshots = 0  # snapshots that spooled anything (another store, or the periodic resync)
        self.store_checks = 0  # /healthz answers that named a store

    def start(self) -> None:
        """Start the push client's sender and the timer of the periodic resync and the store check (once). No
        resync at start: a restarted daemon pushes only what changed, and its first store check (or push answer)
        tells it whether the control plane still has the rest."""
        self.push.start()
        if self._resyncer is None:
            self._resyncer = threading.Thread(target=self._run_timer, name="outbox-resync", daemon=True)
            self._resyncer.start()

    def send(self, updates: list[StatusUpdate]) -> None:
        """Spool ``updates``; made while an event's span is current (``daemons.tracing.event_span``), each carries
        that span's traceparent, in the spool and in the push."""
        if updates:
            traceparent = current_traceparent()
            if traceparent is not None:
                updates = [dataclasses.replace(update, traceparent=traceparent) for update in updates]
            self.push.submit([update.to_wire() for update in updates])
            # Only once spooled: a crash in between costs a duplicate at the next start, never a lost push.
            self._state.record(updates)

    def close(self) -> None:
        """Deliver what is spooled within ``shutdown_flush``; what is not stays in the spool for the next run."""
        self._stopping.set()
        if self._resyncer is not None:
            # A snapshot in progress is a read and an append; a store check waits _CHECK_TIMEOUT_MAX at most.
            self._resyncer.join(5.0)
        self.push.close(timeout=self.settings.shutdown_flush)
        self._state.close()
        pending = self.push.stats.pending
        if pending:
            self._log.warning("stopped with %d update(s) not yet delivered; they stay in %s",
                              pending, self.settings.spool_path)

    # -- snapshots ----------------------------------------------------------------------------------

    def _on_store_id(self, store_id: str) -> None:
        """On the push client's sender thread, after each answer that names its store."""
        with self._store_lock:
            self._store_answered(store_id)

    def _store_answered(self, store_id: str) -> None:
        """The store-changed logic, for a push answer or a store check; ``_store_lock`` held."""
        before = self._store_id
        if store_id == before:
            return
        if before is not None:
            count = self._snapshot()
            self._log.warning("the control plane at %s answers from another store (storeId %s, was %s): pushed "
                              "all %d instance(s) again", self.settings.control_plane_url, store_id, before, count)
        self._state.set_store_id(store_id)
        self._store_id = store_id

    def _run_timer(self) -> None:
        """Until close: the periodic resync, and in between a store check once no push (nor check) has been
        answered for ``store_check_interval``."""
        interval = self.settings.store_check_interval
        next_resync = time.monotonic() + self.settings.resync_interval
        checked = time.monotonic()
        while True:
            next_check = max(self.push.answered_at, checked) + interval
            if self._stopping.wait(max(0.0, min(next_resync, next_check) - time.monotonic())):
                return
            now = time.monotonic()
            if now >= next_resync:
                self._resync()
                next_resync = now + self.settings.resync_interval
            elif now >= max(self.push.answered_at, checked) + interval:  # else a push was answered meanwhile
                self.check_store()
                checked = time.monotonic()

    def _resync(self) -> None:
        if not self.push.answering:
            self._log.info("periodic resync skipped: the control plane does not answer")
            return
        try:
            count = self._snapshot()
        except Exception:  # the next period tries again; the daemon's own pushes go on meanwhile
            self._log.exception("periodic resync failed")
            return
        self._log.info("periodic resync: pushed all %d instance(s) again", count)

    def check_store(self) -> None:
        """Ask ``/healthz`` which store answers, and react to it as to a push answer (the timer thread's)."""
        if not self.push.answering:
            return  # pushes are being retried: their answer will name the store
        answered = self.push.answered_at
        try:
            store_id = self.push.fetch_store_id(min(self.settings.store_check_interval, _CHECK_TIMEOUT_MAX))
        except requests.RequestException as error:
            self._log.debug("store check: %s/healthz did not answer (%s); asking again in %gs",
                            self.settings.control_plane_url, error, self.settings.store_check_interval)
            return
        if store_id is None:
            self._log.debug("store check: %s/healthz names no store", self.settings.control_plane_url)
            return
        with self._store_lock:
            if self.push.answered_at != answered:
                return  # a push was answered meanwhile: its storeId is the newer word, and already heard
            self.store_checks += 1
            self._store_answered(store_id)

    def _snapshot(self) -> int:
        """Spool every update last pushed (from disk: consistent, and safe from any thread); returns how many."""
        updates = list(self._state.load().values())
        if updates:
            self.push.submit([update.to_wire() for update in updates])
            self.snapshots += 1
        return len(updates)
