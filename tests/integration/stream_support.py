"""A real SSE client (sseclient-py over requests) for the stream tests, each read bounded by a deadline."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import sseclient

from draas_actors.security import AuthSettings, Credential, SecuritySettings, daemon_identity, hash_key, new_key
from tests.helpers import HTTP_TIMEOUT, RunningControlPlane, running_control_plane

STREAM = "/api/status/stream"
READ_TIMEOUT = 5.0  # seconds one socket read may wait; the tests' heartbeats come much sooner
# A daemon without the default rate limits: the tests make thousands of changes, and measure the stream, not pushes.
PUSH_KEY = new_key()
UNLIMITED = daemon_identity("stream-test-daemon", rate=1e9, burst=10**9, request_rate=1e9, request_burst=10**9)
SECURITY = SecuritySettings(auth=AuthSettings(credentials=(Credential(identity=UNLIMITED,
                                                                      key_hashes=(hash_key(PUSH_KEY),)),)))


@contextlib.contextmanager
def stream_plane(data_dir: Path, **options: Any) -> Iterator[RunningControlPlane]:
    """``running_control_plane`` with ``options``, and ``PUSH_KEY``'s daemon unlimited."""
    with running_control_plane(data_dir, security=SECURITY, **options) as plane:
        yield plane


def push_update(plane: RunningControlPlane, body: Any) -> requests.Response:
    """POST /api/status/updates with ``PUSH_KEY``."""
    return requests.post(plane.base_url + "/api/status/updates", json=body, headers={"X-API-Key": PUSH_KEY},
                         timeout=HTTP_TIMEOUT)


@dataclass
class Event:
    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def cursor(self) -> int:
        assert self.id is not None, self
        return int(self.id)


class Stream:
    """GET /api/status/stream, its events read as they come."""

    def __init__(
        self, plane: RunningControlPlane, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.response = requests.get(
            plane.base_url + STREAM, params=params, headers={**plane.operator_headers, **(headers or {})},
            stream=True, timeout=(5.0, READ_TIMEOUT),
        )
        assert self.response.status_code == 200, self.response.text
        self._events: Iterator[sseclient.Event] = sseclient.SSEClient(
            self.response.iter_content(chunk_size=None)
        ).events()

    def next(self) -> Event:
        raw = next(self._events)
        return Event(raw.event, raw.id, raw.data)

    def take(self, count: int, timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        got: list[Event] = []
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} events came: {got}"
            got.append(self.next())
        return got

    def until_cursor(self, cursor: int, timeout: float = 10.0) -> list[Event]:
        """Events until a StatusChanged at or past ``cursor``."""
        deadline = time.monotonic() + timeout
        got: list[Event] = []
        while not got or got[-1].event != "StatusChanged" or got[-1].cursor < cursor:
            assert time.monotonic() < deadline, f"no event reached cursor {cursor}: {got[-3:]}"
            got.append(self.next())
        return got

    def rest(self) -> list[Event]:
        """Every event until the server ends the response."""
        return [Event(e.event, e.id, e.data) for e in self._events]

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def push_status(plane: RunningControlPlane, instance_id: str, status: str, platform: str = "docker") -> None:
    response = push_update(plane, {"instanceId": instance_id, "status": status, "source": "test", "platform": platform})
    assert response.status_code == 202, response.text


def push_alternating(plane: RunningControlPlane, instance_ids: list[str], count: int) -> None:
    """``count`` updates in batches, each a change: the instances go Running, Stopped, Running, ..."""
    statuses = ("Running", "Stopped")
    for first in range(0, count, len(instance_ids)):
        batch = [
            {"instanceId": instance_id, "status": statuses[(first // len(instance_ids)) % 2], "source": "test",
             "platform": "docker"}
            for instance_id in instance_ids[: count - first]
        ]
        response = push_update(plane, batch)
        assert response.status_code == 202 and response.json()["applied"] == len(batch), response.text


def head(plane: RunningControlPlane) -> int:
    return plane.cp.feed.head


def log_cursors(plane: RunningControlPlane, after: int) -> list[int]:
    """Every cursor in the change log after ``after``."""
    cursors: list[int] = []
    while True:
        page = plane.get("/api/status/changes", params={"after": after, "limit": 1000}).json()
        if not page["changes"]:
            return cursors
        cursors += [c["cursor"] for c in page["changes"]]
        after = page["nextCursor"]


def in_background(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def stream_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("draas-stream-")]
