"""The webhooks and their delivery state, durable: a connection of its own to the store's SQLite file (WAL mode,
so it never blocks the store's reader; a busy timeout, so that the two writers wait for each other rather than fail).

Each webhook row holds its delivered cursor: every change up to it was delivered, dead-lettered or filtered out.
``webhook_deliveries`` holds the deliveries that are not simply done: the one being retried (``failed``) and the
dead letters (``dead``), each with the exact body that was signed, so that a retry of a dead one sends the same
event even after the change log pruned its change. A failing commit raises ``Unavailable`` (503 + Retry-After):
nothing is answered 2xx that is not committed.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import Unavailable
from .spec import Filter, Webhook, WebhookId, WebhookSpec, filter_from_view, filter_view

FAILED, DEAD = "failed", "dead"
STATES = (FAILED, DEAD)
BUSY_TIMEOUT = 5.0  # seconds a write waits for the store's commit (or the store for ours)

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    filter TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    cursor INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt REAL NOT NULL,
    last_attempt REAL NOT NULL,
    next_attempt REAL,
    last_error TEXT NOT NULL,
    body BLOB NOT NULL,
    traceparent TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_state ON webhook_deliveries (webhook_id, state, id);
"""
_WEBHOOK_COLUMNS = "id, url, description, filter, secret, created_at, updated_at"
_DELIVERY_COLUMNS = (
    "id, webhook_id, cursor, event_id, event_type, state, attempts, first_attempt, last_attempt, next_attempt, "
    "last_error, body, traceparent"
)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """A delivery that is not simply done: being retried (``failed``) or dead-lettered (``dead``)."""

    delivery_id: int = 0  # 0 until stored
    webhook_id: WebhookId
    cursor: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    first_attempt: float
    last_attempt: float
    next_attempt: float | None
    last_error: str
    body: bytes
    traceparent: str | None = None


class Registry:
    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        self._lock = threading.Lock()  # one connection, shared by the API's threads and the delivery threads
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise Unavailable(f"the webhooks store cannot commit: {error}", retry_after=1) from error

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as error:
                raise Unavailable(f"the webhooks store cannot be read: {error}", retry_after=1) from error

    # -- webhooks ---------------------------------------------------------------------------------

    def create(self, webhook: Webhook, cursor: int) -> None:
        with self._transaction() as db:
            db.execute(
                f"INSERT INTO webhooks ({_WEBHOOK_COLUMNS}, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*_webhook_row(webhook), cursor),
            )

    def update(self, webhook: Webhook) -> bool:
        with self._transaction() as db:
            row = _webhook_row(webhook)
            changed = db.execute(
                "UPDATE webhooks SET url=?, description=?, filter=?, secret=?, created_at=?, updated_at=? WHERE id=?",
                (*row[1:], row[0]),
            ).rowcount
        return changed > 0

    def delete(self, webhook_id: WebhookId) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM webhook_deliveries WHERE webhook_id=?", (webhook_id,))
            return db.execute("DELETE FROM webhooks WHERE id=?", (webhook_id,)).rowcount > 0

    def get(self, webhook_id: str) -> Webhook | None:
        rows = self._read(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks WHERE id=?", (webhook_id,))
        return _webhook(rows[0]) if rows else None

    def all(self) -> list[Webhook]:
        return [_webhook(row) for row in self._read(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id")]

    def count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM webhooks")[0][0])

    def cursor(self, webhook_id: WebhookId) -> int | None:
        rows = self._read("SELECT cursor FROM webhooks WHERE id=?", (webhook_id,))
        return int(rows[0][0]) if rows else None

    def set_cursor(self, webhook_id: WebhookId, cursor: int) -> None:
        """Every change up to ``cursor`` is done with (delivered, dead-lettered or not for this webhook)."""
        with self._transaction() as db:
            db.execute("UPDATE webhooks SET cursor=? WHERE id=? AND cursor<?", (cursor, webhook_id, cursor))

    # -- deliveries -------------------------------------------------------------------------------

    def save_delivery(self, delivery: Delivery, *, max_dead: int | None = None, cursor: int | None = None) -> Delivery:
        """Insert (``delivery_id`` 0) or update a delivery; returns it with its id. With ``max_dead``, the oldest
        dead letters of its webhook beyond that many are forgotten; with ``cursor``, its webhook's cursor moves
        there in the same transaction (a dead letter is done with)."""
        row = _delivery_row(delivery)
        with self._transaction() as db:
            if delivery.delivery_id:
                db.execute(
                    f"UPDATE webhook_deliveries SET ({_DELIVERY_COLUMNS}) = "
                    f"({', '.join('?' * len(row))}) WHERE id=?",
                    (*row, delivery.delivery_id),
                )
                saved = delivery
            else:
                placeholders = ", ".join("?" * (len(row) - 1))
                inserted = db.execute(
                    f"INSERT INTO webhook_deliveries ({_DELIVERY_COLUMNS}) VALUES (NULL, {placeholders})", row[1:]
                )
                saved = _replace_id(delivery, int(inserted.lastrowid or 0))
            if max_dead is not None:
                db.execute(
                    "DELETE FROM webhook_deliveries WHERE webhook_id=? AND state=? AND id NOT IN "
                    "(SELECT id FROM webhook_deliveries WHERE webhook_id=? AND state=? ORDER BY id DESC LIMIT ?)",
                    (delivery.webhook_id, DEAD, delivery.webhook_id, DEAD, max_dead),
                )
            if cursor is not None:
                db.execute(
                    "UPDATE webhooks SET cursor=? WHERE id=? AND cursor<?", (cursor, delivery.webhook_id, cursor)
                )
        return saved

    def delivered(self, delivery_id: int, *, cursor: tuple[WebhookId, int] | None = None) -> None:
        """A delivery that had failed went through: forget it (and, with ``cursor``, advance its webhook's)."""
        with self._transaction() as db:
            db.execute("DELETE FROM webhook_deliveries WHERE id=?", (delivery_id,))
            if cursor is not None:
                db.execute("UPDATE webhooks SET cursor=? WHERE id=? AND cursor<?", (cursor[1], cursor[0], cursor[1]))

    def deliveries(self, webhook_id: WebhookId, state: str | None, limit: int) -> list[Delivery]:
        """Newest first."""
        where, args = ("AND state=?", (state,)) if state else ("", ())
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id=? {where} ORDER BY id DESC LIMIT ?",
            (webhook_id, *args, limit),
        )
        return [_delivery(row) for row in rows]

    def delivery(self, webhook_id: WebhookId, delivery_id: int) -> Delivery | None:
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id=? AND id=?", (webhook_id, delivery_id)
        )
        return _delivery(rows[0]) if rows else None

    def failing(self, webhook_id: WebhookId, cursor: int) -> Delivery | None:
        """The delivery of change ``cursor`` being retried, left by a control plane that stopped meanwhile."""
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id=? AND cursor=? AND state=? "
            "ORDER BY id DESC LIMIT 1",
            (webhook_id, cursor, FAILED),
        )
        return _delivery(rows[0]) if rows else None


