"""Input limits, rate limits and slow clients over real HTTP: each refusal has its status, names its field, and
changes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from draas_actors.api.server import ServerLimits
from draas_actors.security import (
    AuthSettings,
    Credential,
    LimitSettings,
    SecuritySettings,
    daemon_identity,
    hash_key,
)
from tests.helpers import (
    ProcessJanitor,
    RunningControlPlane,
    running_control_plane,
    wait_until,
)

MAX_BODY = 4096
UPDATE = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "platform": "docker"}
OTHER_KEY = "other-daemon-key-0123456789abcdef"


@contextlib.contextmanager
def limited_plane(
    tmp_path: Path, janitor: ProcessJanitor, *, limits: LimitSettings | None = None,
    server: ServerLimits | None = None,
) -> Iterator[RunningControlPlane]:
    """A control plane with small limits, the quick-start daemon key, and a second daemon identity ``other``."""
    limits = limits or LimitSettings(max_body_bytes=MAX_BODY)
    security = SecuritySettings(
        auth=AuthSettings(credentials=(
            Credential(identity=daemon_identity("other"), key_hashes=(hash_key(OTHER_KEY),)),
        )),
        limits=limits,
    )
    server = server or ServerLimits(max_body_bytes=limits.max_body_bytes, refusal_hold=0.0)
    with running_control_plane(tmp_path / "data", janitor=janitor, security=security, server_limits=server) as plane:
        yield plane


@pytest.fixture
def small(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with limited_plane(tmp_path, janitor) as plane:
        yield plane


def post(plane: RunningControlPlane, body: bytes | Any, content_type: str | None = "application/json",
         key: str | None = None, path: str = "/api/status/updates") -> requests.Response:
    headers = {"X-API-Key": key or plane.daemon_key}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return requests.post(plane.base_url + path, data=body, headers=headers, timeout=5)


def assert_error(response: requests.Response, status: int, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error: dict[str, Any] = response.json()
    assert set(error) == {"error", "detail", "field"}
    assert error["field"] == field
    return error


def instance_ids(plane: RunningControlPlane) -> set[str]:
    response = plane.get("/api/instances")
    assert response.status_code == 200
    return {view["instanceId"] for view in response.json()["instances"]}


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it or answers one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


# -- body size -------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_with_413_and_nothing_is_applied(small: RunningControlPlane) -> None:
    batch = [{**UPDATE, "instanceId": f"web-{i}"} for i in range(60)]
    body = json.dumps(batch).encode()
    assert len(body) > MAX_BODY

    response = post(small, body)

    assert_error(response, 413, "body")
    assert instance_ids(small) == set()


def test_a_body_at_the_limit_is_read(small: RunningControlPlane) -> None:
    body = json.dumps({**UPDATE, "metadata": {"pad": ""}}).encode()
    padded = json.dumps({**UPDATE, "metadata": {"pad": "x" * (MAX_BODY - len(body))}}).encode()
    assert len(padded) == MAX_BODY

    response = post(small, padded)

    assert_error(response, 422, "metadata.pad")  # read and parsed in full; only its value is too long


def test_a_chunked_body_over_the_limit_is_refused_with_413(small: RunningControlPlane) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'[{"instanceId": "web-1", "status": "Running", "source": "x"}'
        for _ in range(100):
            yield b', {"instanceId": "web-1", "status": "Running", "source": "x"}'
        yield b"]"

    response = post(small, chunks())

    assert_error(response, 413, "body")
    assert instance_ids(small) == set()


def test_a_chunked_body_within_the_limit_is_accepted(small: RunningControlPlane) -> None:
    response = post(small, iter([json.dumps(UPDATE).encode()]))

    assert response.status_code == 202, response.text
    assert instance_ids(small) == {"web-1"}


def test_a_content_length_far_beyond_the_limit_is_refused_before_the_body_is_sent(small: RunningControlPlane) -> None:
    # Headers only: the server answers without waiting for the 100 MB it was promised.
    head = (
        f"POST /api/status/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {small.daemon_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    ).encode()

    answer = raw_exchange(small.server.port, head)

    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_request_headers_over_the_limit_are_refused_with_431(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with limited_plane(tmp_path, janitor, server=ServerLimits(max_header_bytes=2048)) as plane:
        response = requests.get(plane.base_url + "/healthz", headers={"X-Padding": "x" * 4096}, timeout=5)

        assert response.status_code == 431
        assert plane.get("/healthz").status_code == 200


# -- content type ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1", "application/jsonx"])
def test_a_body_that_is_not_json_is_refused_with_415(small: RunningControlPlane, content_type: str | None) -> None:
    response = post(small, json.dumps(UPDATE).encode(), content_type=content_type)

    assert_error(response, 415, "Content-Type")
    assert instance_ids(small) == set()


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                                          'application/json;charset="UTF-8"'])
def test_json_with_or_without_a_utf8_charset_is_accepted(small: RunningControlPlane, content_type: str) -> None:
    assert post(small, json.dumps(UPDATE).encode(), content_type=content_type).status_code == 202


def test_a_put_that_is_not_json_is_refused_with_415(small: RunningControlPlane) -> None:
    assert post(small, json.dumps(UPDATE).encode()).status_code == 202
    response = requests.put(
        small.base_url + "/api/instances/web-1/restart-policy", data=b"mode=never",
        headers={**small.operator_headers, "Content-Type": "application/x-www-form-urlencoded"}, timeout=5,
    )

    assert_error(response, 415, "Content-Type")


def test_a_post_without_a_body_needs_no_content_type(small: RunningControlPlane) -> None:
    assert post(small, json.dumps(UPDATE).encode()).status_code == 202

    response = requests.post(small.base_url + "/api/instances/web-1/restart", headers=small.operator_headers,
                             timeout=5)

    assert response.status_code != 415, response.text


# -- JSON depth and metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 30_000])
def test_deeply_nested_json_is_a_4xx_and_the_server_stays_ready(
    tmp_path: Path, janitor: ProcessJanitor, body: bytes
) -> None:
    limits = LimitSettings(max_body_bytes=1_048_576)
    with limited_plane(tmp_path, janitor, limits=limits) as plane:
        response = post(plane, body)

        assert response.status_code in (400, 422), response.text
        assert response.json()["field"] == "body"
        assert requests.get(plane.base_url + "/readyz", timeout=5).status_code == 200


def test_json_one_level_deeper_than_the_limit_is_refused_naming_the_body(small: RunningControlPlane) -> None:
    nested: Any = "deep"
    for _ in range(8):  # 8 objects inside the update object: 9 levels
        nested = {"k": nested}
    body = json.dumps({**UPDATE, "metadata": nested}).encode()

    error = assert_error(post(small, body), 422, "body")

    assert "8" in error["detail"]
    assert instance_ids(small) == set()


def test_too_many_metadata_keys_are_refused_naming_the_metadata(small: RunningControlPlane) -> None:
    body = json.dumps({**UPDATE, "metadata": {f"k{i}": i for i in range(65)}}).encode()

    assert_error(post(small, body), 422, "metadata")
    assert instance_ids(small) == set()


def test_a_long_metadata_value_is_refused_naming_its_key(small: RunningControlPlane) -> None:
    body = json.dumps({**UPDATE, "metadata": {"image": "x" * 1025}}).encode()

    assert_error(post(small, body), 422, "metadata.image")
    assert instance_ids(small) == set()


def test_metadata_limits_in_a_batch_refuse_only_the_item_and_name_it(small: RunningControlPlane) -> None:
    batch = [{**UPDATE, "metadata": {"image": "x" * 1025}}, {**UPDATE, "instanceId": "web-2"}]

    response = post(small, json.dumps(batch).encode())

    assert response.status_code == 202, response.text
    results = response.json()["results"]
    assert (results[0]["status"], results[0]["field"]) == ("rejected", "[0].metadata.image")
    assert results[1]["status"] == "accepted"
    assert instance_ids(small) == {"web-2"}


def test_a_lone_surrogate_is_refused_and_the_store_survives(small: RunningControlPlane) -> None:
    # Found by probing the API: json.loads accepts "\ud800"; the store actor died writing it, and listing failed.
    body = json.dumps({**UPDATE, "source": "Docker\ud800", "metadata": {"k": "\udfff"}}).encode()

    assert_error(post(small, body), 400, "body")
    assert instance_ids(small) == set()
    ready, details = small.cp.ready()
    assert ready and details["escalated"] == []


# -- rate limits -------------------------------------------------------------------------------------------


def rate_limited(tmp_path: Path, janitor: ProcessJanitor, **limits: Any) -> contextlib.AbstractContextManager[
        RunningControlPlane]:
    return limited_plane(tmp_path, janitor, limits=LimitSettings(max_body_bytes=MAX_BODY, **limits))


def test_pushes_beyond_the_burst_get_429_with_retry_after_and_are_not_applied(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    with rate_limited(tmp_path, janitor, push_rate=0.1, push_burst=3) as plane:
        for i in range(3):
            assert post(plane, json.dumps({**UPDATE, "instanceId": f"web-{i}"}).encode()).status_code == 202

        response = post(plane, json.dumps({**UPDATE, "instanceId": "web-3"}).encode())

        error = assert_error(response, 429, "rate")
        assert 1 <= int(response.headers["Retry-After"]) <= 10
        assert "local-daemon" in error["detail"]
        assert instance_ids(plane) == {"web-0", "web-1", "web-2"}


def test_a_batch_counts_its_items(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with rate_limited(tmp_path, janitor, push_rate=0.1, push_burst=10) as plane:
        first = [{**UPDATE, "instanceId": f"a-{i}"} for i in range(8)]
        second = [{**UPDATE, "instanceId": f"b-{i}"} for i in range(3)]

        assert post(plane, json.dumps(first).encode()).status_code == 202
        response = post(plane, json.dumps(second).encode())

        assert_error(response, 429, "rate")
        assert instance_ids(plane) == {f"a-{i}" for i in range(8)}
        # Two tokens are left (10 - 8), less the one the refused batch paid to be looked at.
        assert post(plane, json.dumps(UPDATE).encode()).status_code == 202


def test_a_batch_larger_than_the_burst_passes_a_full_bucket(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with rate_limited(tmp_path, janitor, push_rate=0.1, push_burst=5) as plane:
        batch = [{**UPDATE, "instanceId": f"web-{i}"} for i in range(12)]

        assert post(plane, json.dumps(batch).encode()).status_code == 202
        assert_error(post(plane, json.dumps(UPDATE).encode()), 429, "rate")


def test_single_pushes_beyond_the_request_burst_get_429_but_the_same_updates_in_one_batch_pass(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    # Plenty of update tokens: only the request bucket (its rate twice the update rate, burst 3) can refuse.
    with rate_limited(tmp_path, janitor, push_rate=0.1, push_burst=100, push_request_burst=3) as plane:
        for i in range(3):
            assert post(plane, json.dumps({**UPDATE, "instanceId": f"web-{i}"}).encode()).status_code == 202

        response = post(plane, json.dumps({**UPDATE, "instanceId": "web-3"}).encode())

        error = assert_error(response, 429, "requestRate")
        assert "in batches" in error["detail"] and 1 <= int(response.headers["Retry-After"]) <= 5
        assert instance_ids(plane) == {"web-0", "web-1", "web-2"}

    with rate_limited(tmp_path / "batch", janitor, push_rate=0.1, push_burst=100, push_request_burst=3) as plane:
        batch = [{**UPDATE, "instanceId": f"web-{i}"} for i in range(20)]

        assert post(plane, json.dumps(batch).encode()).status_code == 202
        assert instance_ids(plane) == {f"web-{i}" for i in range(20)}


def test_each_identity_has_its_own_bucket(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with rate_limited(tmp_path, janitor, push_rate=0.1, push_burst=1) as plane:
        assert post(plane, json.dumps(UPDATE).encode()).status_code == 202
        assert post(plane, json.dumps(UPDATE).encode()).status_code == 429

        response = post(plane, json.dumps({**UPDATE, "instanceId": "web-2"}).encode(), key=OTHER_KEY)

        assert response.status_code == 202, response.text


def test_operators_have_their_own_bucket(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with rate_limited(tmp_path, janitor, push_rate=0.1, push_burst=1, operator_rate=0.1, operator_burst=2) as plane:
        statuses = [plane.get("/api/instances").status_code for _ in range(3)]

        assert statuses == [200, 200, 429]
        assert post(plane, json.dumps(UPDATE).encode()).status_code == 202
        assert requests.get(plane.base_url + "/healthz", timeout=5).status_code == 200  # public: never limited


def test_after_a_429_the_callers_next_request_waits_but_other_callers_do_not(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    limits = LimitSettings(max_body_bytes=MAX_BODY, push_rate=0.1, push_burst=1)
    server = ServerLimits(max_body_bytes=MAX_BODY, refusal_hold=0.6)
    with limited_plane(tmp_path, janitor, limits=limits, server=server) as plane:
        assert post(plane, json.dumps(UPDATE).encode()).status_code == 202
        started = time.monotonic()
        assert post(plane, json.dumps(UPDATE).encode()).status_code == 429

        other = post(plane, json.dumps({**UPDATE, "instanceId": "web-2"}).encode(), key=OTHER_KEY)
        other_at = time.monotonic() - started
        again = post(plane, json.dumps(UPDATE).encode())
        again_at = time.monotonic() - started

        assert other.status_code == 202 and other_at < 0.5
        assert again.status_code == 429 and again_at >= 0.6


# -- slow clients ------------------------------------------------------------------------------------------


def test_a_client_that_stops_sending_mid_request_is_disconnected(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with limited_plane(tmp_path, janitor, server=ServerLimits(channel_timeout=1)) as plane:
        with socket.create_connection(("127.0.0.1", plane.server.port), timeout=10) as sock:
            sock.sendall(b"POST /api/status/updates HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
            started = time.monotonic()

            closed = sock.recv(1024)  # blocks until the server closes the connection (or 10 s pass)

            assert closed == b""
            assert 0.9 <= time.monotonic() - started < 5
        wait_until(lambda: plane.get("/healthz").status_code == 200, 5.0, message="the server still answers")


@pytest.mark.parametrize("batches", [1, 2], ids=["one batch of 1000", "two of 500, as the push client sends it"])
def test_with_the_default_limits_a_resync_of_1000_updates_does_not_delay_the_next_update(
    plane: RunningControlPlane, batches: int
) -> None:
    resync = [{**UPDATE, "instanceId": f"pod-{i}", "metadata": {"podName": f"pod-{i}-6d5f8"}} for i in range(1000)]
    size = len(resync) // batches
    for start in range(0, len(resync), size):
        assert plane.push(resync[start:start + size]).status_code == 202

    started = time.monotonic()
    response = plane.push({**UPDATE, "instanceId": "pod-7", "status": "Unhealthy"})
    assert response.status_code == 202, response.text  # not a 429 asking to come back in a second or more
    assert time.monotonic() - started < 0.5


# -- numbers, encodings and PIDs ---------------------------------------------------------------------------

POLICY_NUMBERS = ["initialBackoff", "multiplier", "maxBackoff", "resetAfter", "window", "jitter", "maxRestarts"]


@pytest.mark.parametrize("field", POLICY_NUMBERS)
def test_a_policy_number_too_big_for_a_float_is_a_422_naming_it(small: RunningControlPlane, field: str) -> None:
    # json.loads reads 1e999 as infinity: a view of the instance would then hold a bare Infinity, which is not JSON.
    body = ('{"instanceId": "big", "platform": "process", "process": {"command": ["sleep", "60"]}, '
            f'"restartPolicy": {{"{field}": 1e999}}}}').encode()
    response = post(small, body, key=small.operator_key, path="/api/instances")
    assert_error(response, 422, f"restartPolicy.{field}")
    assert "Infinity" not in response.text

    response = requests.put(
        small.base_url + "/api/instances/nobody/restart-policy", data=f'{{"{field}": 1e999}}',
        headers={"X-API-Key": small.operator_key, "Content-Type": "application/json"}, timeout=5,
    )
    assert_error(response, 422, field)


@pytest.mark.parametrize(("field", "value"), [("stopTimeout", "1e999"), ("stopTimeout", "1e10"), ("pid", "1e30")])
def test_a_process_number_out_of_bounds_is_a_422_naming_it(small: RunningControlPlane, field: str, value: str) -> None:
    process = f'{{"command": ["sleep", "60"], "{field}": {value}}}'
    body = f'{{"instanceId": "big", "platform": "process", "process": {process}}}'
    response = post(small, body.encode(), key=small.operator_key, path="/api/instances")
    assert_error(response, 422, f"process.{field}")
    assert instance_ids(small) == set()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(small: RunningControlPlane, constant: str) -> None:
    body = '{"instanceId": "nan", "platform": "process", "process": {"command": ["sleep", "60"]}, '
    body += f'"restartPolicy": {{"initialBackoff": {constant}}}}}'
    response = post(small, body.encode(), key=small.operator_key, path="/api/instances")
    error = assert_error(response, 400, "body")
    assert constant in error["detail"]


@pytest.mark.parametrize(
    "body",
    [json.dumps(UPDATE).encode("utf-16"), json.dumps(UPDATE).encode("utf-32"), json.dumps(UPDATE).encode("utf-16-le"),
     b'{"instanceId": "web-1", "status": "Running", "source": "Docker\xff"}'],
    ids=["utf-16-with-bom", "utf-32-with-bom", "utf-16-le", "invalid-utf-8"],
)
def test_a_body_that_is_not_utf_8_is_a_400(small: RunningControlPlane, body: bytes) -> None:
    # json.loads(bytes) guesses UTF-16 and UTF-32: these were accepted before.
    error = assert_error(post(small, body), 400, "body")
    assert "UTF-8" in error["detail"]
    assert instance_ids(small) == set()


@pytest.mark.parametrize("whose", ["init", "the control plane"])
def test_adopting_init_or_the_control_plane_itself_is_refused(small: RunningControlPlane, whose: str) -> None:
    pid = 1 if whose == "init" else os.getpid()
    body = json.dumps({"instanceId": "self", "platform": "process", "process": {"pid": pid}}).encode()
    error = assert_error(post(small, body, key=small.operator_key, path="/api/instances"), 422, "process.pid")
    assert whose in error["detail"]
    assert instance_ids(small) == set()
