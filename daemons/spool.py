"""A durable, bounded, ordered spool of pending pushes: SQLite in WAL mode with ``synchronous=FULL``.

Why SQLite rather than an append-only file: a commit in WAL mode with ``synchronous=FULL`` fsyncs the log before
it returns, so an appended item survives a crash of the process or the machine; the rows come back in order of
``seq``; dropping the oldest or removing acknowledged items is one ``DELETE`` instead of rewriting or compacting a
file; and a torn write at a crash is rolled back by SQLite instead of being parsed by us. ``AUTOINCREMENT`` keeps
``seq`` from ever being reused, so removing an acknowledged ``seq`` can never remove a newer item that took its
number after the old one was dropped for room.

One spool belongs to one push client: an exclusive ``flock`` on ``<path>.lock`` refuses a second one (two senders
draining one spool would send everything twice and drop each other's items).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolClosed", "SpoolItem", "SpoolLocked"]

_DELETE_CHUNK = 500  # stays under SQLite's limit on bound parameters, old builds included


class SpoolClosed(RuntimeError):
    """The spool was closed; nothing more can be read or written."""


class SpoolLocked(RuntimeError):
    """Another push client holds this spool."""


@dataclass(frozen=True)
class SpoolItem:
    seq: int
    body: str


class Spool:
    """Thread-safe: one connection behind one lock (the event thread appends, the sender reads and removes)."""

    def __init__(self, path: Path, *, max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.path = path
        self.max_items = max_items
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(f"the spool {path} is in use by another push client") from None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)"
            )
            self._count: int = self._conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0]
        except BaseException:
            self.close()
            raise
        _fsync_directory(path.parent)  # the new database and log files' names are durable too

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def append(self, bodies: Sequence[str]) -> list[SpoolItem]:
        """Append in order and fsync; returns the oldest items dropped to stay within ``max_items``."""
        with self._lock:
            conn = self._open()
            with _transaction(conn):
                conn.executemany("INSERT INTO spool (body) VALUES (?)", ((body,) for body in bodies))
                dropped = self._drop_overflow(conn, self._count + len(bodies))
            self._count += len(bodies) - len(dropped)
            return dropped

    def trim(self) -> list[SpoolItem]:
        """Drop the oldest items beyond ``max_items`` (a spool written with a larger bound); returns them."""
        with self._lock:
            conn = self._open()
            with _transaction(conn):
                dropped = self._drop_overflow(conn, self._count)
            self._count -= len(dropped)
            return dropped

    def peek(self, limit: int) -> list[SpoolItem]:
        """The oldest ``limit`` items, oldest first; they stay in the spool until ``remove``."""
        with self._lock:
            rows = self._open().execute("SELECT seq, body FROM spool ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [SpoolItem(seq, body) for seq, body in rows]

    def remove(self, seqs: Iterable[int]) -> int:
        """Delete these items (acknowledged or refused); returns how many were still there."""
        wanted = list(seqs)
        removed = 0
        with self._lock:
            conn = self._open()
            with _transaction(conn):
                for start in range(0, len(wanted), _DELETE_CHUNK):
                    chunk = wanted[start : start + _DELETE_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    removed += conn.execute(f"DELETE FROM spool WHERE seq IN ({marks})", chunk).rowcount
            self._count -= removed
        return removed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolClosed(f"the spool {self.path} is closed")
        return self._conn

    def _drop_overflow(self, conn: sqlite3.Connection, count: int) -> list[SpoolItem]:
        overflow = count - self.max_items
        if overflow <= 0:
            return []
        rows = conn.execute("SELECT seq, body FROM spool ORDER BY seq LIMIT ?", (overflow,)).fetchall()
        conn.execute("DELETE FROM spool WHERE seq <= ?", (rows[-1][0],))
        return [SpoolItem(seq, body) for seq, body in rows]


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (fsynced: synchronous=FULL), or ROLLBACK on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
