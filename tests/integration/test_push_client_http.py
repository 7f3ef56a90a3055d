"""The push client over real HTTP: a scripted fake control plane that records exactly what it received, and
one run against the real control plane."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from daemons.daemon_env import CommonSettings
from daemons.outbox import Outbox
from daemons.push_client import PushClient, PushSettings, PushStats
from daemons.spool import Spool
from daemons.updates import StatusUpdate
from draas_actors.model import Platform, Status
from tests.helpers import RunningControlPlane, wait_until

KEY = "daemon-key-for-tests"
FAST: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.05, "connect_timeout": 1.0, "read_timeout": 2.0}


def update(instance_id: str, status: str = "Running", **extra: Any) -> dict[str, Any]:
    return {"instanceId": instance_id, "status": status, "source": "DockerDaemon", "platform": "docker", **extra}


# -- a fake control plane ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # None: what the real control plane would say to a good push
    stall: float = 0.0  # hold the answer back (up to this long, or until the fake stops)


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival
    client_port: int  # one port per TCP connection: tells keep-alive apart from reconnects


class FakeControlPlane:
    """Records every request; answers from ``script`` first, then 202 (rejecting batch items ``reject`` picks)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: deque[Answer] = deque()
        self.reject: Callable[[Any], bool] = lambda item: False
        self.store_id: str | None = None  # the storeId of its 2xx answers and of /healthz, if any
        self.healthz: list[float] = []  # time.monotonic() of each GET /healthz
        self.healthz_status = 200
        self.port = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen on the same port as before, if there was a before (a control plane coming back)."""
        self.release.clear()
        self._server = _Server(("127.0.0.1", self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02})
        self._thread.start()

    def stop(self) -> None:
        """Down for real: no listener, and the kept-alive connections are cut."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5.0)
        server.cut_connections()
        self._server = self._thread = None

    def items(self) -> list[Any]:
        """Every update received, batches flattened, in arrival order."""
        with self.lock:
            bodies = [s.body for s in self.seen]
        return [item for body in bodies for item in (body if isinstance(body, list) else [body])]

    def ids(self) -> list[str]:
        return [item["instanceId"] for item in self.items()]

    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)

    def respond(self, body: Any) -> tuple[Answer, Any]:
        """Choose the answer (called by the handler)."""
        with self.lock:
            answer = self.script.popleft() if self.script else Answer()
            store_id = self.store_id
        if answer.body is not None or answer.status != 202:
            return answer, answer.body
        answer, reply = self._accept(answer, body)
        if store_id is not None and answer.status == 202:
            reply["storeId"] = store_id
        return answer, reply

    def _accept(self, answer: Answer, body: Any) -> tuple[Answer, dict[str, Any]]:
        """What the real control plane says to a good push."""
        if not isinstance(body, list):
            return answer, {"status": "accepted", "instanceId": body.get("instanceId")}
        results = [
            {"index": i, "status": "rejected", "error": "invalid", "detail": "refused by the test", "field": f"[{i}]"}
            if self.reject(item)
            else {"index": i, "status": "accepted"}
            for i, item in enumerate(body)
        ]
        accepted = sum(1 for r in results if r["status"] == "accepted")
        status = 202 if accepted else 422
        return Answer(status), {"accepted": accepted, "rejected": len(body) - accepted, "results": results}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeControlPlane):
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
    server: _Server

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.loads(raw)
        fake = self.server.fake
        with fake.lock:
            fake.seen.append(Seen(self.path, dict(self.headers), body, time.monotonic(), self.client_address[1]))
        answer, reply = fake.respond(body)
        if answer.stall:
            fake.release.wait(answer.stall)
        data = json.dumps(reply if reply is not None else {"error": "scripted"}).encode()
        with contextlib.suppress(OSError):  # the client may have given up waiting
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_GET(self) -> None:
        fake = self.server.fake
        with fake.lock:
            if self.path == "/healthz":
                fake.healthz.append(time.monotonic())
            status, store_id = fake.healthz_status, fake.store_id
        answer: dict[str, Any] = {"status": "alive"} if store_id is None else {"status": "alive", "storeId": store_id}
        data = json.dumps(answer if self.path == "/healthz" and status == 200 else {"error": "no"}).encode()
        with contextlib.suppress(OSError):
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeControlPlane]:
    server = FakeControlPlane()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., PushClient]]:
    clients: list[PushClient] = []

    def make(url: str, **overrides: Any) -> PushClient:
        values: dict[str, Any] = {"url": url, "api_key": KEY, "spool_path": tmp_path / "spool" / "push.db", **FAST}
        client = PushClient(PushSettings(**{**values, **overrides}))
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close(timeout=0.5)


