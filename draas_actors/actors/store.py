"""The runtime store: instance records and the append-only change log, in SQLite (WAL mode).

Writes are group-committed: each write is buffered and a ``Flush`` is told to ourselves once; the inbox is
FIFO, so every write queued before that ``Flush`` lands in the same transaction. Reads flush first, so a
reader sees everything told to the store before its question.

The audit of rejected requests is buffered the same way but committed at most every ``AUDIT_FLUSH_DELAY``: a flood
of folded rejections re-sends one entry with a growing count, and that must not cost a commit per request.

Acknowledgements: a ``Sync`` carries a writer's ``Ack`` behind its writes; it is settled after the commit that holds
them (see ``commit.py``), so the HTTP layer answers 2xx only for what is durable.

A commit that fails (a full or failing disk) does not crash the actor: what was buffered stays buffered, the acks
waiting on it fail (their callers answer 503, nothing acknowledged), ``StoreHealth`` says why so that writes are
refused up front and ``/readyz`` fails, and the commit is retried with backoff until the disk takes it again.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import pykka

from ..commit import Ack, Sync
from ..errors import Conflict, CursorExpired, Unavailable
from ..feed import ChangeFeed
from ..messages import (
    AppendChange,
    AuditEntry,
    ChangesPage,
    CheckWritable,
    DeleteRecord,
    Flush,
    InstanceList,
    LastCursor,
    ListAudit,
    ListRecords,
    LoadRecord,
    LoadRecords,
    QueryChanges,
    QueryRecent,
    RecordAudit,
    RecordLoaded,
    SaveRecord,
    StatusChanged,
)
from ..metrics import Metrics
from ..model import ChangeKind, InstanceId, Platform, Status
from ..records import InstanceRecord, record_from_json, record_to_json
from ..scheduler import Scheduler
from .watched import WatchedActor

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY, platform TEXT NOT NULL, status TEXT NOT NULL,
    version INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    cursor INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, platform TEXT NOT NULL,
    old_status TEXT NOT NULL, new_status TEXT NOT NULL, source TEXT NOT NULL,
    ts REAL NOT NULL, metadata TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'status', traceparent TEXT);
CREATE INDEX IF NOT EXISTS changes_ts ON changes (ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, identity TEXT, client TEXT NOT NULL, method TEXT NOT NULL,
    route TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
"""
AUDIT_FLUSH_DELAY = 0.2
RETRY_FIRST = 0.1  # seconds before the first retry of a failed commit; doubled up to RETRY_MAX
RETRY_MAX = 5.0
# A folded repeat names its row by the first rejection's time and everything folding compares.
_AuditKey = tuple[float, str | None, str, str, int]


@dataclass(frozen=True, kw_only=True)
class Retention:
    max_changes: int = 100_000
    max_age: float = 7 * 24 * 3600.0
    prune_interval: float = 30.0


class Durability(enum.Enum):
    """What a commit survives. SQLite in WAL mode with ``synchronous=NORMAL`` keeps every commit through a crash
    of this process (the WAL is written before the answer), but a power loss or an OS crash may take the last
    commits; ``synchronous=FULL`` syncs the WAL at every commit, so a commit survives those too, at the cost of
    one fsync per group commit."""

    PROCESS_CRASH = "process-crash"
    POWER_LOSS = "power-loss"


SYNCHRONOUS = {Durability.PROCESS_CRASH: "NORMAL", Durability.POWER_LOSS: "FULL"}


class StoreHealth:
    """Whether the store can commit now, shared with the HTTP layer so that it refuses writes up front while it
    cannot (503 with Retry-After) instead of applying them and failing to acknowledge. Set by the store's thread
    only; each field is one reference assignment, read without a lock."""

    def __init__(self) -> None:
        self.failure: str | None = None
        self.retry_in = RETRY_FIRST

    def refusal(self) -> Unavailable | None:
        if self.failure is None:
            return None
        return Unavailable(
            f"{self.failure}; nothing was acknowledged, retry", retry_after=max(1, math.ceil(self.retry_in))
        )


@dataclass(frozen=True)
class _Prune:
    pass


@dataclass(frozen=True)
class _Retry:
    pass


