"""The change log's kind: status changes and configuration changes, in a real StoreActor, and for subscribers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pykka
import pytest

from draas_actors.actors.store import Retention, StoreActor
from draas_actors.messages import (
    AppendChange,
    ChangesPage,
    QueryChanges,
    QueryRecent,
    StatusChanged,
    SubscriptionFilter,
)
from draas_actors.model import ChangeKind, InstanceId, Platform, Status
from draas_actors.scheduler import Scheduler

NOW = float(int(time.time()))  # recent: the store prunes changes older than its retention
# The change log as a store written before changes had a kind created it.
OLD_SCHEMA = """
CREATE TABLE changes (
    cursor INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, platform TEXT NOT NULL,
    old_status TEXT NOT NULL, new_status TEXT NOT NULL, source TEXT NOT NULL,
    ts REAL NOT NULL, metadata TEXT NOT NULL);
"""


def change(cursor: int, new: Status, kind: ChangeKind = ChangeKind.STATUS) -> StatusChanged:
    old = new if kind is ChangeKind.CONFIGURATION else Status.UNKNOWN
    return StatusChanged(
        instance_id=InstanceId("web-1"), platform=Platform.DOCKER, old_status=old, new_status=new,
        source="DockerDaemon", timestamp=NOW + cursor, metadata={}, cursor=cursor, kind=kind,
    )


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    scheduler = Scheduler()
    yield scheduler
    scheduler.stop()


@pytest.fixture
def start_store(tmp_path: Path, scheduler: Scheduler) -> Iterator[Any]:
    stores: list[pykka.ActorRef[Any]] = []

    def start() -> pykka.ActorRef[Any]:
        store = StoreActor.start(path=str(tmp_path / "store.sqlite3"), retention=Retention(), scheduler=scheduler)
        stores.append(store)
        return store

    yield start
    for store in stores:
        if store.is_alive():
            store.stop()


def recent(store: pykka.ActorRef[Any], statuses: frozenset[Status] | None, configuration: bool = False) -> list[int]:
    found = cast("tuple[StatusChanged, ...]", store.ask(QueryRecent(0.0, statuses, 100, configuration), timeout=5))
    return [c.cursor for c in found]


def test_the_store_keeps_each_change_s_kind_and_finds_configuration_changes_by_kind(start_store: Any) -> None:
    store = start_store()
    store.tell(AppendChange(change(1, Status.RUNNING)))
    store.tell(AppendChange(change(2, Status.RUNNING, ChangeKind.CONFIGURATION)))
    store.tell(AppendChange(change(3, Status.FAILED)))

    page = cast(ChangesPage, store.ask(QueryChanges(0, 10), timeout=5))
    assert [c.kind for c in page.changes] == [ChangeKind.STATUS, ChangeKind.CONFIGURATION, ChangeKind.STATUS]
    assert recent(store, None) == [1, 2, 3]
    assert recent(store, frozenset({Status.RUNNING})) == [1]  # a configuration change is no move into Running
    assert recent(store, frozenset(), configuration=True) == [2]
    assert recent(store, frozenset({Status.FAILED}), configuration=True) == [2, 3]


def test_a_change_log_written_before_kinds_reads_as_status_changes(tmp_path: Path, start_store: Any) -> None:
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO changes VALUES (1, 'web-1', 'docker', 'Unknown', 'Running', 'd', ?, '{}')", (NOW,))
    db.close()
    store = start_store()
    store.tell(AppendChange(change(2, Status.RUNNING, ChangeKind.CONFIGURATION)))
    page = cast(ChangesPage, store.ask(QueryChanges(0, 10), timeout=5))
    assert [(c.cursor, c.kind) for c in page.changes] == [(1, ChangeKind.STATUS), (2, ChangeKind.CONFIGURATION)]


def test_a_subscription_filter_on_statuses_skips_configuration_changes_and_one_on_kinds_selects_them() -> None:
    status, configuration = change(1, Status.RUNNING), change(2, Status.RUNNING, ChangeKind.CONFIGURATION)
    running = SubscriptionFilter(statuses=frozenset({Status.RUNNING}))
    configured = SubscriptionFilter(kinds=frozenset({ChangeKind.CONFIGURATION}))
    assert (running.matches(status), running.matches(configuration)) == (True, False)
    assert (configured.matches(status), configured.matches(configuration)) == (False, True)
    assert SubscriptionFilter().matches(configuration)