def wait_for_stats(client: PushClient, timeout: float = 5.0, **expected: int) -> PushStats:
    def check() -> PushStats | None:
        stats = client.stats
        return stats if all(getattr(stats, k) == v for k, v in expected.items()) else None

    result = wait_until(check, timeout, 0.01, f"push stats reach {expected}")
    assert result is not None
    return result


# -- forms and headers ------------------------------------------------------------------------------


def test_one_pending_update_goes_as_one_object_with_the_daemon_key_over_one_kept_alive_connection(
    fake: FakeControlPlane, make_client: Callable[..., PushClient]
) -> None:
    client = make_client(fake.url)
    client.start()
    for i in range(3):
        client.submit([update(f"web-{i}", metadata={"exitCode": 0})])
        assert client.flush(5.0)

    seen = fake.requests()
    assert [s.body["instanceId"] for s in seen] == ["web-0", "web-1", "web-2"]
    assert all(isinstance(s.body, dict) for s in seen)
    assert {s.path for s in seen} == {"/api/status/updates"}
    assert {s.headers["X-API-Key"] for s in seen} == {KEY}
    assert {s.headers["Content-Type"] for s in seen} == {"application/json"}
    assert len({s.client_port for s in seen}) == 1  # keep-alive: one TCP connection for all three
    assert seen[0].body["metadata"] == {"exitCode": 0}
    assert isinstance(seen[0].body["observedAt"], float)
    assert client.stats == PushStats(submitted=3, acknowledged=3)


def test_a_backlog_goes_as_batches_of_at_most_batch_max_in_order(
    fake: FakeControlPlane, make_client: Callable[..., PushClient]
) -> None:
    client = make_client(fake.url, batch_max=3)
    for i in range(7):
        client.submit([update(f"web-{i}")])
    client.start()
    assert client.flush(5.0)

    bodies = [s.body for s in fake.requests()]
    assert [len(b) if isinstance(b, list) else "object" for b in bodies] == [3, 3, "object"]
    assert fake.ids() == [f"web-{i}" for i in range(7)]
    assert client.stats == PushStats(submitted=7, acknowledged=7)


# -- what is retried --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_retryable_answer_is_retried_until_accepted(
    fake: FakeControlPlane, make_client: Callable[..., PushClient], status: int
) -> None:
    fake.script.extend([Answer(status, body={"error": "busy"}), Answer(status, body={"error": "busy"})])
    client = make_client(fake.url)
    client.submit([update("web-1")])
    client.start()

    wait_for_stats(client, acknowledged=1)
    seen = fake.requests()
    assert len(seen) == 3
    assert seen[0].body == seen[1].body == seen[2].body
    assert client.stats == PushStats(submitted=1, acknowledged=1, retried=2)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_a_final_refusal_is_logged_dropped_counted_and_never_retried(
    fake: FakeControlPlane, make_client: Callable[..., PushClient], caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.WARNING, logger="daemons.push_client")
    fake.script.append(Answer(status, body={"error": "no", "detail": "scripted refusal", "field": None}))
    client = make_client(fake.url)
    client.submit([update("refused-one")])
    client.start()
    wait_for_stats(client, dropped_rejected=1, pending=0)

    # The next update is the next request: the refused one was not sent again in between.
    client.submit([update("next-one")])
    wait_for_stats(client, acknowledged=1)
    assert fake.ids() == ["refused-one", "next-one"]
    records = [r for r in caplog.records if f"HTTP {status}" in r.getMessage()]
    assert len(records) == 1
    if status in (401, 403):
        assert records[0].levelno == logging.ERROR
        assert "key" in records[0].getMessage()
    else:
        assert records[0].levelno == logging.WARNING
        assert '"instanceId":"refused-one"' in records[0].getMessage()  # the body that was sent
    assert KEY not in caplog.text


def test_retry_after_is_honoured(fake: FakeControlPlane, make_client: Callable[..., PushClient]) -> None:
    fake.script.append(Answer(503, headers={"Retry-After": "1"}, body={"error": "maintenance"}))
    client = make_client(fake.url)
    client.submit([update("web-1")])
    client.start()

    wait_for_stats(client, acknowledged=1)
    first, second = fake.requests()
    # Without Retry-After the backoff here is at most 0.05 s.
    assert 0.95 <= second.at - first.at < 2.5