@dataclass(frozen=True)
class _FlushAudit:
    pass


class StoreActor(WatchedActor):
    kind = "store"

    def __init__(
        self,
        *,
        path: str,
        retention: Retention,
        scheduler: Scheduler,
        store_id: str = "",
        durability: Durability = Durability.PROCESS_CRASH,
        health: StoreHealth | None = None,
        watcher: Any = None,
        metrics: Metrics | None = None,
        feed: ChangeFeed | None = None,
    ) -> None:
        super().__init__(watcher=watcher, key="store")
        self.metrics = metrics or Metrics()
        self.path = path
        self.retention = retention
        self.scheduler = scheduler
        self.store_id = store_id
        self.durability = durability
        self.health = health or StoreHealth()
        self.feed = feed or ChangeFeed()  # told each commit's changes, after the commit
        self.db: sqlite3.Connection | None = None
        self.records: dict[str, InstanceRecord] = {}
        self.deletions: dict[str, float] = {}  # id -> created_at of the deleted instance, not yet committed
        self.acks: list[Ack] = []  # settled by the next commit
        # id -> created_at of the deleted instance. Saves reach the store through the bus and deletions directly,
        # so a deleted instance's last saves can arrive after its deletion; a record of an instance created since
        # (a later created_at) is a new instance and is kept. Versions order saves within one instance only.
        self.tombstones: dict[str, float] = {}
        self.changes: list[StatusChanged] = []
        self.audit: dict[_AuditKey, AuditEntry] = {}
        self.flush_pending = False
        self.audit_flush_pending = False
        self.max_cursor = 0
        self.pruned_through = 0

    def started(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={SYNCHRONOUS[self.durability]}")
        # A store restarted while its predecessor was failing has no retry timer of its own: its first commit
        # finds out afresh whether the disk takes writes.
        self.health.failure = None
        db.executescript(SCHEMA)
        _add_change_columns(db)
        self.db = db
        self.max_cursor = db.execute("SELECT COALESCE(MAX(cursor), 0) FROM changes").fetchone()[0]
        row = db.execute("SELECT value FROM meta WHERE key='pruned_through'").fetchone()
        self.pruned_through = int(row[0]) if row else 0
        self.max_cursor = max(self.max_cursor, self.pruned_through)
        self.feed.started(self.max_cursor)
        self._prune()
        self.scheduler.call_later(self.retention.prune_interval, self.actor_ref, _Prune())

    def on_stop(self) -> None:
        if self.db is not None:
            self._flush(retry=True)
            if self.failure is not None:
                log.error("store stopped with %d changes and %d records not committed (never acknowledged): %s",
                          len(self.changes), len(self.records), self.failure)
            self.db.close()

    @property
    def failure(self) -> str | None:
        return self.health.failure

    def on_receive(self, message: Any) -> Any:
        match message:
            case SaveRecord(record, ack, change):
                if change is not None:
                    self._append(change)
                if record.created_at > self.tombstones.get(record.instance_id, -math.inf):
                    current = self.records.get(record.instance_id)
                    if current is None or (record.created_at, record.version) >= (current.created_at, current.version):
                        self.records[record.instance_id] = record
                        self._schedule_flush()
                if ack is not None:
                    self._take(ack)
            case AppendChange(change):
                self._append(change)
            case DeleteRecord(instance_id, created_at):
                tombstone = max(created_at, self.tombstones.get(instance_id, -math.inf))
                self.tombstones[instance_id] = tombstone
                unsaved = self.records.get(instance_id)
                if unsaved is not None and unsaved.created_at <= tombstone:
                    del self.records[instance_id]
                self.deletions[instance_id] = tombstone
                self._schedule_flush()
            case Sync(ack):
                self._take(ack)
            case Flush():
                self.flush_pending = False
                self._flush()
            case _Retry():
                self._flush(retry=True)
                if self.failure is not None:
                    self.health.retry_in = min(self.health.retry_in * 2, RETRY_MAX)
                    self.scheduler.call_later(self.health.retry_in, self.actor_ref, _Retry())
            case RecordAudit(entry):
                key = _audit_key(entry)
                buffered = self.audit.get(key)
                if buffered is None or entry.count > buffered.count:
                    self.audit[key] = entry
                if not self.audit_flush_pending:
                    self.audit_flush_pending = True
                    self.scheduler.call_later(AUDIT_FLUSH_DELAY, self.actor_ref, _FlushAudit())
            case _FlushAudit():
                self.audit_flush_pending = False
                self._flush()
            case ListAudit(since, limit):
                return self._audit_log(since, limit)
            case _Prune():
                self._prune()
                self.scheduler.call_later(self.retention.prune_interval, self.actor_ref, _Prune())
            case LoadRecords():
                self._flush()
                return [record_from_json(r) for (r,) in self._db().execute("SELECT record FROM instances")]
            case LoadRecord(instance_id, reply_to):
                self._flush()
                row = self._db().execute(
                    "SELECT record FROM instances WHERE instance_id=?", (instance_id,)
                ).fetchone()
                loaded = record_from_json(row[0]) if row else None
                if reply_to is not None:
                    try:
                        reply_to.tell(RecordLoaded(instance_id, loaded))
                    except pykka.ActorDeadError:
                        log.warning("the record of %s was loaded for an actor that is gone", instance_id)
                return loaded
            case ListRecords(platform=platform, status=status):
                return self._list(platform, status)
            case QueryChanges(after, limit, store_id):
                return self._changes_after(after, limit, store_id)
            case QueryRecent(since, statuses, limit, configuration, instance_id):
                return self._recent(since, statuses, limit, configuration, instance_id)
            case LastCursor():
                return self.max_cursor
            case CheckWritable():
                # A write of our own, so that a disk that filled up since the last commit is found now.
                self._flush()
                if self.failure is None:
                    try:
                        self._heartbeat()
                    except sqlite3.Error as error:
                        self._enter_failure(error)
                return self.failure
            case _:
                return super().on_receive(message)
        return None

    def _db(self) -> sqlite3.Connection:
        assert self.db is not None, "store not started"
        return self.db

    def _append(self, change: StatusChanged) -> None:
        self.changes.append(change)
        self.max_cursor = max(self.max_cursor, change.cursor)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self.flush_pending:
            self.flush_pending = True
            self.actor_ref.tell(Flush())

    def _flush(self, *, retry: bool = False) -> None:
        """Commit what is buffered, then settle the acks behind it. While the store is failing only the retry
        timer (``retry``) tries again: a reader gets what is committed, without waiting on a disk that is full."""
        if self.failure is not None and not retry:
            return
        try:
            if self.records or self.changes or self.audit or self.deletions:
                changes = self.changes
                with self.metrics.store_flush.time():
                    self._commit()
                self.feed.committed(changes)
            elif self.failure is not None:
                self._heartbeat()  # nothing held back: a write of our own says whether the disk takes writes again
        except sqlite3.Error as error:
            self._enter_failure(error)
            return
        self._settle()
        if self.failure is not None:
            log.warning("store commits again after: %s", self.failure)
            self.health.failure = None
            self.health.retry_in = RETRY_FIRST

    def _take(self, ack: Ack) -> None:
        """Settle ``ack`` with the next commit; at once a failure while the store cannot commit."""
        if self.failure is not None:
            ack.failed(self.failure)
        else:
            self.acks.append(ack)
            self._schedule_flush()

    def _heartbeat(self) -> None:
        self._db().execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('heartbeat', ?)", (str(time.time()),))

    def _settle(self) -> None:
        acks, self.acks = self.acks, []
        for ack in acks:
            ack.committed()

    def _enter_failure(self, error: sqlite3.Error) -> None:
        """Keep what is buffered for the retry, fail the acks waiting on it, and retry with backoff."""
        reason = f"the store cannot commit: {error}"
        acks, self.acks = self.acks, []
        for ack in acks:
            ack.failed(reason)
        if self.failure is None:
            log.error("%s; refusing writes (503) and retrying", reason)
            self.health.retry_in = RETRY_FIRST
            self.scheduler.call_later(RETRY_FIRST, self.actor_ref, _Retry())
        self.health.failure = reason

    def _commit(self) -> None:
        """One transaction with everything buffered; on an error nothing is taken out of the buffers."""
        db = self._db()
        with db:
            db.execute("BEGIN")
            db.executemany(
                "DELETE FROM instances WHERE instance_id=?", [(instance_id,) for instance_id in self.deletions]
            )
            db.executemany(
                "INSERT INTO instances (instance_id, platform, status, version, record) VALUES (?,?,?,?,?)"
                " ON CONFLICT(instance_id) DO UPDATE SET platform=excluded.platform,"
                " status=excluded.status, version=excluded.version, record=excluded.record"
                " WHERE excluded.version >= instances.version",
                [
                    (r.instance_id, r.platform.value, r.status.value, r.version, record_to_json(r))
                    for r in self.records.values()
                ],
            )
            db.executemany(
                f"INSERT INTO changes ({CHANGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        c.cursor, c.instance_id, c.platform.value, c.old_status.value,
                        c.new_status.value, c.source, c.timestamp, json.dumps(dict(c.metadata)), c.kind.value,
                        c.traceparent,
                    )
                    for c in self.changes
                ],
            )
            for key, entry in self.audit.items():
                # The row of an earlier flush, if the first of these rejections was committed already.
                updated = db.execute(
                    "UPDATE audit SET count=MAX(count, ?) WHERE time=? AND identity IS ? AND client=? AND route=?"
                    " AND status=?",
                    (entry.count, *key),
                ).rowcount
                if not updated:
                    db.execute(
                        "INSERT INTO audit (time, identity, client, method, route, status, reason, count)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (entry.time, entry.identity, entry.client, entry.method, entry.route, entry.status,
                         entry.reason, entry.count),
                    )
        self.records, self.changes, self.audit, self.deletions = {}, [], {}, {}

    def _prune(self) -> None:
        self._flush()
        if self.failure is not None:
            return  # pruning writes too; the next prune, once the store commits again
        try:
            self._prune_committed()
        except sqlite3.Error as error:
            self._enter_failure(error)

    def _prune_committed(self) -> None:
        db = self._db()
        horizon = time.time() - self.retention.max_age
        with db:
            db.execute("BEGIN")
            pruned = db.execute(
                "DELETE FROM audit WHERE time < ? OR id <= (SELECT COALESCE(MAX(id), 0) FROM audit) - ?",
                (horizon, self.retention.max_changes),
            ).rowcount
        if pruned:
            log.info("audit pruned by %d entries", pruned)
        by_count = self.max_cursor - self.retention.max_changes
        row = db.execute(
            "SELECT MAX(cursor) FROM changes WHERE ts < ? OR cursor <= ?", (horizon, by_count)
        ).fetchone()
        through = row[0]
        if through is None:
            return
        with db:
            db.execute("BEGIN")
            db.execute("DELETE FROM changes WHERE cursor <= ?", (through,))
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('pruned_through', ?)", (str(through),)
            )
        self.pruned_through = max(self.pruned_through, through)
        log.info("change log pruned through cursor %d", through)

    def _list(self, platform: Platform | None, status: Status | None) -> InstanceList:
        self._flush()
        # The feed's head, not max_cursor: a store that cannot commit holds changes not yet in the log (nor in
        # the records read below); the feed is told each commit's changes by this thread, after the commit.
        cursor = self.feed.head
        sql, args = "SELECT record FROM instances WHERE 1=1", list[str]()
        if platform is not None:
            sql, args = sql + " AND platform=?", [*args, platform.value]
        if status is not None:
            sql, args = sql + " AND status=?", [*args, status.value]
        records = [record_from_json(r) for (r,) in self._db().execute(sql + " ORDER BY instance_id", args)]
        return InstanceList(records, cursor)

    def _changes_after(self, after: int, limit: int, store_id: str | None) -> ChangesPage:
        self._flush()
        if store_id is not None and store_id != self.store_id:
            raise Conflict(
                f"storeId {store_id!r} is not this store's ({self.store_id!r})",
                field="storeId",
                detail="the store was replaced or restored since your cursor was taken: resync with "
                "GET /api/instances, then follow GET /api/status/changes from the cursor of the first page",
            )
        if after > self.max_cursor:
            raise Conflict(
                f"cursor {after} is past the head of the change log ({self.max_cursor})",
                field="after",
                detail="a cursor from another store (or a wiped one): resync with GET /api/instances, then follow "
                f"GET /api/status/changes?after={self.max_cursor}",
            )
        if after < self.pruned_through:
            raise CursorExpired(
                f"cursor {after} is older than the retained change log",
                field="after",
                pruned_through=self.pruned_through,
                detail=(
                    f"changes up to cursor {self.pruned_through} were pruned by retention; resync with "
                    f"GET /api/instances, then follow GET /api/status/changes?after={self.pruned_through}"
                ),
            )
        rows = self._db().execute(
            f"SELECT {CHANGE_COLUMNS} FROM changes WHERE cursor > ? ORDER BY cursor LIMIT ?", (after, limit)
        ).fetchall()
        changes = tuple(_change_from_row(r) for r in rows)
        return ChangesPage(changes, changes[-1].cursor if changes else max(after, 0), self.store_id)

    def _recent(
        self, since: float, statuses: frozenset[Status] | None, limit: int, configuration: bool,
        instance_id: str | None = None,
    ) -> tuple[StatusChanged, ...]:
        self._flush()
        sql, args = f"SELECT {CHANGE_COLUMNS} FROM changes WHERE ts >= ?", list[object]([since])
        if instance_id is not None:
            # No index on instance_id (every commit would pay for it): the scan walks back from the newest cursor
            # and stops at ``limit`` matches, bounded by retention ([store] maxChanges).
            sql += " AND instance_id = ?"
            args.append(instance_id)
        if statuses is not None:
            # A configuration change repeats the status it left unchanged: it is found by its kind, never its status.
            sql += f" AND ((kind=? AND new_status IN ({','.join('?' * len(statuses))})) OR (kind=? AND ?))"
            args += [ChangeKind.STATUS.value, *(s.value for s in statuses), ChangeKind.CONFIGURATION.value,
                     configuration]
        rows = self._db().execute(sql + " ORDER BY cursor DESC LIMIT ?", [*args, limit]).fetchall()
        return tuple(_change_from_row(r) for r in reversed(rows))

    def _audit_log(self, since: float | None, limit: int) -> tuple[AuditEntry, ...]:
        """Newest first."""
        self._flush()
        rows = self._db().execute(
            "SELECT time, identity, client, method, route, status, reason, count FROM audit"
            " WHERE time >= ? ORDER BY time DESC, id DESC LIMIT ?",
            (since if since is not None else float("-inf"), limit),
        ).fetchall()
        return tuple(
            AuditEntry(time=t, identity=i, client=c, method=m, route=r, status=s, reason=reason, count=n)
            for t, i, c, m, r, s, reason, n in rows
        )


