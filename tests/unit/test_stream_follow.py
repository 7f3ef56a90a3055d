"""One stream's loop (api/follow.py) against a fake log, a fake connection and a fake clock: no I/O, no thread."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from draas_actors.api.follow import BUFFER_BYTES, EventCache, Follower, Source, Start
from draas_actors.errors import CursorExpired, Unavailable
from draas_actors.messages import StatusChanged, SubscriptionFilter
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.streams import StreamSettings

SETTINGS = StreamSettings(heartbeat_seconds=15.0, max_lag=10, stall_seconds=60.0, poll_seconds=0.1)
EVERYTHING = SubscriptionFilter()


def change(cursor: int, instance: str = "web", status: Status = Status.RUNNING) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId(instance), platform=Platform.DOCKER, old_status=Status.STOPPED, new_status=status,
        source="test", timestamp=float(cursor), metadata={}, cursor=cursor,
    )


@dataclass
class FakeLog:
    """The committed log as ``ControlPlane.next_changes`` reads it, and the time as the stream sees it."""

    changes: list[StatusChanged] = field(default_factory=list)
    pruned_through: int = 0
    now: float = 0.0
    ended: bool = False
    unavailable: bool = False
    reads: int = 0

    def add(self, count: int, instance: str = "web") -> None:
        first = self.head + 1
        self.changes += [change(c, instance) for c in range(first, first + count)]

    @property
    def head(self) -> int:
        return self.changes[-1].cursor if self.changes else self.pruned_through

    def next_changes(self, cursor: int, limit: int, timeout: float) -> tuple[Sequence[StatusChanged], int]:
        self.reads += 1
        if self.unavailable:
            raise Unavailable("the store does not answer")
        if cursor < self.pruned_through:
            raise CursorExpired("pruned", pruned_through=self.pruned_through)
        page = [c for c in self.changes if c.cursor > cursor][:limit]
        return page, page[-1].cursor if page else cursor

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def source(self) -> Source:
        return Source(
            next_changes=self.next_changes, head=lambda: self.head, ended=lambda: self.ended, wait=self.wait,
            render=EventCache().render, clock=lambda: self.now, jitter=lambda: 1.0,
        )


@dataclass
class FakeConnection:
    log: FakeLog
    held: int = 0  # bytes not taken by the reader ...
    until: float = float("inf")  # ... until then
    open: bool = True

    def unsent(self) -> int:
        return self.held if self.log.now < self.until else 0

    def connected(self) -> bool:
        return self.open


@dataclass
class Event:
    name: str | None
    id: int | None
    data: str | None


def parse(chunk: bytes) -> list[Event]:
    events = []
    for block in chunk.decode().split("\n\n"):
        if not block or block.startswith(":"):
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append(Event(fields.get("event"), int(fields["id"]) if "id" in fields else None, fields.get("data")))
    return events


def follow(
    log: FakeLog, connection: FakeConnection | None = None, cursor: int = 0, *, reset: bool = False,
    event_filter: SubscriptionFilter = EVERYTHING, settings: StreamSettings = SETTINGS,
) -> Iterator[bytes]:
    stream = iter(Follower(log.source(), connection or FakeConnection(log), Start(cursor=cursor, store_id="s1",
                                                                             reset=reset), event_filter, settings))
    opening = next(stream)
    assert opening.startswith(b": ")  # a comment first: the headers go out at once
    return stream


def test_changes_come_as_one_event_each_with_the_cursor_as_id_and_the_change_as_json() -> None:
    log = FakeLog()
    log.add(3)
    events = parse(next(follow(log)))
    assert [(e.name, e.id) for e in events] == [("StatusChanged", 1), ("StatusChanged", 2), ("StatusChanged", 3)]
    assert json.loads(events[0].data or "")["cursor"] == 1


def test_the_filter_leaves_changes_out_but_the_stream_moves_past_them() -> None:
    log = FakeLog()
    log.add(2, "other")
    log.add(1, "web")
    only_web = SubscriptionFilter(instance_ids=frozenset({"web"}))
    assert [e.id for e in parse(next(follow(log, event_filter=only_web)))] == [3]


def test_a_stream_at_the_head_sends_a_heartbeat_comment_after_the_heartbeat_interval() -> None:
    log = FakeLog()
    stream = follow(log, cursor=0)
    assert next(stream) == b": heartbeat\n\n"
    assert log.now == pytest.approx(SETTINGS.heartbeat_seconds)


def test_changes_made_while_a_stream_waits_come_in_one_write_after_a_poll() -> None:
    log = FakeLog()
    stream = follow(log)
    log.add(2)
    assert [e.id for e in parse(next(stream))] == [1, 2]
    log.add(2)
    assert [e.id for e in parse(next(stream))] == [3, 4]


def test_a_pruned_cursor_gets_a_gap_with_the_oldest_kept_cursor_then_what_is_kept() -> None:
    log = FakeLog(pruned_through=5)
    log.add(2)
    stream = follow(log, cursor=2)
    (gap,) = parse(next(stream))
    assert (gap.name, gap.id, gap.data) == ("gap", 5, "6")
    assert [e.id for e in parse(next(stream))] == [6, 7]


def test_a_reset_start_tells_the_reader_then_goes_on_from_the_head() -> None:
    log = FakeLog()
    log.add(4)
    stream = follow(log, cursor=4, reset=True)
    (reset,) = parse(next(stream))
    assert (reset.name, reset.id, json.loads(reset.data or "")) == ("reset", 4, {"storeId": "s1", "cursor": 4})
    log.add(1)
    assert [e.id for e in parse(next(stream))] == [5]


def test_a_log_whose_head_fell_below_the_cursor_is_another_store_and_gets_a_reset() -> None:
    log = FakeLog()
    log.add(2)
    stream = follow(log, cursor=9)  # a store replaced under a live stream
    (reset,) = parse(next(stream))
    assert (reset.name, reset.id) == ("reset", 2)


def test_a_live_reader_more_than_max_lag_behind_with_bytes_waiting_gets_overflow_and_the_stream_ends() -> None:
    log = FakeLog()
    connection = FakeConnection(log)
    stream = follow(log, connection)
    log.add(3)
    written = next(stream)
    connection.held = len(written)  # the reader took none of it
    log.add(SETTINGS.max_lag)
    (overflow,) = parse(next(stream))
    assert overflow.name == "overflow" and overflow.id is None  # the reader resumes with its last id
    assert json.loads(overflow.data or "") == {"behind": SETTINGS.max_lag + 3, "maxLag": SETTINGS.max_lag}
    assert list(stream) == []


def test_a_burst_the_stream_has_not_written_yet_is_no_overflow() -> None:
    log = FakeLog()
    stream = follow(log)
    log.add(SETTINGS.max_lag * 3)  # the reader has taken everything written so far
    assert [e.name for e in parse(next(stream))] == ["StatusChanged"] * SETTINGS.max_lag * 3


def test_a_replay_far_behind_is_no_overflow_until_the_reader_has_caught_up() -> None:
    log = FakeLog()
    connection = FakeConnection(log)
    log.add(100)
    stream = follow(log, connection, cursor=0)
    written = next(stream)
    connection.held, connection.until = len(written), log.now + 5.0  # the reader takes 5 s to read the replay
    log.add(1)
    assert [e.id for e in parse(next(stream))] == [101]  # 101 behind with bytes waiting, but not caught up yet


def test_a_reader_that_takes_no_bytes_for_stall_seconds_is_closed() -> None:
    log = FakeLog()
    connection = FakeConnection(log)
    stream = follow(log, connection, cursor=0)
    log.add(1)
    connection.held = len(next(stream))  # not live-lagging (1 behind), but it takes nothing at all
    (overflow,) = parse(next(stream))
    assert overflow.name == "overflow"
    assert log.now >= SETTINGS.stall_seconds


def test_a_stream_with_more_unsent_bytes_than_its_buffer_reads_nothing_until_the_reader_takes_them() -> None:
    log = FakeLog()
    connection = FakeConnection(log)
    stream = follow(log, connection, settings=StreamSettings(max_lag=10**6, stall_seconds=1.0))
    log.add(1)
    next(stream)
    connection.held = BUFFER_BYTES
    log.add(1)
    reads = log.reads
    assert parse(next(stream))[0].name == "overflow"  # stalled after a second, without reading on
    assert log.reads == reads


@pytest.mark.parametrize("how", ["ended", "disconnected", "unavailable"])
def test_a_stream_ends_when_the_server_stops_the_client_leaves_or_the_store_does_not_answer(how: str) -> None:
    log = FakeLog()
    connection = FakeConnection(log)
    log.add(1)
    stream = follow(log, connection)
    if how == "ended":
        log.ended = True
    elif how == "disconnected":
        connection.open = False
    else:
        log.unavailable = True
    assert list(stream) == []


def test_the_event_cache_makes_each_change_once_and_knows_a_change_by_its_identity() -> None:
    cache = EventCache(size=2)
    first = change(1)
    made = cache.render(first)
    assert cache.render(first) is made
    replaced = change(1, "another-store")  # the same cursor in a replaced store's log
    assert b"another-store" in cache.render(replaced)
    cache.render(change(2))
    cache.render(change(3))  # full: starts afresh, and still renders right
    assert cache.render(first) == made
