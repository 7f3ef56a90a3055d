"""``draasctl watch`` against a scripted SSE server on 127.0.0.1: it prints each change once, and after a broken
connection it reconnects with Last-Event-ID and the storeId it read, with its filters; a refusal exits 1."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.ctl_support import ROOT, ctl, ctl_command, ctl_env

HOLD_SECONDS = 10.0  # the longest a scripted connection stays open once its events are sent


def change(cursor: int, new: str) -> bytes:
    data = {"cursor": cursor, "kind": "status", "instanceId": "svc", "platform": "process", "oldStatus": "Running",
            "newStatus": new, "source": "process-monitor", "timestamp": "2026-01-01T00:00:00Z", "metadata": {}}
    return f"id: {cursor}\nevent: StatusChanged\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class Script:
    """What each connection answers, in turn; what each request carried."""

    answers: list[tuple[int, bytes]]
    seen: list[tuple[dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def serve(script: Script) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes: a stream the server can break

        def do_GET(self) -> None:
            script.seen.append((parse_qs(urlsplit(self.path).query), dict(self.headers.items())))
            status, body = script.answers.pop(0) if script.answers else (200, b"")
            self.send_response(status)
            self.send_header("Content-Type", "text/event-stream" if status == 200 else "application/json")
            self.send_header("X-Draas-Store-Id", "store-1")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if status == 200 and not script.answers:
                script.done.wait(HOLD_SECONDS)  # the last connection stays open, as a live stream does

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = False  # server_close joins the handler threads: none outlives the test
    threading.Thread(target=server.serve_forever, name="fake-sse", daemon=True).start()
    return server


@pytest.fixture
def fake() -> Iterator[tuple[Script, ThreadingHTTPServer]]:
    script = Script([])
    server = serve(script)
    try:
        yield script, server
    finally:
        script.done.set()
        server.shutdown()
        server.server_close()


def url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_watch_resumes_after_a_break_with_last_event_id_and_its_filters(
    fake: tuple[Script, ThreadingHTTPServer], tmp_path: Path
) -> None:
    script, server = fake
    script.answers += [
        (200, b": stream of store store-1 after cursor 0\n\n" + change(1, "Failed") + change(2, "Restarting")),
        (200, change(3, "Running") + b"id: 9\nevent: gap\ndata: 10\n\n"),
    ]
    env = ctl_env(tmp_path, DRAAS_URL=url(server), DRAAS_API_KEY="k" * 32)
    watcher = subprocess.Popen(
        ctl_command("watch", "svc", "--platform", "process", "--status", "failed", "--status", "running"),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert watcher.stdout is not None
        lines = [watcher.stdout.readline() for _ in range(3)]
        assert [line.split()[1] for line in lines] == ["#1", "#2", "#3"]
        assert "Running -> Failed" in lines[0]
        assert watcher.stderr is not None
        notes = [watcher.stderr.readline() for _ in range(2)]
        assert "reconnecting after #2" in notes[0]
        assert "going on from #10" in notes[1]  # the gap, said on stderr
    finally:
        watcher.send_signal(signal.SIGINT)
        script.done.set()
        watcher.communicate(timeout=10)
    assert watcher.returncode == 0
    (first_query, first_headers), (second_query, second_headers) = script.seen[:2]
    assert first_query == {"instanceId": ["svc"], "platform": ["process"], "status": ["failed", "running"]}
    assert "Last-Event-ID" not in first_headers
    assert second_headers["Last-Event-ID"] == "2"
    assert second_query["storeId"] == ["store-1"]
    assert second_headers["X-API-Key"] == "k" * 32


def test_watch_exits_1_with_the_field_when_the_stream_is_refused(
    fake: tuple[Script, ThreadingHTTPServer], tmp_path: Path
) -> None:
    script, server = fake
    script.answers.append((422, json.dumps({"error": "invalid input", "detail": "status: no such status",
                                            "field": "status"}).encode()))
    refused = ctl(ctl_env(tmp_path, DRAAS_URL=url(server), DRAAS_API_KEY="k" * 32), "watch", "--status", "sleepy")
    assert refused.returncode == 1
    assert "(field: status)" in refused.stderr


def test_watch_gives_up_after_retry_for_without_a_connection(tmp_path: Path) -> None:
    # Port 9 (discard) on 127.0.0.1: nothing listens, every connection is refused at once.
    gone = ctl(ctl_env(tmp_path, DRAAS_URL="http://127.0.0.1:9", DRAAS_API_KEY="k" * 32), "watch", "--retry-for", "1")
    assert gone.returncode == 1
    assert "gave up after 1s" in gone.stderr
    assert "reconnecting" in gone.stderr
