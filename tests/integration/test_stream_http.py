"""GET /api/status/stream over real HTTP, read with a real SSE client (sseclient-py): events and filters, resume
without duplicate or hole, gap, reset, overflow, heartbeat, refusals, and the streams' end at every stop."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from draas_actors.actors.store import Retention
from draas_actors.streams import StreamSettings
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, wait_until
from tests.integration.stream_support import (
    STREAM,
    Stream,
    head,
    in_background,
    log_cursors,
    push_alternating,
    push_status,
    push_update,
    stream_plane,
    stream_threads,
)

FAST = StreamSettings(heartbeat_seconds=1.0)


@pytest.fixture
def plane(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with stream_plane(tmp_path / "data", janitor=janitor, stream=FAST) as running:
        yield running


def test_each_committed_change_is_one_event_as_the_changes_feed_has_it(plane: RunningControlPlane) -> None:
    push_status(plane, "before", "Running")  # before the stream opens: not sent (no cursor is live from the head)
    with Stream(plane) as stream:
        assert stream.response.headers["Content-Type"].startswith("text/event-stream")
        assert stream.response.headers["X-Draas-Store-Id"] == plane.cp.store_id
        start = head(plane)
        push_status(plane, "a", "Running")
        push_status(plane, "a", "Stopped")
        events = stream.take(2)
    assert [e.event for e in events] == ["StatusChanged", "StatusChanged"]
    assert plane.changes(after=start) == [e.json() for e in events]
    assert [e.cursor for e in events] == [e.json()["cursor"] for e in events]


def test_a_lone_change_reaches_a_waiting_stream_at_once_not_at_its_next_poll(tmp_path: Path) -> None:
    """A crash on a quiet control plane must reach the operator's page in milliseconds: the commit wakes the stream
    (a poll of 30 s here could not explain a delivery within 2 s)."""
    with stream_plane(tmp_path / "data", stream=StreamSettings(poll_seconds=30.0)) as plane, Stream(plane) as stream:
        wait_until(lambda: plane.cp.streams.open == 1 and plane.cp.streams.quiet, message="an open stream, quiet")
        push_status(plane, "lone", "Running")
        started = time.monotonic()
        (event,) = stream.take(1)
        assert time.monotonic() - started < 2.0
    assert event.json()["instanceId"] == "lone"


def test_a_stream_event_carries_the_trace_of_the_push_that_caused_it(plane: RunningControlPlane) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with Stream(plane) as stream:
        response = push_update(plane, {"instanceId": "t", "status": "Running", "source": "test", "platform": "docker",
                                       "traceparent": traceparent})
        assert response.status_code == 202, response.text
        (event,) = stream.take(1)
    assert event.json()["traceparent"] == traceparent


def test_repeatable_filters_select_by_instance_platform_and_status(plane: RunningControlPlane) -> None:
    params = {"instanceId": ["a", "b"], "platform": "docker", "status": ["Stopped", "Failed"]}
    with Stream(plane, params) as stream:
        push_status(plane, "a", "Running")
        push_status(plane, "a", "Stopped")  # selected
        push_status(plane, "c", "Stopped")  # another instance
        push_status(plane, "b", "Running")
        push_status(plane, "p", "Stopped", platform="process")  # another platform (and instance)
        push_status(plane, "b", "Failed")  # selected
        events = stream.take(2)
    assert [(e.json()["instanceId"], e.json()["newStatus"]) for e in events] == [("a", "Stopped"), ("b", "Failed")]


@pytest.mark.parametrize("how", ["Last-Event-ID", "after"])
@pytest.mark.parametrize("capacity", [10_000, 3], ids=["from-memory", "from-the-log"])
def test_a_resumed_stream_replays_then_goes_live_in_cursor_order_without_duplicate_or_hole(
    plane: RunningControlPlane, how: str, capacity: int
) -> None:
    # A feed that holds 3 changes sends the replay through the durable log: the seam is then log -> memory.
    plane.cp.feed.capacity = capacity
    ids = [f"i{k}" for k in range(5)]
    push_alternating(plane, ids, 40)
    resume_from = head(plane) - 25
    pusher = in_background(push_alternating, plane, ids, 200)  # changes made while the stream replays
    options = {"headers": {"Last-Event-ID": str(resume_from)}} if how == "Last-Event-ID" else \
        {"params": {"after": resume_from}}
    with Stream(plane, **options) as stream:
        pusher.join(30)
        assert not pusher.is_alive()
        final = head(plane)
        events = stream.until_cursor(final)
    assert {e.event for e in events} == {"StatusChanged"}
    assert [e.cursor for e in events] == log_cursors(plane, resume_from)


def test_a_cursor_that_retention_pruned_gets_a_gap_then_the_changes_still_kept(tmp_path: Path) -> None:
    retention = Retention(max_changes=5, prune_interval=0.1)
    with stream_plane(tmp_path / "data", retention=retention, stream=FAST) as plane:
        plane.cp.feed.capacity = 2  # so that the stream reads the log, which has forgotten its cursor
        push_alternating(plane, ["g"], 30)
        wait_until(lambda: plane.get("/api/status/changes", params={"after": head(plane) - 6}).status_code == 410,
                   5.0, 0.05, "retention prunes the change log to its last 5 changes")
        kept = log_cursors(plane, head(plane) - 5)
        with Stream(plane, headers={"Last-Event-ID": "1"}) as stream:
            gap = stream.next()
            events = stream.until_cursor(head(plane))
    assert gap.event == "gap"
    assert gap.json() == kept[0]  # the oldest cursor still kept
    assert gap.cursor == kept[0] - 1  # its id: a reader that resumes from it misses nothing still kept
    assert [e.cursor for e in events] == kept


def test_a_cursor_from_another_store_gets_a_reset_then_the_stream_goes_live(plane: RunningControlPlane) -> None:
    push_status(plane, "r", "Running")
    now = head(plane)
    for options in ({"headers": {"Last-Event-ID": str(now + 1000)}},
                    {"params": {"after": 1, "storeId": "another-store"}}):
        with Stream(plane, **options) as stream:
            reset = stream.next()
            assert reset.event == "reset"
            assert reset.json() == {"storeId": plane.cp.store_id, "cursor": head(plane)}
            assert reset.cursor == head(plane)
            push_status(plane, "r", "Stopped" if head(plane) % 2 else "Running")
            (change,) = stream.take(1)
            assert change.event == "StatusChanged" and change.cursor == reset.cursor + 1


def test_the_list_and_the_stream_from_its_cursor_reconstruct_the_final_state(plane: RunningControlPlane) -> None:
    ids = [f"w{k}" for k in range(8)]
    push_alternating(plane, ids, 8)
    pusher = in_background(push_alternating, plane, ids, 400)
    wait_until(lambda: head(plane) > 60, 10.0, 0.005, "the pusher has started")
    listed = plane.get("/api/instances")  # while the pusher pushes
    body = listed.json()
    assert int(listed.headers["X-Draas-Cursor"]) == body["cursor"] and body["storeId"] == plane.cp.store_id
    state = {view["instanceId"]: view["status"] for view in body["instances"]}
    with Stream(plane, params={"after": body["cursor"]}) as stream:
        pusher.join(30)
        assert not pusher.is_alive()
        final = head(plane)
        assert body["cursor"] < final  # the list was read while changes were being made
        for event in stream.until_cursor(final):
            state[event.json()["instanceId"]] = event.json()["newStatus"]
    assert state == {view["instanceId"]: view["status"] for view in plane.get("/api/instances").json()["instances"]}


def test_a_heartbeat_comment_comes_when_nothing_else_is_sent(tmp_path: Path) -> None:
    with stream_plane(tmp_path / "data", stream=StreamSettings(heartbeat_seconds=0.2)) as plane:
        response = requests.get(plane.base_url + STREAM, headers=plane.operator_headers, stream=True,
                                timeout=(5.0, 5.0))
        with response:
            seen = b""
            for chunk in response.iter_content(chunk_size=None):
                seen += chunk
                if seen.count(b": heartbeat\n\n") >= 2:
                    break
    assert seen.count(b": heartbeat\n\n") >= 2


def test_a_reader_that_stops_reading_is_sent_overflow_and_closed_then_resumes_with_its_last_id(
    tmp_path: Path,
) -> None:
    with stream_plane(tmp_path / "data", stream=StreamSettings(max_lag=20, heartbeat_seconds=1.0)) as plane:
        ids = [f"o{k}" for k in range(50)]
        push_alternating(plane, ids, 50)
        with socket.socket() as reader:
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server sees it full
            reader.settimeout(HTTP_TIMEOUT)
            reader.connect(("127.0.0.1", plane.server.port))
            reader.sendall(f"GET {STREAM} HTTP/1.1\r\nHost: x\r\nX-API-Key: {plane.operator_key}\r\n\r\n".encode())
            wait_until(lambda: plane.cp.metrics.open_streams._value.get() == 1, 5.0, 0.02, "the stream is open")
            # The reader reads nothing now; changes go on until the stream gives up on it.
            pushed = 0
            while plane.cp.streams.open and pushed < 20_000:
                push_alternating(plane, ids, 500)
                pushed += 500
            wait_until(lambda: plane.cp.streams.open == 0, 5.0, 0.02, "the stream ends")
            raw = _read_to_end(reader)
        events = _parse(raw)
        assert events[-1][0] == "overflow"
        changes = [int(i or "") for name, i in events if name == "StatusChanged"]
        assert changes == sorted(set(changes)) and changes
        with Stream(plane, headers={"Last-Event-ID": str(changes[-1])}) as resumed:
            rest = resumed.until_cursor(head(plane), timeout=30)
        assert changes + [e.cursor for e in rest] == log_cursors(plane, changes[0] - 1)


def _read_to_end(reader: socket.socket) -> bytes:
    """Everything the server sent, up to the end of the chunked response."""
    raw = b""
    while not raw.endswith(b"\r\n0\r\n\r\n"):
        chunk = reader.recv(65536)
        if not chunk:
            break
        raw += chunk
    return raw


def _parse(raw: bytes) -> list[tuple[str, str | None]]:
    """(event, id) of each event in a raw chunked response (the chunk framing lines are not fields)."""
    events: list[tuple[str, str | None]] = []
    name, event_id = None, None
    for line in raw.split(b"\r\n\r\n", 1)[1].decode().splitlines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("id: "):
            event_id = line[len("id: "):]
        elif line.startswith("data: ") and name is not None:
            events.append((name, event_id))
            name, event_id = None, None
    return events


def test_a_stream_needs_a_read_key(plane: RunningControlPlane) -> None:
    response = requests.get(plane.base_url + STREAM, timeout=HTTP_TIMEOUT)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        ({"platform": "mainframe"}, {}, "platform"),
        ({"status": ["Running", "Sleepy"]}, {}, "status"),
        ({"instanceId": "x" * 300}, {}, "instanceId"),
        ({"after": "yesterday"}, {}, "after"),
        ({"after": "-1"}, {}, "after"),
        ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
    ],
)
def test_a_bad_filter_or_cursor_is_a_422_naming_it_before_any_stream(
    plane: RunningControlPlane, params: dict[str, object], headers: dict[str, str], field: str
) -> None:
    response = requests.get(plane.base_url + STREAM, params=params,  # type: ignore[arg-type]
                            headers={**plane.operator_headers, **headers}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_streams_do_not_hold_the_http_workers_and_one_over_max_streams_is_a_503(tmp_path: Path) -> None:
    with stream_plane(tmp_path / "data", stream=StreamSettings(max_streams=6, heartbeat_seconds=1.0)) as plane:
        streams = [Stream(plane) for _ in range(6)]  # more than the server's 4 worker threads
        try:
            assert plane.get("/api/instances").status_code == 200
            refused = plane.get(STREAM, stream=True)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "5", refused.text
            metrics = plane.get("/metrics").text
            assert "draas_open_streams 6.0" in metrics
        finally:
            for stream in streams:
                stream.close()
        wait_until(lambda: plane.cp.streams.open == 0, 5.0, 0.02, "the streams end once their clients leave")
        assert "draas_open_streams 0.0" in plane.get("/metrics").text


def test_the_http_servers_stop_ends_every_stream_and_joins_its_thread(plane: RunningControlPlane) -> None:
    streams = [Stream(plane) for _ in range(3)]
    assert len(stream_threads()) == 3
    plane.server.stop()
    assert stream_threads() == []
    for stream in streams:
        assert stream.rest() == []  # each response was ended, not cut off
        stream.close()


def test_the_control_planes_stop_ends_every_stream_and_joins_its_thread(plane: RunningControlPlane) -> None:
    streams = [Stream(plane) for _ in range(3)]
    push_status(plane, "s", "Running")
    for stream in streams:
        assert [e.event for e in stream.take(1)] == ["StatusChanged"]
    plane.cp.stop(timeout=5.0)
    assert stream_threads() == []
    for stream in streams:
        assert stream.rest() == []  # the response ends
        stream.close()
