"""What a daemon last pushed, kept on disk between its runs."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from daemons.reported import ReportedState, take_news
from daemons.updates import StatusUpdate
from draas_actors.model import Platform, Status


def update(instance_id: str, status: Status, **metadata: str | int) -> StatusUpdate:
    return StatusUpdate(
        instance_id=instance_id,
        workload_id=f"uid-{instance_id}",
        status=status,
        observed_at=1_795_740_722.25,
        source="k8s-daemon",
        platform=Platform.KUBERNETES,
        metadata=metadata,
    )


def test_what_is_recorded_is_read_back_by_the_next_run(tmp_path: Path) -> None:
    state = ReportedState(tmp_path / "spool.reported")
    web, db = update("web", Status.RUNNING, podName="web-1", restartCount=2), update("db", Status.FAILED, exitCode=3)
    state.record([web, db])
    state.record([update("web", Status.UNHEALTHY, podName="web-1", restartCount=2)])
    state.close()

    again = ReportedState(tmp_path / "spool.reported")
    try:
        loaded = again.load()
    finally:
        again.close()
    assert loaded == {"web": update("web", Status.UNHEALTHY, podName="web-1", restartCount=2), "db": db}


def test_a_removed_instance_is_forgotten(tmp_path: Path) -> None:
    state = ReportedState(tmp_path / "spool.reported")
    try:
        state.record([update("web", Status.RUNNING), update("db", Status.RUNNING)])
        state.record([update("web", Status.REMOVED)])
        assert set(state.load()) == {"db"}
    finally:
        state.close()


def test_an_unreadable_row_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "spool.reported"
    state = ReportedState(path)
    state.record([update("web", Status.RUNNING)])
    state.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO reported (instance_id, body) VALUES ('broken', '{\"status\": \"Sleeping\"}')")
    state = ReportedState(path)
    try:
        assert set(state.load()) == {"web"}
    finally:
        state.close()


def test_take_news_notes_what_differs_from_the_last_push_and_forgets_a_removed_instance() -> None:
    reported: dict[str, StatusUpdate] = {}
    web = update("web", Status.RUNNING, podName="web-1")
    assert take_news(reported, web)
    assert not take_news(reported, dataclasses.replace(web, observed_at=web.observed_at + 60))  # observedAt aside
    assert take_news(reported, update("web", Status.RUNNING, podName="web-2"))  # metadata counts by default
    assert reported["web"].metadata == {"podName": "web-2"}
    assert take_news(reported, update("web", Status.REMOVED))
    assert reported == {}


def test_take_news_asks_the_daemon_what_counts_as_the_same_state() -> None:
    def same_status(before: StatusUpdate, now: StatusUpdate) -> bool:
        return before.status is now.status

    reported = {"db": update("db", Status.FAILED, exitCode=3, reason="from an event")}
    assert not take_news(reported, update("db", Status.FAILED, exitCode=3, reason="from a listing"), same_status)
    assert reported["db"].metadata["reason"] == "from an event"  # what was pushed stays what was pushed
