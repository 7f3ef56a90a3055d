"""The audit: folding of repeated rejections, its table in the store (a real StoreActor), the middleware."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import falcon
import pykka
import pytest
from falcon import testing

from draas_actors.actors.store import Retention, StoreActor
from draas_actors.api.audit import UNMATCHED, AuditRejections, Folding
from draas_actors.messages import AuditEntry, LastCursor, ListAudit, RecordAudit
from draas_actors.scheduler import Scheduler
from draas_actors.system import ControlPlane, SystemSettings
from tests.helpers import wait_until

T0 = float(int(time.time()))  # recent: the store prunes entries older than its retention
REJECTED = AuditEntry(
    time=T0, identity="alice", client="10.0.0.7", method="DELETE", route="/api/instances/{instance_id}",
    status=403, reason="forbidden: this route needs the admin role",
)


def at(seconds: float, **changes: Any) -> AuditEntry:
    return dataclasses.replace(REJECTED, time=T0 + seconds, **changes)


# -- folding ----------------------------------------------------------------------------------------


def test_a_second_identical_rejection_within_a_second_bumps_the_count_of_the_first() -> None:
    folding = Folding()

    first, first_new = folding.add(at(0.0))
    second, second_new = folding.add(at(0.6))
    third, third_new = folding.add(at(0.999))

    assert (first_new, second_new, third_new) == (True, False, False)
    assert first == at(0.0)
    # Folded repeats keep the first one's time: it is how the store finds the row to update.
    assert second == dataclasses.replace(first, count=2)
    assert third == dataclasses.replace(first, count=3)


def test_a_rejection_a_second_after_the_first_of_its_window_opens_a_new_entry() -> None:
    folding = Folding()
    folding.add(at(0.0))
    folding.add(at(0.9))

    entry, new = folding.add(at(1.0))

    assert new
    assert entry == at(1.0)
    assert folding.add(at(1.5)) == (dataclasses.replace(at(1.0), count=2), False)


def test_a_clock_that_steps_back_opens_a_new_entry_instead_of_folding_into_the_future() -> None:
    folding = Folding()
    folding.add(at(5.0))

    assert folding.add(at(4.5)) == (at(4.5), True)


@pytest.mark.parametrize(
    "difference",
    [{"identity": "bob"}, {"identity": None}, {"client": "10.0.0.8"}, {"route": "/api/instances"}, {"status": 401}],
    ids=["identity", "no identity", "client", "route", "status"],
)
def test_rejections_that_differ_in_what_folding_compares_are_separate_entries(difference: dict[str, Any]) -> None:
    folding = Folding()
    folding.add(at(0.0))

    entry, new = folding.add(at(0.1, **difference))

    assert new
    assert entry.count == 1


def test_method_and_reason_are_not_compared_so_a_flood_varying_them_still_folds_into_the_first() -> None:
    folding = Folding()
    folding.add(at(0.0))

    entry, new = folding.add(at(0.1, method="GET", reason="status: 'Sleeping0001' is not a status"))

    assert not new
    assert entry == at(0.0, count=2)


def test_a_flood_of_5000_rejections_over_5_seconds_makes_5_entries_and_loses_none() -> None:
    folding = Folding()
    latest: dict[float, int] = {}

    for i in range(5000):
        entry, _ = folding.add(at(i * 0.001, status=429, reason="too many requests"))
        latest[entry.time] = entry.count

    assert len(latest) == 5
    assert sum(latest.values()) == 5000


def test_folding_from_many_threads_counts_every_rejection_once() -> None:
    folding = Folding()
    counts: list[int] = []
    news: list[bool] = []
    lock = threading.Lock()

    def flood() -> None:
        for _ in range(1000):
            entry, new = folding.add(at(0.5))
            with lock:
                counts.append(entry.count)
                news.append(new)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert news.count(True) == 1
    assert sorted(counts) == list(range(1, 4001))


def test_closed_windows_are_forgotten_so_memory_holds_one_window_of_rejections() -> None:
    folding = Folding()
    for i in range(100):
        folding.add(at(0.0, client=f"10.0.1.{i}"))
    assert len(folding) == 100

    folding.add(at(2.0))

    assert len(folding) == 1


# -- the audit table ------------------------------------------------------------------------------------


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    scheduler = Scheduler()
    yield scheduler
    scheduler.stop()


def start_store(path: Path, scheduler: Scheduler, retention: Retention | None = None) -> pykka.ActorRef[Any]:
    return StoreActor.start(path=str(path), retention=retention or Retention(), scheduler=scheduler)


def audit_log(store: pykka.ActorRef[Any], since: float | None = None, limit: int = 100) -> tuple[AuditEntry, ...]:
    return cast("tuple[AuditEntry, ...]", store.ask(ListAudit(since, limit), timeout=5))


def test_the_store_keeps_one_row_per_window_with_its_highest_count(tmp_path: Path, scheduler: Scheduler) -> None:
    store = start_store(tmp_path / "store.sqlite3", scheduler)
    store.tell(RecordAudit(at(0.0)))
    store.tell(RecordAudit(at(0.0, count=2)))
    assert audit_log(store) == (at(0.0, count=2),)  # a read flushes first

    # Repeats after the row was committed update it; one that arrives late never lowers it.
    store.tell(RecordAudit(at(0.0, count=4)))
    store.tell(RecordAudit(at(0.0, count=3)))

    assert audit_log(store) == (at(0.0, count=4),)


def test_buffered_entries_are_committed_without_a_read_and_survive_a_restart(
    tmp_path: Path, scheduler: Scheduler
) -> None:
    path = tmp_path / "store.sqlite3"
    store = start_store(path, scheduler)
    store.ask(LastCursor(), timeout=5)  # started (schema and WAL in place), and a question that does not flush
    store.tell(RecordAudit(at(0.0, count=9)))

    # The delayed audit flush commits on its own: another connection sees the count without asking the store.
    with contextlib.closing(sqlite3.connect(path)) as reader:
        wait_until(
            lambda: reader.execute("SELECT count FROM audit").fetchall() == [(9,)], 5.0, 0.02, "the delayed audit flush"
        )
    store.stop()

    assert audit_log(start_store(path, scheduler)) == (at(0.0, count=9),)


def test_the_audit_lists_newest_first_with_since_and_limit(tmp_path: Path, scheduler: Scheduler) -> None:
    store = start_store(tmp_path / "store.sqlite3", scheduler)
    for second in (3.0, 1.0, 2.0, 0.0):
        store.tell(RecordAudit(at(second)))

    assert [e.time - T0 for e in audit_log(store)] == [3.0, 2.0, 1.0, 0.0]
    assert [e.time - T0 for e in audit_log(store, since=T0 + 1.0)] == [3.0, 2.0, 1.0]
    assert [e.time - T0 for e in audit_log(store, limit=2)] == [3.0, 2.0]


def test_the_audit_is_pruned_with_the_change_log_limits(tmp_path: Path, scheduler: Scheduler) -> None:
    retention = Retention(max_changes=3, max_age=3600.0, prune_interval=0.05)
    store = start_store(tmp_path / "store.sqlite3", scheduler, retention)
    now = time.time()
    store.tell(RecordAudit(dataclasses.replace(REJECTED, time=now - 7200.0, reason="too old")))
    for i in range(5):
        store.tell(RecordAudit(dataclasses.replace(REJECTED, time=now + i, reason=f"number {i}")))

    wait_until(
        lambda: [e.reason for e in audit_log(store)] == ["number 4", "number 3", "number 2"],
        5.0, 0.02, "the three newest entries are all that is left",
    )


# -- the middleware ----------------------------------------------------------------------------------


class RefuseBeforeRouting:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPContentTooLarge(title="request body too large")


class Thing:
    def on_post(self, req: falcon.Request, resp: falcon.Response, thing_id: str) -> None:
        resp.media = {}


def test_a_refusal_before_routing_is_recorded_under_its_route_template_and_an_unknown_path_as_unmatched(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Never started: with no store, each entry's log line is its only record, which is what this reads.
    control_plane = ControlPlane(SystemSettings(data_dir=tmp_path, store_path=":memory:"))
    try:
        middleware: list[Any] = [AuditRejections(control_plane, ["/things/{thing_id}"]), RefuseBeforeRouting()]
        app = falcon.App(middleware=middleware)
        app.add_route("/things/{thing_id}", Thing())
        client = testing.TestClient(app)

        assert client.simulate_post("/things/42", query_string="token=query-secret").status_code == 413
        assert client.simulate_post("/elsewhere").status_code == 413
    finally:
        control_plane.stop(timeout=5)

    lines = [r.getMessage() for r in caplog.records if r.name == "draas.audit" and "rejected" in r.getMessage()]
    assert [line.split(" from ")[0] for line in lines] == [
        "rejected POST /things/{thing_id}", f"rejected POST {UNMATCHED}"
    ]
    assert not any("query-secret" in line or "42" in line for line in lines)
