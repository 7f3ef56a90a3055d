"""The committed change feed: in cursor order, only what the store committed, a reader too far behind told to read
the log, a gap in the cursors stepped over, and readers woken at close."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from draas_actors.actors.store import Retention, StoreActor
from draas_actors.feed import Behind, ChangeFeed, next_changes
from draas_actors.messages import Flush, SaveRecord, StatusChanged
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.records import InstanceRecord
from draas_actors.scheduler import Scheduler


def change(cursor: int) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId(f"web-{cursor}"), platform=Platform.DOCKER, old_status=Status.STOPPED,
        new_status=Status.RUNNING, source="test", timestamp=1.0, metadata={}, cursor=cursor,
    )


def cursors(changes: Sequence[StatusChanged] | Behind) -> list[int]:
    assert not isinstance(changes, Behind)
    return [c.cursor for c in changes]


def test_a_reader_gets_the_changes_after_its_cursor_in_order_and_up_to_its_limit() -> None:
    feed = ChangeFeed()
    feed.committed([change(1), change(2), change(3)])
    assert cursors(feed.after(0, 10, 0)) == [1, 2, 3]
    assert cursors(feed.after(1, 1, 0)) == [2]
    assert feed.after(3, 10, 0) == []
    assert feed.head == 3


def test_a_reader_at_the_head_waits_for_the_next_commit() -> None:
    feed = ChangeFeed()
    feed.committed([change(1)])
    got: list[list[int]] = []
    reader = threading.Thread(target=lambda: got.append(cursors(feed.after(1, 10, 10.0))))
    reader.start()
    feed.committed([change(2)])
    reader.join(10.0)
    assert got == [[2]]


def test_close_wakes_a_waiting_reader_with_nothing() -> None:
    feed = ChangeFeed()
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(feed.after(0, 10, 30.0)))
    reader.start()
    feed.close()
    reader.join(10.0)
    assert got == [[]]


def test_a_reader_behind_what_is_held_is_told_to_read_the_log() -> None:
    feed = ChangeFeed(capacity=2)
    feed.committed([change(c) for c in range(1, 6)])  # held: the newest two, 4 and 5
    assert feed.after(1, 10, 0) == Behind(4)
    assert cursors(feed.after(3, 10, 0)) == [4, 5]


def test_a_feed_started_over_a_log_holds_nothing_and_sends_readers_to_the_log() -> None:
    feed = ChangeFeed()
    feed.started(40)
    assert feed.after(10, 10, 0) == Behind(0)
    assert feed.after(40, 10, 0) == []


def test_next_changes_reads_the_log_when_behind_then_the_feed() -> None:
    feed = ChangeFeed(capacity=2)
    log = [change(c) for c in range(1, 6)]
    feed.committed(log)
    read: list[tuple[int, int]] = []

    def read_log(after: int, limit: int) -> Sequence[StatusChanged]:
        read.append((after, limit))
        return [c for c in log if c.cursor > after][:limit]

    page, cursor = next_changes(feed, read_log, 0, 2, 0)
    assert (cursors(page), cursor) == ([1, 2], 2)
    page, cursor = next_changes(feed, read_log, cursor, 2, 0)
    assert (cursors(page), cursor) == ([3, 4], 4)
    page, cursor = next_changes(feed, read_log, cursor, 2, 0)
    assert (cursors(page), cursor) == ([5], 5)
    assert read == [(0, 2), (2, 2)]  # the last from memory


def test_next_changes_steps_over_cursors_the_log_never_got() -> None:
    """Cursors 2 and 3 were lost with a store that died before its commit: the log goes from 1 to 4."""
    feed = ChangeFeed()
    feed.started(1)
    feed.committed([change(4), change(5)])
    log = [change(1), change(4), change(5)]
    page, cursor = next_changes(feed, lambda after, n: [c for c in log if c.cursor > after][:n], 1, 10, 0)
    assert (cursors(page), cursor) == ([4, 5], 5)


def test_next_changes_with_nothing_in_the_log_continues_from_the_head() -> None:
    feed = ChangeFeed()
    feed.started(9)  # a pruning mark: the log is empty up to 9
    assert next_changes(feed, lambda after, n: [], 3, 10, 0) == ((), 9)


def test_the_store_tells_the_feed_only_what_it_committed(tmp_path: Path) -> None:
    feed = ChangeFeed()
    scheduler = Scheduler()
    store = StoreActor.start(
        path=str(tmp_path / "store.sqlite3"), retention=Retention(), scheduler=scheduler, feed=feed
    )
    try:
        record = InstanceRecord(instance_id=InstanceId("web-1"), platform=Platform.DOCKER, status=Status.RUNNING)
        store.tell(SaveRecord(record, None, change(1)))
        store.ask(Flush())
        assert cursors(feed.after(0, 10, 5.0)) == [1]
    finally:
        store.stop()
        scheduler.stop()
    again, scheduler = ChangeFeed(), Scheduler()
    store = StoreActor.start(
        path=str(tmp_path / "store.sqlite3"), retention=Retention(), scheduler=scheduler, feed=again
    )
    try:
        store.ask(Flush())
        assert again.head == 1  # a restarted store's feed starts at the log's head, and sends older readers there
        assert again.after(0, 10, 0) == Behind(0)
    finally:
        store.stop()
        scheduler.stop()


def test_a_feed_of_another_log_forgets_what_it_held() -> None:
    feed = ChangeFeed()
    feed.committed([change(5)])
    feed.started(2)  # a store restored from an older copy
    assert feed.head == 2
    assert feed.after(2, 10, 0) == []
    feed.committed([change(3)])
    assert cursors(feed.after(2, 10, 0)) == [3]


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_feed_holds_at_least_one_change(capacity: int) -> None:
    with pytest.raises(ValueError):
        ChangeFeed(capacity)
