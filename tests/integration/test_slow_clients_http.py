"""Slow clients over real sockets (see draas_actors/api/admission.py): hundreds of connections that trickle a header
line now and then lock out neither a daemon's pushes nor an operator's reads, and each is closed after the request
timeout."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import requests

from draas_actors.api.server import ServerLimits
from tests.helpers import ProcessJanitor, running_control_plane, wait_until

REQUEST_TIMEOUT = 4.0
PER_ADDRESS = 30
# Linux routes all of 127.0.0.0/8 to lo: the slow clients come from 10 addresses of their own, 30 each.
SLOW_SOURCES = tuple(f"127.0.0.{n}" for n in range(2, 12))
UPDATE = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "platform": "docker"}


class SlowClient:
    """A connection that sends a request line and then a header line now and then, and never finishes."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(2.0)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"POST /api/status/updates HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.sock.setblocking(False)  # from here on nothing waits (a timeout would make recv wait for it)
        self.opened = time.monotonic()
        self.received = b""
        self.closed_at: float | None = None
        self.lines = 0

    def trickle(self) -> None:
        if self.closed_at is None:
            self.lines += 1
            try:
                self.sock.send(f"X-Slow-{self.lines}: 1\r\n".encode())
            except BlockingIOError:
                pass  # the server is not reading: that is its right
            except OSError:
                self.closed_at = time.monotonic()

    def closed_by_server(self) -> bool:
        """Reads what has arrived without blocking; True once the server has closed the connection."""
        while self.closed_at is None:
            try:
                chunk = self.sock.recv(4096)
            except BlockingIOError:
                return False
            except OSError:  # reset: closed with our bytes unread
                chunk = b""
            if not chunk:
                self.closed_at = time.monotonic()
            self.received += chunk
        return True


def test_slow_clients_lock_out_neither_a_daemons_pushes_nor_an_operators_reads(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    limits = ServerLimits(request_timeout=REQUEST_TIMEOUT, connections_per_address=PER_ADDRESS, refusal_hold=0.0)
    with running_control_plane(tmp_path / "data", janitor=janitor, server_limits=limits) as plane:
        port = plane.server.port
        slow: list[SlowClient] = []
        daemon = requests.Session()  # a daemon's push client keeps its connection
        try:
            for source in SLOW_SOURCES:
                slow.extend(SlowClient(port, source) for _ in range(PER_ADDRESS))
            full = {"general": ServerLimits.connection_limit, "reserve": ServerLimits.reserved_connections}
            wait_until(
                lambda: {k: plane.server.connections()[k] for k in full} == full, 5.0, 0.02,
                "the slow clients take every general and reserved connection",
            )
            # One more from an address at its cap takes the place of that address's longest-waiting connection.
            one_too_many = SlowClient(port, SLOW_SOURCES[0])
            slow.append(one_too_many)
            wait_until(slow[0].closed_by_server, 1.0, 0.01, "the address's oldest connection is closed")
            assert not one_too_many.closed_by_server()
            assert [i for i, client in enumerate(slow[:PER_ADDRESS]) if client.closed_by_server()] == [0]

            for round_ in range(5):
                for client in slow:
                    client.trickle()
                started = time.monotonic()
                pushed = daemon.post(
                    plane.base_url + "/api/status/updates", json={**UPDATE, "metadata": {"round": str(round_)}},
                    headers=plane.daemon_headers, timeout=1.0,
                )
                assert pushed.status_code == 202, pushed.text
                assert time.monotonic() - started < 1.0
                started = time.monotonic()
                read = requests.get(
                    plane.base_url + "/api/instances/web-1", headers=plane.operator_headers, timeout=1.0
                )
                assert read.status_code == 200, read.text
                assert time.monotonic() - started < 1.0
            # All of that while the slow clients held the general pool (they are closed only after REQUEST_TIMEOUT).
            assert plane.server.connections()["general"] == ServerLimits.connection_limit
            assert read.json()["metadata"] == {"round": "4"}

            last_opened = max(client.opened for client in slow)
            wait_until(
                lambda: all([client.closed_by_server() for client in slow]), last_opened + REQUEST_TIMEOUT + 3.0
                - time.monotonic(), 0.05, "the server closes every slow connection after the request timeout",
            )
            held = [client for client in slow if client.received]  # those that lasted to the timeout were answered
            assert len(held) >= ServerLimits.connection_limit
            assert all(client.received.startswith(b"HTTP/1.1 408 ") for client in held)
            assert all(
                REQUEST_TIMEOUT <= (client.closed_at or 0.0) - client.opened < REQUEST_TIMEOUT + 2.5 for client in held
            )
        finally:
            daemon.close()
            for client in slow:
                client.sock.close()
        wait_until(lambda: plane.server.connections()["general"] == 0, 2.0, message="every slow connection is gone")
