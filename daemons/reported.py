"""What a daemon last pushed for each instance, kept on disk beside its spool (SQLite, one row per instance).

It also keeps the ``storeId`` of the control plane's store they were pushed to (``daemons.outbox`` pushes them
all again when an answer names another store).

A daemon that starts again reads it back, so that its first listing is compared with what it had reported: it
pushes only what changed while it was not running, and ``Removed`` for the instances whose workloads went away in
the meantime (a daemon with an empty memory could not tell those from instances it never saw).

A daemon keeps the same in memory (instance id -> update) and consults it through ``take_news``, which decides
whether an observation is news and notes it as pushed (``note_pushed``) the way ``record`` does on disk.

It is written after each push is spooled: a crash in between costs a duplicate push at the next start, never a
lost one. WAL with ``synchronous=NORMAL``: a power cut may forget the last writes, which also costs duplicates
only. Its file belongs to the daemon that holds the spool next to it (the spool's lock keeps a second one out).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path

from draas_actors.model import Platform, Status

from .updates import StatusUpdate

__all__ = ["ReportedState", "SameState", "note_pushed", "same_report", "take_news"]

log = logging.getLogger(__name__)

# Whether a new observation of an instance says nothing that the update last pushed for it did not say.
SameState = Callable[[StatusUpdate, StatusUpdate], bool]


def same_report(before: StatusUpdate, update: StatusUpdate) -> bool:
    """The same status and metadata (``observedAt`` aside): right for a daemon whose listings and events describe
    one state with the same metadata (the Kubernetes daemon's pods)."""
    return (before.status, before.metadata) == (update.status, update.metadata)


def take_news(
    reported: MutableMapping[str, StatusUpdate], update: StatusUpdate, same: SameState = same_report
) -> bool:
    """Whether ``update`` is news next to ``reported`` (instance id -> the update last pushed for it).

    If it is, it is noted there as pushed (a Removed forgets its instance, as ``ReportedState.record`` does): the
    caller then pushes it and records it. Re-pushing what is not news would not be harmless: the control plane
    could take an unchanged Failed workload's exit code for a new exit of it.
    """
    before = reported.get(update.instance_id)
    if before is not None and same(before, update):
        return False
    note_pushed(reported, update)
    return True


def note_pushed(reported: MutableMapping[str, StatusUpdate], update: StatusUpdate) -> None:
    """Note in ``reported`` that ``update`` is pushed, as ``ReportedState.record`` does on disk."""
    if update.status is Status.REMOVED:
        reported.pop(update.instance_id, None)
    else:
        reported[update.instance_id] = update


class ReportedState:
    """Thread-safe; every ``record`` is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS reported (instance_id TEXT PRIMARY KEY, body TEXT NOT NULL)"
            )
            self._conn.execute("CREATE TABLE IF NOT EXISTS store (id INTEGER PRIMARY KEY CHECK (id = 1), "
                               "store_id TEXT NOT NULL)")
        except BaseException:
            self._conn.close()
            raise

    def load(self) -> dict[str, StatusUpdate]:
        """instance id -> the last update pushed for it (instances last reported Removed are not kept)."""
        with self._lock:
            rows = self._conn.execute("SELECT instance_id, body FROM reported").fetchall()
        loaded: dict[str, StatusUpdate] = {}
        for instance_id, body in rows:
            try:
                loaded[instance_id] = _from_row(instance_id, json.loads(body))
            except (ValueError, KeyError, TypeError) as error:
                log.warning("%s: ignored the unreadable row of instance %s: %s", self.path, instance_id, error)
        return loaded

    def record(self, updates: Iterable[StatusUpdate]) -> None:
        """Remember these updates (pushed in this order); a Removed one forgets its instance."""
        removed = [(u.instance_id,) for u in updates if u.status is Status.REMOVED]
        kept = [(u.instance_id, _to_row(u)) for u in updates if u.status is not Status.REMOVED]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("DELETE FROM reported WHERE instance_id = ?", removed)
                self._conn.executemany("INSERT OR REPLACE INTO reported (instance_id, body) VALUES (?, ?)", kept)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def store_id(self) -> str | None:
        """The ``storeId`` of the control plane's store these updates were last pushed to; None before any."""
        with self._lock:
            row = self._conn.execute("SELECT store_id FROM store").fetchone()
        return None if row is None else str(row[0])

    def set_store_id(self, store_id: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO store (id, store_id) VALUES (1, ?)", (store_id,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _to_row(update: StatusUpdate) -> str:
    return json.dumps({"workloadId": update.workload_id, **update.to_wire()}, separators=(",", ":"))


def _from_row(instance_id: str, body: dict[str, object]) -> StatusUpdate:
    metadata = body["metadata"]
    if not isinstance(metadata, dict):
        raise TypeError("metadata is not an object")
    return StatusUpdate(
        instance_id=instance_id,
        workload_id=str(body["workloadId"]),
        status=Status(body["status"]),
        observed_at=float(body["observedAt"]),  # type: ignore[arg-type]
        source=str(body["source"]),
        platform=Platform(body["platform"]),
        metadata=metadata,
    )
