"""W3C trace context on a push: the traceparent read (header and per-update field), kept by the store, shown by the
change view. The instance actor's part is in ``test_instance_actor.py``."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pykka
import pytest

from draas_actors.actors.store import Retention, StoreActor
from draas_actors.errors import InvalidInput
from draas_actors.messages import AppendChange, ChangesPage, QueryChanges, StatusChanged
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.scheduler import Scheduler
from draas_actors.tracecontext import parse_traceparent
from draas_actors.wire import change_view, parse_status_update, parse_status_updates, plainly_valid_update

# The W3C specification's own example.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
UPDATE: dict[str, Any] = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}
NOW = float(int(time.time()))  # recent: the store prunes changes older than its retention


@pytest.mark.parametrize(
    "text",
    [
        TRACEPARENT.upper(),  # lower-case hex only
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # an all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # an all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
        TRACEPARENT + "-more",  # version 00 is exactly 55 characters
        TRACEPARENT + "\n",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01more",  # a later version goes on after a "-" only
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  # the dashes in the wrong places
        "",
        42,
        None,
    ],
)
def test_what_w3c_trace_context_refuses_is_no_traceparent(text: object) -> None:
    assert parse_traceparent(text) is None


def test_a_version_00_traceparent_is_kept_as_given_and_a_later_version_is_read_as_00() -> None:
    assert parse_traceparent(TRACEPARENT) == TRACEPARENT
    assert parse_traceparent("cc" + TRACEPARENT[2:] + "-what-a-later-version-adds") == TRACEPARENT
    assert parse_traceparent("01" + TRACEPARENT[2:]) == TRACEPARENT


def test_an_update_s_traceparent_field_becomes_the_report_s_and_wins_over_the_push_s() -> None:
    own = parse_status_update({**UPDATE, "traceparent": TRACEPARENT}, received_at=NOW, traceparent=OTHER)
    assert own.traceparent == TRACEPARENT
    inherited = parse_status_update(UPDATE, received_at=NOW, traceparent=OTHER)
    assert inherited.traceparent == OTHER
    null = parse_status_update({**UPDATE, "traceparent": None}, received_at=NOW, traceparent=OTHER)
    assert null.traceparent == OTHER  # null is "none of its own", as for metadata
    assert parse_status_update(UPDATE, received_at=NOW).traceparent is None
    spelled = parse_status_update({**UPDATE, "TraceParent": TRACEPARENT}, received_at=NOW)
    assert spelled.traceparent == TRACEPARENT  # property names match in any case, as for the others


def test_an_update_with_a_valid_traceparent_takes_the_fast_path() -> None:
    assert plainly_valid_update({**UPDATE, "traceparent": TRACEPARENT})
    assert not plainly_valid_update({**UPDATE, "traceparent": TRACEPARENT.upper()})


def test_an_invalid_traceparent_field_is_refused_naming_it_and_in_a_batch_its_item() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_status_update({**UPDATE, "traceparent": TRACEPARENT.upper()}, received_at=NOW)
    assert caught.value.field == "traceparent"
    assert "not a W3C traceparent" in caught.value.message
    good, bad = parse_status_updates([UPDATE, {**UPDATE, "traceparent": "00-xyz"}], received_at=NOW, traceparent=OTHER)
    assert not isinstance(good, InvalidInput) and good.traceparent == OTHER
    assert isinstance(bad, InvalidInput) and bad.field == "[1].traceparent"


def _change(cursor: int, traceparent: str | None) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId("web-1"), platform=Platform.DOCKER, old_status=Status.UNKNOWN,
        new_status=Status.RUNNING, source="DockerDaemon", timestamp=NOW + cursor, metadata={}, cursor=cursor,
        traceparent=traceparent,
    )


def test_the_change_view_shows_the_traceparent_or_null() -> None:
    assert change_view(_change(1, TRACEPARENT))["traceparent"] == TRACEPARENT
    assert change_view(_change(1, None))["traceparent"] is None


@pytest.fixture
def start_store(tmp_path: Path) -> Iterator[Any]:
    scheduler = Scheduler()
    stores: list[pykka.ActorRef[Any]] = []

    def start() -> pykka.ActorRef[Any]:
        store = StoreActor.start(path=str(tmp_path / "store.sqlite3"), retention=Retention(), scheduler=scheduler)
        stores.append(store)
        return store

    yield start
    for store in stores:
        if store.is_alive():
            store.stop()
    scheduler.stop()


def _page(store: pykka.ActorRef[Any]) -> list[tuple[int, str | None]]:
    page = cast(ChangesPage, store.ask(QueryChanges(0, 10), timeout=5))
    return [(c.cursor, c.traceparent) for c in page.changes]


def test_the_store_keeps_each_change_s_traceparent_across_a_restart(start_store: Any) -> None:
    store = start_store()
    store.tell(AppendChange(_change(1, TRACEPARENT)))
    store.tell(AppendChange(_change(2, None)))
    assert _page(store) == [(1, TRACEPARENT), (2, None)]
    store.stop()
    assert _page(start_store()) == [(1, TRACEPARENT), (2, None)]


# The change log as a store written before changes kept a trace created it (it had kinds already).
_SCHEMA_BEFORE_TRACES = """
CREATE TABLE changes (
    cursor INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, platform TEXT NOT NULL,
    old_status TEXT NOT NULL, new_status TEXT NOT NULL, source TEXT NOT NULL,
    ts REAL NOT NULL, metadata TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'status');
"""


def test_a_change_log_written_before_traces_gains_the_column_and_its_rows_have_none(
    tmp_path: Path, start_store: Any
) -> None:
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        db.executescript(_SCHEMA_BEFORE_TRACES)
        db.execute("INSERT INTO changes VALUES (1, 'web-1', 'docker', 'Unknown', 'Running', 'd', ?, '{}', 'status')",
                   (NOW,))
    db.close()
    store = start_store()
    store.tell(AppendChange(_change(2, TRACEPARENT)))
    assert _page(store) == [(1, None), (2, TRACEPARENT)]