def _webhook_row(webhook: Webhook) -> tuple[object, ...]:
    spec = webhook.spec
    return (
        webhook.webhook_id, spec.url, spec.description, json.dumps(filter_view(spec.filter)), spec.secret,
        webhook.created_at, webhook.updated_at,
    )


def _webhook(row: tuple[Any, ...]) -> Webhook:
    webhook_id, url, description, raw_filter, secret, created_at, updated_at = row
    spec = WebhookSpec(
        url=str(url), description=str(description), filter=_load_filter(str(raw_filter)), secret=str(secret)
    )
    return Webhook(WebhookId(str(webhook_id)), spec, float(created_at), float(updated_at))


def _load_filter(text: str) -> Filter:
    return filter_from_view(json.loads(text))


def _delivery_row(d: Delivery) -> tuple[object, ...]:
    return (
        d.delivery_id, d.webhook_id, d.cursor, d.event_id, d.event_type, d.state, d.attempts, d.first_attempt,
        d.last_attempt, d.next_attempt, d.last_error, d.body, d.traceparent,
    )


def _delivery(row: tuple[Any, ...]) -> Delivery:
    (delivery_id, webhook_id, cursor, event_id, event_type, state, attempts, first_attempt, last_attempt,
     next_attempt, last_error, body, traceparent) = row
    return Delivery(
        delivery_id=int(delivery_id),
        webhook_id=WebhookId(str(webhook_id)),
        cursor=int(cursor),
        event_id=str(event_id),
        event_type=str(event_type),
        state=str(state),
        attempts=int(attempts),
        first_attempt=float(first_attempt),
        last_attempt=float(last_attempt),
        next_attempt=None if next_attempt is None else float(next_attempt),
        last_error=str(last_error),
        body=bytes(body),
        traceparent=None if traceparent is None else str(traceparent),
    )


def _replace_id(delivery: Delivery, delivery_id: int) -> Delivery:
    return dataclasses.replace(delivery, delivery_id=delivery_id)


__all__ = ["DEAD", "FAILED", "STATES", "Delivery", "Registry"]
