"""The store's identity and integrity, checked before anything starts: a damaged or missing store is never
silently replaced by an empty one.

Each store gets a random ``storeId`` when it is created, and an ``incarnation`` counted up at every start; both
are in its ``meta`` table and in a marker file beside it (``<store>.marker``, JSON, replaced atomically). The
marker outlives what can happen to the database file, so at start:

- a marker and no database (or a zero-length one, or a WAL whose database is gone) is a store that existed and
  is missing: refused;
- a database that SQLite cannot read, that fails ``PRAGMA quick_check``, or a WAL whose header is garbled (SQLite
  would silently ignore it, and with it every commit since the last checkpoint) is damaged: refused;
- a database whose incarnation is older than the marker's was restored from a backup: it gets a new ``storeId``,
  because its change-log cursors will now be given again to other changes, and the daemons must push it a full
  snapshot (they do when the ``storeId`` in a push answer changes).

Refusals are ``StoreError`` with one line naming the file and what to do; ``fresh=True`` (the operator's explicit
``--fresh-store``) moves the damaged files aside and starts an empty store instead.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import DraasError

log = logging.getLogger(__name__)

MEMORY = ":memory:"
WAL_MAGIC = (0x377F0682, 0x377F0683)
WAL_VERSION = 3007000
WAL_HEADER = 32
FRESH_HINT = "restore it from a backup, or start with --fresh-store to move it aside and begin an empty store"


class StoreError(DraasError):
    """The store cannot be used as it is; the message names the file and what to do (exit 2 at start-up)."""


@dataclass(frozen=True)
class StoreIdentity:
    store_id: str
    incarnation: int


def prepare_store(path: str, *, fresh: bool = False) -> StoreIdentity:
    """Check the store at ``path`` (creating it when none existed), count up its incarnation, write its marker."""
    if path == MEMORY:
        return StoreIdentity(uuid.uuid4().hex, 1)
    db_path = Path(path)
    marker = _marker_path(db_path)
    _check_writable_dir(db_path.parent)
    if fresh:
        _move_aside(db_path)
    remembered = _read_marker(marker)
    problem = _missing_or_damaged(db_path, remembered is not None)
    if problem:
        raise StoreError(f"store {db_path}: {problem}; {FRESH_HINT}", field="store.path")
    try:
        return _open_and_count(db_path, marker, remembered)
    except sqlite3.DatabaseError as error:
        if "readonly" in str(error):
            raise StoreError(
                f"store {db_path} is read-only: make it writable by this user", field="store.path"
            ) from None
        raise StoreError(f"store {db_path}: {_sqlite_reason(error)}; {FRESH_HINT}", field="store.path") from None
    except OSError as error:
        raise StoreError(f"store {db_path}: cannot write: {error.strerror}", field="store.path") from None


def _marker_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".marker")


def _sidecars(db_path: Path) -> list[Path]:
    return [db_path.with_name(db_path.name + suffix) for suffix in ("-wal", "-shm")]


def _check_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"data directory {directory}: cannot create it: {error.strerror}", field="dataDir") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StoreError(
            f"data directory {directory} is not writable: make it writable by this user, or pass --data-dir",
            field="dataDir",
        )


def _read_marker(marker: Path) -> StoreIdentity | None:
    try:
        data = json.loads(marker.read_text())
        return StoreIdentity(str(data["storeId"]), int(data["incarnation"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise StoreError(
            f"store marker {marker} is unreadable ({error}); delete it only if the store beside it is the right one",
            field="store.path",
        ) from None


def _missing_or_damaged(db_path: Path, existed: bool) -> str | None:
    wal = _sidecars(db_path)[0]
    if not db_path.exists():
        if wal.exists() and wal.stat().st_size > 0:
            return f"the database is missing but its write-ahead log {wal.name} is there"
        return "the database is missing but its marker says a store existed" if existed else None
    if db_path.stat().st_size == 0:
        return "the database file is empty (zero bytes)"
    if wal.exists() and wal.stat().st_size > 0 and not _wal_header_ok(wal):
        return f"its write-ahead log {wal.name} has a damaged header (SQLite would drop the commits it holds)"
    return None


def _wal_header_ok(wal: Path) -> bool:
    """SQLite's WAL header: magic, format version and a checksum over its first 24 bytes (see wal.c)."""
    with wal.open("rb") as handle:
        header = handle.read(WAL_HEADER)
    if len(header) < WAL_HEADER:
        return False
    magic, version = struct.unpack(">II", header[:8])
    if magic not in WAL_MAGIC or version != WAL_VERSION:
        return False
    big_endian = magic & 1
    words = struct.unpack((">" if big_endian else "<") + "6I", header[:24])
    s0 = s1 = 0
    for i in range(0, 6, 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return (s0, s1) == struct.unpack(">II", header[24:32])


def _open_and_count(db_path: Path, marker: Path, remembered: StoreIdentity | None) -> StoreIdentity:
    existed = db_path.exists()
    db = sqlite3.connect(str(db_path), isolation_level=None)
    try:
        if existed:
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else 'no answer'}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        stored = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('storeId', 'incarnation')").fetchall())
        store_id = stored.get("storeId")
        incarnation = int(stored.get("incarnation", 0))
        if existed and store_id is None and remembered is not None:
            raise sqlite3.DatabaseError("it has no storeId, so it is not the store its marker names")
        if store_id is None:
            store_id = uuid.uuid4().hex
        elif remembered is not None and remembered.store_id == store_id and incarnation < remembered.incarnation:
            old, store_id = store_id, uuid.uuid4().hex
            log.warning(
                "store %s is older than the one last run here (incarnation %d < %d): restored from a backup; "
                "new storeId %s (was %s), so that daemons push it a full snapshot",
                db_path, incarnation, remembered.incarnation, store_id, old,
            )
        identity = StoreIdentity(store_id, max(incarnation, remembered.incarnation if remembered else 0) + 1)
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [("storeId", identity.store_id), ("incarnation", str(identity.incarnation))],
            )
    finally:
        db.close()
    _write_marker(marker, identity)
    return identity


def _write_marker(marker: Path, identity: StoreIdentity) -> None:
    temporary = marker.with_name(marker.name + ".tmp")
    with temporary.open("w") as handle:
        json.dump({"storeId": identity.store_id, "incarnation": identity.incarnation}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, marker)


def _move_aside(db_path: Path) -> None:
    """--fresh-store: keep what was there (renamed, never deleted) and start empty."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path in (db_path, *_sidecars(db_path), _marker_path(db_path)):
        if path.exists():
            aside = path.with_name(f"{path.name}.aside-{stamp}")
            os.replace(path, aside)
            log.warning("--fresh-store: moved %s to %s", path, aside)


def _sqlite_reason(error: sqlite3.DatabaseError) -> str:
    text = str(error)
    if "not a database" in text or "malformed" in text:
        return f"it is damaged ({text})"
    return text


__all__ = ["MEMORY", "StoreError", "StoreIdentity", "prepare_store"]
