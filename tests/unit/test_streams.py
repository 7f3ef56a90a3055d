"""The streams' threads (streams.py), how the dispatcher tells a stream request, SSE framing, [stream] settings, and
the list's cursor read with the records."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from draas_actors.actors.store import Retention, StoreActor
from draas_actors.api import sse
from draas_actors.api.dispatch import FairDispatcher, is_stream_request, serve_off_the_loop
from draas_actors.feed import ChangeFeed
from draas_actors.messages import Flush, InstanceList, ListRecords, SaveRecord, StatusChanged
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.records import InstanceRecord
from draas_actors.scheduler import Scheduler
from draas_actors.settings import load_settings
from draas_actors.streams import StreamSettings, StreamThreads


class Idle:
    def unsent(self) -> int:
        return 0

    def connected(self) -> bool:
        return True


def test_stream_threads_run_at_most_max_streams_each_knowing_its_connection() -> None:
    threads = StreamThreads(max_streams=2)
    release = threading.Event()
    seen: list[object] = []
    connections = [Idle(), Idle(), Idle()]

    def serve() -> None:
        seen.append(threads.current())
        release.wait(5)

    try:
        assert threads.start(connections[0], serve) and threads.start(connections[1], serve)
        assert not threads.start(connections[2], serve)  # the app answers this one 503
        assert threads.open == 2
        assert threads.current() is None  # not a stream's thread: no slot
    finally:
        release.set()
        assert threads.stop_all(5.0)
    assert sorted(map(id, seen)) == sorted(map(id, connections[:2]))
    assert threads.open == 0


def test_stop_all_tells_the_streams_to_end_joins_them_and_lets_new_ones_start_after() -> None:
    threads = StreamThreads(max_streams=4)
    def serve() -> None:
        threads.wait(30)  # as a stream's loop waits: until told to end

    for _ in range(3):
        threads.start(Idle(), serve)
    assert threads.stop_all(5.0)
    assert threads.open == 0 and not threads.stopping
    assert not [t for t in threading.enumerate() if t.name.startswith("draas-stream-")]
    assert threads.start(Idle(), lambda: None)
    assert threads.stop_all(5.0)


@dataclass
class FakeRequest:
    command: str
    path: str
    error: object = None


@dataclass
class FakeChannel:
    requests: list[FakeRequest] = field(default_factory=list)


@pytest.mark.parametrize(
    ("request_", "stream"),
    [
        (FakeRequest("GET", "/api/status/stream"), True),
        (FakeRequest("GET", "/API/Status/Stream/"), True),  # routes are case-insensitive, a trailing slash ignored
        (FakeRequest("POST", "/api/status/stream"), False),
        (FakeRequest("GET", "/api/status/changes"), False),
        (FakeRequest("GET", "/api/status/stream", error="bad request"), False),
    ],
)
def test_the_dispatcher_tells_a_stream_request_by_its_method_and_path(request_: FakeRequest, stream: bool) -> None:
    assert is_stream_request(FakeChannel([request_])) is stream
    assert not is_stream_request(FakeChannel())


def test_a_dispatcher_without_streams_queues_a_stream_request_like_any_other() -> None:
    dispatcher = FairDispatcher(per_caller=2)
    channel = FakeChannel([FakeRequest("GET", "/api/status/stream")])
    dispatcher.queue.append = lambda task: seen.append(task)  # type: ignore[method-assign]
    seen: list[object] = []
    dispatcher.add_task(channel)
    assert seen == [channel]


def test_sse_events_are_id_event_and_one_data_line_and_comments_are_one_line() -> None:
    assert sse.event("StatusChanged", {"a": "x\ny"}, 7) == b'id: 7\nevent: StatusChanged\ndata: {"a":"x\\ny"}\n\n'
    assert sse.event("gap", 5) == b"event: gap\ndata: 5\n\n"
    assert sse.comment("heartbeat") == b": heartbeat\n\n"
    with pytest.raises(ValueError):
        sse.comment("two\nlines")


def test_stream_settings_come_from_the_stream_table(tmp_path: Path) -> None:
    path = tmp_path / "draas.toml"
    path.write_text("[stream]\nheartbeatSeconds = 2.5\nmaxLag = 50\nmaxStreams = 300\nstallSeconds = 9\n"
                    "pollSeconds = 0.25\n")
    assert load_settings(path, environ={}).system.stream == StreamSettings(
        heartbeat_seconds=2.5, max_lag=50, max_streams=300, stall_seconds=9, poll_seconds=0.25
    )
    assert load_settings(None, environ={}).system.stream == StreamSettings()


def test_a_bad_stream_setting_names_its_field(tmp_path: Path) -> None:
    path = tmp_path / "draas.toml"
    path.write_text("[stream]\nmaxLag = 0\n")
    with pytest.raises(Exception, match="maxLag"):
        load_settings(path, environ={})


def test_the_list_comes_with_the_head_committed_with_it(tmp_path: Path) -> None:
    feed, scheduler = ChangeFeed(), Scheduler()
    store = StoreActor.start(path=str(tmp_path / "s.sqlite3"), retention=Retention(), scheduler=scheduler, feed=feed)
    try:
        for cursor, status in ((1, Status.RUNNING), (2, Status.STOPPED)):
            record = InstanceRecord(instance_id=InstanceId("web"), platform=Platform.DOCKER, status=status,
                                    version=cursor)
            change = StatusChanged(
                instance_id=InstanceId("web"), platform=Platform.DOCKER, old_status=Status.UNKNOWN,
                new_status=status, source="test", timestamp=1.0, metadata={}, cursor=cursor,
            )
            store.tell(SaveRecord(record, None, change))  # buffered: the list's flush commits it
        listed = store.ask(ListRecords())
        assert isinstance(listed, InstanceList)
        assert listed.cursor == 2 == feed.head
        assert [(r.instance_id, r.status) for r in listed.records] == [("web", Status.STOPPED)]
        store.ask(Flush())
    finally:
        store.stop()
        scheduler.stop()


class FakeServer:
    def __init__(self) -> None:
        self.triggers = 0

    def pull_trigger(self) -> None:
        self.triggers += 1


class LoopChannel:
    """What serve_off_the_loop touches of a waitress channel: its map, its descriptor, its server, service()."""

    def __init__(self, socket_map: dict[int, object], closes: bool = False) -> None:
        self._map, self.server = socket_map, FakeServer()
        self._fileno: int | None = 7
        socket_map[7] = self
        self.closes = closes
        self.in_map_while_served: bool | None = None

    def service(self) -> None:
        self.in_map_while_served = 7 in self._map
        if self.closes:
            self._fileno = None  # as waitress's del_channel leaves a closed channel


@pytest.mark.parametrize("closes", [False, True])
def test_a_stream_is_served_out_of_the_loops_map_and_put_back_unless_it_was_closed(closes: bool) -> None:
    socket_map: dict[int, object] = {}
    channel = LoopChannel(socket_map, closes)
    serve_off_the_loop(channel)
    assert channel.in_map_while_served is False
    assert (7 in socket_map) is not closes
    assert channel.server.triggers == 1  # the loop looks at it again: it may have bytes left to send


def test_a_commit_after_a_quiet_spell_wakes_the_waiting_streams_at_once() -> None:
    threads = StreamThreads(max_streams=2, quiet_seconds=0.5)
    woken = threading.Event()
    waiting = threading.Event()

    def serve() -> None:
        waiting.set()
        threads.wait(30)  # a poll far longer than the test: only news ends it early
        woken.set()

    try:
        assert threads.start(Idle(), serve)
        assert waiting.wait(5)
        threads.news()  # the first commit ever follows a quiet spell
        assert woken.wait(5)
    finally:
        assert threads.stop_all(5.0)


def test_commits_closer_than_the_quiet_spell_do_not_wake_the_streams() -> None:
    """Under a steady flow the streams keep their own spread-out polls (waking them all together at every commit
    was what cost the pushing daemon)."""
    threads = StreamThreads(max_streams=2, quiet_seconds=60.0)
    woken = threading.Event()
    waiting = threading.Event()
    threads.news()  # a commit just now: the next one is not after a quiet spell

    def serve() -> None:
        waiting.set()
        threads.wait(0.5)
        woken.set()

    try:
        assert threads.start(Idle(), serve)
        assert waiting.wait(5)
        threads.news()
        assert not woken.wait(0.2)  # still in its poll
        assert woken.wait(5)  # which then ends as polls do
    finally:
        assert threads.stop_all(5.0)


def test_the_feed_tells_its_listeners_of_each_commit() -> None:
    feed, told = ChangeFeed(), []
    feed.listen(lambda: told.append(feed.head))
    feed.committed([StatusChanged(
        instance_id=InstanceId("a"), platform=Platform.DOCKER, old_status=Status.STOPPED, new_status=Status.RUNNING,
        source="test", timestamp=1.0, metadata={}, cursor=1,
    )])
    feed.committed([])  # nothing committed: nobody told
    assert told == [1]