def test_a_huge_retry_after_is_capped(fake: FakeControlPlane, make_client: Callable[..., PushClient]) -> None:
    fake.script.append(Answer(429, headers={"Retry-After": "3600"}, body={"error": "slow down"}))
    client = make_client(fake.url, retry_after_max=0.3)
    client.submit([update("web-1")])
    client.start()

    wait_for_stats(client, acknowledged=1)
    first, second = fake.requests()
    assert 0.25 <= second.at - first.at < 2.0


def test_an_answer_slower_than_the_read_timeout_is_retried(
    fake: FakeControlPlane, make_client: Callable[..., PushClient]
) -> None:
    fake.script.append(Answer(stall=10.0))  # held until the fake stops, long after the client gave up
    client = make_client(fake.url, read_timeout=0.2)
    client.submit([update("web-1")])
    client.start()

    wait_for_stats(client, acknowledged=1, retried=1)
    assert fake.ids() == ["web-1", "web-1"]


# -- batches answered item by item ------------------------------------------------------------------


def test_a_rejected_batch_item_is_logged_and_dropped_and_the_others_acknowledged(
    fake: FakeControlPlane, make_client: Callable[..., PushClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="daemons.push_client")
    fake.reject = lambda item: item["status"] == "Dozing"
    client = make_client(fake.url)
    client.submit([update("web-0"), update("web-1"), update("web-2", "Dozing"), update("web-3")])
    client.start()
    wait_for_stats(client, acknowledged=3, dropped_rejected=1, pending=0)

    client.submit([update("web-4")])
    wait_for_stats(client, acknowledged=4)
    assert fake.ids() == ["web-0", "web-1", "web-2", "web-3", "web-4"]  # nothing was sent twice
    (record,) = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert '"status":"Dozing"' in record.getMessage() and "refused by the test" in record.getMessage()


# -- outages, the bound, restarts -------------------------------------------------------------------


def test_updates_made_during_an_outage_are_replayed_in_order_and_none_is_lost(
    fake: FakeControlPlane, make_client: Callable[..., PushClient]
) -> None:
    client = make_client(fake.url)
    client.start()
    client.submit([update("before")])
    assert client.flush(5.0)

    fake.stop()  # also cuts the kept-alive connection the client holds
    for i in range(50):
        client.submit([update(f"during-{i:02d}", observedAt=1000.0 + i)])
    wait_for_stats(client, pending=50)
    wait_until(lambda: client.stats.retried >= 3, 5.0, 0.01, "the client keeps trying")
    assert client.stats.acknowledged == 1  # nothing left the spool while nobody answered

    fake.start()
    wait_for_stats(client, acknowledged=51, pending=0)
    assert fake.ids() == ["before"] + [f"during-{i:02d}" for i in range(50)]
    assert isinstance(fake.requests()[1].body, list)  # the backlog went as a batch
    stats = client.stats
    assert (stats.submitted, stats.dropped_full, stats.dropped_rejected) == (51, 0, 0)


def test_a_full_spool_during_an_outage_keeps_the_newest_and_counts_the_dropped(
    fake: FakeControlPlane, make_client: Callable[..., PushClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="daemons.push_client")
    fake.stop()
    client = make_client(fake.url, spool_max_items=5)
    client.start()
    for i in range(8):
        client.submit([update(f"web-{i}")])
    assert client.stats.dropped_full == 3
    assert len([r for r in caplog.records if "spool full" in r.getMessage()]) == 1  # rate-limited

    fake.start()
    wait_for_stats(client, acknowledged=5, pending=0)
    assert fake.ids() == [f"web-{i}" for i in range(3, 8)]
    assert client.stats == PushStats(submitted=8, acknowledged=5, retried=client.stats.retried, dropped_full=3)


def test_a_new_client_on_the_same_spool_sends_what_the_last_one_left_in_order(
    fake: FakeControlPlane, make_client: Callable[..., PushClient]
) -> None:
    fake.stop()
    first = make_client(fake.url)
    first.start()
    first.submit([update(f"web-{i}") for i in range(10)])
    first.close(timeout=0.2)
    assert first.stats.pending == 10

    fake.start()
    second = make_client(fake.url)
    assert second.stats.pending == 10
    second.start()
    wait_for_stats(second, acknowledged=10, pending=0)
    assert fake.ids() == [f"web-{i}" for i in range(10)]


CRASHING_DAEMON = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from daemons.push_client import PushClient, PushSettings
    client = PushClient(PushSettings(url=sys.argv[1], api_key="k", spool_path=Path(sys.argv[2])))
    for i in range(20):
        client.submit([{"instanceId": f"web-{i}", "status": "Running", "source": "t"}])
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no flush: a crash right after submit returned
    """
)


def test_what_submit_returned_for_survives_a_crash_of_the_daemon(tmp_path: Path) -> None:
    path = tmp_path / "crash" / "push.db"
    # Port 9 on 127.0.0.1 is never contacted: the sender is not started.
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_DAEMON, "http://127.0.0.1:9", str(path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == -9, result.stderr.decode()
    spool = Spool(path, max_items=100)
    try:
        assert [json.loads(i.body)["instanceId"] for i in spool.peek(100)] == [f"web-{i}" for i in range(20)]
    finally:
        spool.close()


# -- the outbox: another store, and the periodic resync ------------------------------------------------


def daemon_update(instance_id: str, status: Status, observed_at: float, **metadata: str | int) -> StatusUpdate:
    return StatusUpdate(
        instance_id=instance_id, workload_id=f"c-{instance_id}", status=status, observed_at=observed_at,
        source="DockerDaemon", platform=Platform.DOCKER, metadata=metadata,
    )


@contextlib.contextmanager
def running_outbox(
    url: str, spool: Path, *, resync_interval: float = 3600.0, store_check_interval: float = 3600.0
) -> Iterator[Outbox]:
    settings = CommonSettings(control_plane_url=url, api_key=KEY, spool_path=spool, resync_interval=resync_interval,
                              store_check_interval=store_check_interval, shutdown_flush=1.0)
    push = PushClient(PushSettings(url=url, api_key=KEY, spool_path=spool, **FAST))
    outbox = Outbox(settings, logging.getLogger("test-outbox"), push)
    try:
        outbox.start()
        yield outbox
    finally:
        outbox.close()


def test_an_answer_from_another_store_makes_the_outbox_push_every_last_update_again_once(
    fake: FakeControlPlane, tmp_path: Path
) -> None:
    spool = tmp_path / "spool" / "push.db"
    web, db = daemon_update("web", Status.RUNNING, 100.0), daemon_update("db", Status.FAILED, 101.0, exitCode=3)
    gone = daemon_update("gone", Status.REMOVED, 102.0)
    fake.store_id = "store-a"
    with running_outbox(fake.url, spool) as outbox:
        outbox.send([web, db, daemon_update("gone", Status.RUNNING, 99.0)])
        outbox.send([gone])
        assert outbox.push.flush(5.0)
        assert (len(fake.items()), outbox.snapshots) == (4, 0)  # the first store ever seen is only written down

        fake.store_id = "store-b"  # a new, empty control plane at the same URL
        newer = daemon_update("web", Status.UNHEALTHY, 103.0)
        outbox.send([newer])
        wait_until(lambda: len(fake.items()) >= 7, 5.0, 0.01, "the snapshot reaches store B")
        assert outbox.push.flush(5.0)
        outbox.send([daemon_update("db", Status.FAILED, 104.0, exitCode=3)])
        assert outbox.push.flush(5.0)
        snapshots = outbox.snapshots
    # What B got: the update that met it, then every last update, each as first observed; nothing for "gone".
    items = fake.items()
    assert items[4] == newer.to_wire()
    assert sorted(items[5:7], key=lambda i: i["instanceId"]) == [db.to_wire(), newer.to_wire()]
    assert (len(items), snapshots) == (8, 1)

    # A restarted daemon pushes nothing again at start, and remembers store B: B's answers make no snapshot; a
    # third store does.
    with running_outbox(fake.url, spool) as outbox:
        outbox.send([daemon_update("web", Status.RUNNING, 105.0)])
        assert outbox.push.flush(5.0)
        assert outbox.snapshots == 0
        fake.store_id = "store-c"
        outbox.send([daemon_update("web", Status.UNHEALTHY, 106.0)])
        wait_until(lambda: outbox.snapshots == 1, 5.0, 0.01, "a snapshot for store C")
        assert outbox.push.flush(5.0)
    assert len(fake.items()) == 8 + 1 + 1 + 2


def test_the_outbox_pushes_every_last_update_again_each_resync_interval(
    fake: FakeControlPlane, tmp_path: Path
) -> None:
    web, db = daemon_update("web", Status.RUNNING, 100.0), daemon_update("db", Status.STOPPED, 101.0, exitCode=0)
    with running_outbox(fake.url, tmp_path / "spool" / "push.db", resync_interval=0.1) as outbox:
        outbox.send([web, db])
        wait_until(lambda: outbox.snapshots >= 3, 5.0, 0.01, "three periodic resyncs")
        assert outbox.push.flush(5.0)
    items = fake.items()
    assert items[:2] == [web.to_wire(), db.to_wire()]
    assert len(items) >= 2 + 2 * 3
    assert all(item in (web.to_wire(), db.to_wire()) for item in items)  # the same updates, as first observed


def test_a_quiet_outbox_asks_healthz_which_store_answers_and_refills_another_one(
    fake: FakeControlPlane, tmp_path: Path
) -> None:
    web, db = daemon_update("web", Status.RUNNING, 100.0), daemon_update("db", Status.STOPPED, 101.0, exitCode=0)
    fake.store_id = "store-a"
    with running_outbox(fake.url, tmp_path / "spool" / "push.db", store_check_interval=0.5) as outbox:
        # Busy: a push answered every 0.05 s or so, so no store check.
        for index in range(16):
            outbox.send([daemon_update("web", Status.RUNNING, 100.0 + index)])
            assert outbox.push.flush(5.0)
            time.sleep(0.05)  # the pace of a busy daemon, not a synchronisation
        assert fake.healthz == []
        last_push = time.monotonic()  # its answer comes after this
        outbox.send([web, db])
        assert outbox.push.flush(5.0)
        # Quiet: one check per interval, none before one interval has passed since the last answer.
        wait_until(lambda: len(fake.healthz) >= 2, 5.0, 0.01, "two store checks")
        assert fake.healthz[0] >= last_push + 0.5
        assert (outbox.snapshots, len(fake.items())) == (0, 18)  # store A all along: nothing pushed again

        fake.store_id = "store-b"  # a new, empty control plane at the same URL; the daemon has nothing new
        wait_until(lambda: len(fake.items()) >= 20, 5.0, 0.01, "the snapshot reaches store B")
        assert outbox.push.flush(5.0)
        assert outbox.snapshots == 1
        assert sorted(fake.items()[18:], key=lambda i: i["instanceId"]) == [db.to_wire(), web.to_wire()]
        checks = len(fake.healthz)
        wait_until(lambda: len(fake.healthz) >= checks + 2, 5.0, 0.01, "two more store checks")
        assert (outbox.snapshots, len(fake.items())) == (1, 20)  # store B now: once only
    assert not [t for t in threading.enumerate() if t.name == "outbox-resync"]  # nothing outlives the close


def test_a_failed_store_check_changes_nothing_and_pushes_go_on(fake: FakeControlPlane, tmp_path: Path) -> None:
    fake.store_id = "store-a"
    with running_outbox(fake.url, tmp_path / "spool" / "push.db", store_check_interval=0.1) as outbox:
        outbox.send([daemon_update("web", Status.RUNNING, 100.0)])
        assert outbox.push.flush(5.0)
        fake.store_id = "store-b"  # only /healthz could tell, and it fails
        fake.healthz_status = 503
        wait_until(lambda: len(fake.healthz) >= 3, 5.0, 0.01, "three failed store checks")
        assert (outbox.snapshots, outbox.store_checks, len(fake.items())) == (0, 0, 1)
        outbox.send([daemon_update("web", Status.UNHEALTHY, 101.0)])  # a push still goes, and meets store B
        wait_until(lambda: outbox.snapshots == 1, 5.0, 0.01, "the push's answer names store B")
        assert outbox.push.flush(5.0)
    assert outbox.store_checks == 0


# -- the real control plane -------------------------------------------------------------------------


def test_pushes_through_the_client_are_applied_by_the_real_control_plane(
    plane: RunningControlPlane, make_client: Callable[..., PushClient]
) -> None:
    client = make_client(plane.base_url, api_key=plane.daemon_key)
    client.submit([update("web-1", "Pending", observedAt=100.0), update("web-2", "Pending", observedAt=100.0)])
    client.submit([update("web-1", "Running", observedAt=101.0, metadata={"containerId": "abc123"})])
    client.submit([update("web-2", "Sleeping", observedAt=101.0)])  # not a status: rejected, dropped
    client.submit([update("web-2", "Failed", observedAt=102.0, metadata={"exitCode": 3})])
    client.start()
    assert client.flush(5.0)

    web1 = plane.wait_for("web-1", lambda v: v["status"] == "Running")
    web2 = plane.wait_for("web-2", lambda v: v["status"] == "Failed")
    assert (web1["platform"], web1["metadata"]["containerId"]) == ("docker", "abc123")
    assert web2["metadata"]["exitCode"] == "3"
    assert client.stats == PushStats(submitted=5, acknowledged=4, dropped_rejected=1)
    # Each instance went through its updates in the order they were submitted.
    assert [c["newStatus"] for c in plane.changes("web-1")] == ["Pending", "Running"]
    assert [c["newStatus"] for c in plane.changes("web-2")] == ["Pending", "Failed"]
