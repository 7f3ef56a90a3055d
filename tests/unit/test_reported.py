"""What a daemon last pushed, kept on disk between its runs."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemons.daemon_env import CommonSettings
from daemons.outbox import Outbox
from daemons.reported import ReportedState, take_news
from daemons.updates import StatusUpdate
from draas_actors.model import Platform, Status
from tests.helpers import wait_until


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


def test_the_store_last_pushed_to_is_remembered_by_the_next_run(tmp_path: Path) -> None:
    state = ReportedState(tmp_path / "spool.reported")
    assert state.store_id() is None  # a first run: no store seen yet
    state.set_store_id("store-a")
    state.set_store_id("store-b")
    state.close()

    again = ReportedState(tmp_path / "spool.reported")
    try:
        assert again.store_id() == "store-b"
    finally:
        again.close()


# -- the outbox's snapshots -------------------------------------------------------------------------

NOWHERE = "http://127.0.0.1:9"  # nothing listens there: a control plane that does not answer


@pytest.fixture
def make_outbox(tmp_path: Path) -> Iterator[Any]:
    made: list[Outbox] = []

    def make(**overrides: Any) -> Outbox:
        settings = CommonSettings(
            control_plane_url=NOWHERE, api_key="k", spool_path=tmp_path / "spool", shutdown_flush=0.0, **overrides
        )
        outbox = Outbox(settings, logging.getLogger("test-outbox"))
        made.append(outbox)
        return outbox

    try:
        yield make
    finally:
        for outbox in made:
            outbox.close()


def test_the_outbox_spools_every_last_update_again_when_the_store_changes_not_when_it_is_first_seen(
    make_outbox: Any,
) -> None:
    outbox = make_outbox()
    outbox.send([update("web", Status.RUNNING), update("db", Status.FAILED, exitCode=3)])
    outbox.send([update("db", Status.REMOVED)])
    on_store_id = outbox.push.on_store_id
    on_store_id("store-a")  # the first answer ever: written down only
    on_store_id("store-a")
    assert (outbox.push.stats.pending, outbox.snapshots) == (3, 0)
    on_store_id("store-b")
    assert (outbox.push.stats.pending, outbox.snapshots) == (4, 1)  # web again; db was last pushed Removed
    outbox.close()

    again = make_outbox()  # the next run remembers store B
    again.push.on_store_id("store-b")
    assert (again.push.stats.pending, again.snapshots) == (4, 0)


def test_the_periodic_resync_waits_while_the_control_plane_does_not_answer(
    make_outbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = make_outbox(resync_interval=0.05)
    outbox.send([update("web", Status.RUNNING)])
    with caplog.at_level(logging.INFO, logger="test-outbox"):
        outbox.start()
        wait_until(lambda: any("periodic resync skipped" in r.getMessage() for r in caplog.records), 5.0, 0.01,
                   "a resync is skipped")
    assert outbox.snapshots == 0
    assert outbox.push.stats.pending == 1  # the spool already holds what the control plane has not had


def test_a_store_check_that_fails_changes_nothing_and_is_tried_again(
    make_outbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = make_outbox(store_check_interval=0.05)  # nothing listens at its URL
    outbox.push.on_store_id("store-a")
    with caplog.at_level(logging.DEBUG, logger="test-outbox"):
        outbox.start()  # nothing to push: the push client stays "answering", so the checks are made
        wait_until(lambda: sum("store check" in r.getMessage() for r in caplog.records) >= 2, 5.0, 0.01,
                   "two failed store checks")
    assert {r.levelno for r in caplog.records if "store check" in r.getMessage()} == {logging.DEBUG}
    assert (outbox.snapshots, outbox.store_checks, outbox.push.stats.pending) == (0, 0, 0)
    outbox.close()
    state = ReportedState(Path(f"{outbox.settings.spool_path}.reported"))
    try:
        assert state.store_id() == "store-a"
    finally:
        state.close()


def test_a_store_check_is_made_only_while_pushes_are_answered_and_yields_to_one_answered_meanwhile(
    make_outbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = make_outbox()
    outbox.send([update("web", Status.RUNNING)])
    outbox.push.on_store_id("store-a")
    asked: list[float] = []

    def healthz_meanwhile_answered(timeout: float) -> str:
        asked.append(timeout)
        monkeypatch.setattr(outbox.push, "_answered_at", outbox.push.answered_at + 1.0)  # a push's answer came
        return "store-b"

    monkeypatch.setattr(outbox.push, "fetch_store_id", healthz_meanwhile_answered)
    outbox.check_store()
    assert asked and (outbox.snapshots, outbox.store_checks) == (0, 0)  # the push's answer is the newer word

    monkeypatch.setattr(outbox.push, "fetch_store_id", lambda timeout: "store-b")
    outbox.check_store()
    assert (outbox.snapshots, outbox.store_checks, outbox.push.stats.pending) == (1, 1, 2)

    monkeypatch.setattr(type(outbox.push), "answering", property(lambda self: False))  # pushes being retried
    monkeypatch.setattr(outbox.push, "fetch_store_id", lambda timeout: "store-c")
    outbox.check_store()
    assert (outbox.snapshots, outbox.store_checks) == (1, 1)