def _audit_key(entry: AuditEntry) -> _AuditKey:
    return (entry.time, entry.identity, entry.client, entry.route, entry.status)


CHANGE_COLUMNS = "cursor, instance_id, platform, old_status, new_status, source, ts, metadata, kind, traceparent"
# Columns the change log gained after its first release, with what an older row holds: a log written before changes
# had a kind holds status changes only, and one written before changes kept a trace holds none.
_ADDED_CHANGE_COLUMNS = {"kind": "TEXT NOT NULL DEFAULT 'status'", "traceparent": "TEXT"}


def _add_change_columns(db: sqlite3.Connection) -> None:
    """Bring an older database's change log up to ``SCHEMA``, in place (its rows are kept)."""
    columns = {name for _, name, *_ in db.execute("PRAGMA table_info(changes)")}
    for name, definition in _ADDED_CHANGE_COLUMNS.items():
        if name not in columns:
            db.execute(f"ALTER TABLE changes ADD COLUMN {name} {definition}")


def _change_from_row(row: tuple[Any, ...]) -> StatusChanged:
    cursor, instance_id, platform, old, new, source, ts, metadata, kind, traceparent = row
    return StatusChanged(
        instance_id=InstanceId(instance_id),
        platform=Platform(platform),
        old_status=Status(old),
        new_status=Status(new),
        source=source,
        timestamp=ts,
        metadata=json.loads(metadata),
        cursor=cursor,
        kind=ChangeKind(kind),
        traceparent=traceparent,
    )
