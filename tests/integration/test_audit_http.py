"""The audit over real HTTP: every kind of refusal is recorded (store and log), floods are folded, admin reads it."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from draas_actors.security import new_key
from draas_actors.wire import parse_time
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane, wait_until
from tests.security_fixtures import MAX_BODY, UPDATE, staff_security

ADMIN_KEY, READ_KEY, OPERATE_KEY, DAEMON_KEY, ROGUE_KEY = (new_key() for _ in range(5))
SECURITY = staff_security(admin=ADMIN_KEY, read=READ_KEY, operate=OPERATE_KEY, daemon=DAEMON_KEY, rogue=ROGUE_KEY)


@pytest.fixture
def secured(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor, security=SECURITY) as running:
        yield running


def send(
    plane: RunningControlPlane, method: str, path: str, key: str | None = None, **kwargs: Any
) -> requests.Response:
    headers = {"X-API-Key": key} if key else {}
    return requests.request(
        method, plane.base_url + path, headers={**headers, **kwargs.pop("headers", {})}, timeout=HTTP_TIMEOUT,
        **kwargs,
    )


def audit(plane: RunningControlPlane, **params: Any) -> list[dict[str, Any]]:
    response = send(plane, "GET", "/api/audit", ADMIN_KEY, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "draas.audit" and r.levelno == logging.WARNING]


def clock_passes(moment: float) -> Callable[[], bool]:
    return lambda: time.time() >= moment


@dataclass(frozen=True)
class Refusal:
    method: str
    path: str  # with a query string that must never be recorded
    key: str | None
    status: int
    identity: str | None
    route: str
    reason: str  # a fragment of the recorded reason
    request: dict[str, Any] = field(default_factory=dict)
    twice: bool = False  # sent twice: the first is accepted (and not audited), the second refused


REFUSALS = {
    "401 no key": Refusal(
        "POST", "/api/status/updates?token=query-secret", None, 401, None, "/api/status/updates",
        "missing credentials", {"json": UPDATE},
    ),
    "401 wrong bearer key": Refusal(
        "GET", "/api/instances/web-1?token=query-secret", None, 401, None, "/api/instances/{instance_id}",
        "invalid API key", {"headers": {"Authorization": "Bearer not-a-configured-key-0123456789"}},
    ),
    "403 role": Refusal(
        "DELETE", "/api/instances/web-1?stop=false", READ_KEY, 403, "rita", "/api/instances/{instance_id}",
        "needs role 'admin'",
    ),
    "403 scope": Refusal(
        "POST", "/api/status/updates", DAEMON_KEY, 403, "docker-host-1", "/api/status/updates", "(field instanceId)",
        {"json": {**UPDATE, "instanceId": "db-1"}},
    ),
    # The body limits run before authentication: nobody is known yet.
    "413 body too large": Refusal(
        "POST", "/api/status/updates", DAEMON_KEY, 413, None, "/api/status/updates", "request body too large",
        {"json": {**UPDATE, "metadata": {"padding": "x" * MAX_BODY}}},
    ),
    "415 not JSON": Refusal(
        "POST", "/api/status/updates", DAEMON_KEY, 415, None, "/api/status/updates", "unsupported media type",
        {"data": b"instanceId=web-1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    ),
    "422 invalid update": Refusal(
        "POST", "/api/status/updates", DAEMON_KEY, 422, "docker-host-1", "/api/status/updates", "(field status)",
        {"json": {**UPDATE, "status": "Sleeping"}},
    ),
    "422 batch with nothing accepted": Refusal(
        "POST", "/api/status/updates", DAEMON_KEY, 422, "docker-host-1", "/api/status/updates",
        "all 2 updates rejected; first:", {"json": [{**UPDATE, "status": "Sleeping"}, {**UPDATE, "status": "Dozing"}]},
    ),
    "429 rate limit": Refusal(
        "POST", "/api/status/updates", ROGUE_KEY, 429, "rogue", "/api/status/updates", "rate limit exceeded",
        {"json": {**UPDATE, "instanceId": "rogue-1"}}, twice=True,
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_each_kind_of_refusal_is_audited_in_the_store_and_in_one_log_line(
    secured: RunningControlPlane, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    refusal = REFUSALS[case]
    if refusal.twice:
        assert send(secured, refusal.method, refusal.path, refusal.key, **dict(refusal.request)).status_code == 202
    started = time.time()

    response = send(secured, refusal.method, refusal.path, refusal.key, **dict(refusal.request))

    assert response.status_code == refusal.status, response.text
    if refusal.status == 429:
        assert int(response.headers["Retry-After"]) >= 1
    (entry,) = audit(secured)
    assert {k: entry[k] for k in ("identity", "client", "method", "route", "status", "count")} == {
        "identity": refusal.identity, "client": "127.0.0.1", "method": refusal.method, "route": refusal.route,
        "status": refusal.status, "count": 1,
    }
    assert refusal.reason in entry["reason"]
    assert "query-secret" not in entry["reason"] and "?" not in entry["route"]
    assert started - 0.001 <= parse_time(entry["time"], field="time") <= time.time()
    (line,) = audit_lines(caplog)
    assert f"{refusal.method} {refusal.route} from 127.0.0.1" in line
    assert f": {refusal.status} " in line and "query-secret" not in line


def test_what_is_not_a_refusal_is_not_audited(secured: RunningControlPlane, caplog: pytest.LogCaptureFixture) -> None:
    assert send(secured, "POST", "/api/status/updates", DAEMON_KEY, json=UPDATE).status_code == 202
    assert send(secured, "GET", "/api/instances/nobody", READ_KEY).status_code == 404
    assert send(secured, "GET", "/api/no-such-route", READ_KEY).status_code == 404
    assert send(secured, "PATCH", "/api/instances", ADMIN_KEY).status_code == 405
    assert send(secured, "POST", "/api/status/updates", DAEMON_KEY, data=b"{", headers={
        "Content-Type": "application/json"}).status_code == 400

    assert audit(secured) == []
    assert audit_lines(caplog) == []


def flood(
    plane: RunningControlPlane, key: str, body: Callable[[int], Any], connections: int, seconds: float
) -> tuple[Counter[int], float]:
    """Push ``body(n)`` as fast as ``connections`` kept-alive connections can for ``seconds``: statuses, elapsed."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def push(connection: int) -> None:
        with requests.Session() as session:
            for n in range(connection, 1_000_000, connections):
                if time.monotonic() >= deadline:
                    return
                answer = session.post(
                    plane.base_url + "/api/status/updates", json=body(n), headers={"X-API-Key": key},
                    timeout=HTTP_TIMEOUT,
                )
                with lock:
                    statuses[answer.status_code] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=push, args=(c,)) for c in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 2 * HTTP_TIMEOUT)
    return statuses, time.monotonic() - started


FLOODS = {  # status, key, connections, at least this many refused
    "401 wrong key": (401, "not-a-configured-key-0123456789", 4, 100),
    # Every body is refused for a different value, so every reason differs: folding must not compare it.
    "422 a new invalid status each time": (422, DAEMON_KEY, 4, 100),
    # The server holds a caller's requests for a second after each 429: fewer refusals (and fewer connections,
    # each of which waits its turn at the end), still folded.
    "429 rate limited": (429, ROGUE_KEY, 2, 2),
}


def flood_body(status: int) -> Callable[[int], Any]:
    if status == 422:
        return lambda n: {**UPDATE, "status": f"Dozing-{n}"}
    return lambda n: {**UPDATE, "instanceId": "rogue-1"}


@pytest.mark.parametrize("case", list(FLOODS), ids=list(FLOODS))
def test_a_flood_adds_at_most_one_entry_and_one_log_line_per_second_and_counts_every_refusal(
    secured: RunningControlPlane, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    status, key, connections, at_least = FLOODS[case]

    statuses, elapsed = flood(secured, key, flood_body(status), connections, seconds=2.0)

    refused = statuses[status]
    assert refused >= at_least, statuses
    entries = [e for e in audit(secured, limit=1000) if e["status"] == status]
    assert sum(e["count"] for e in entries) == refused
    assert 1 <= len(entries) <= int(elapsed) + 1, (len(entries), elapsed)
    lines = [line for line in audit_lines(caplog) if f": {status} " in line]
    assert len(lines) == len(entries)


def test_only_admin_reads_the_audit_and_the_refusals_to_read_it_are_audited(
    secured: RunningControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    refused = {
        "rita": send(secured, "GET", "/api/audit", READ_KEY).status_code,
        "otto": send(secured, "GET", "/api/audit", OPERATE_KEY).status_code,
        "docker-host-1": send(secured, "GET", "/api/audit", DAEMON_KEY).status_code,
        None: send(secured, "GET", "/api/audit").status_code,
    }

    assert refused == {"rita": 403, "otto": 403, "docker-host-1": 403, None: 401}
    entries = audit(secured)
    assert {(e["identity"], e["status"], e["route"]) for e in entries} == {
        (name, status, "/api/audit") for name, status in refused.items()
    }
    assert "needs role 'admin'; 'rita' has role 'read'" in next(e for e in entries if e["identity"] == "rita")["reason"]


def test_the_audit_is_newest_first_and_takes_since_and_limit(secured: RunningControlPlane) -> None:
    for path in ("/api/instances", "/api/status/changes", "/api/audit"):
        assert send(secured, "GET", path, "not-a-configured-key-0123456789").status_code == 401
        # Times are shown to the millisecond: let each entry have its own, so that `since` can tell them apart.
        wait_until(clock_passes(time.time() + 0.002), 1.0, 0.001, "the clock moves on")

    entries = audit(secured)
    assert [e["route"] for e in entries] == ["/api/audit", "/api/status/changes", "/api/instances"]
    assert [e["route"] for e in audit(secured, limit=1)] == ["/api/audit"]
    assert [e["route"] for e in audit(secured, since=entries[1]["time"])] == ["/api/audit", "/api/status/changes"]
    assert audit(secured, since=time.time() + 60) == []
    # A bad parameter is the admin's own 422, and that is audited too.
    assert send(secured, "GET", "/api/audit?limit=0", ADMIN_KEY).status_code == 422
    assert (audit(secured)[0]["identity"], audit(secured)[0]["status"]) == ("ada", 422)


def test_the_openapi_document_shows_the_audit_route_for_admin(secured: RunningControlPlane) -> None:
    operation = send(secured, "GET", "/api/openapi.json").json()["paths"]["/api/audit"]["get"]

    assert operation["x-required-role"] == "admin"
    assert {p["name"] for p in operation["parameters"]} == {"since", "limit"}
    assert operation["security"] and "403" in operation["responses"]


def test_an_audit_the_store_does_not_take_is_still_logged_and_the_answer_is_unchanged(
    secured: RunningControlPlane, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secured.cp, "record_audit", lambda entry: False)  # as when the store actor is restarting

    response = send(secured, "GET", "/api/instances", "not-a-configured-key-0123456789")

    assert response.status_code == 401 and response.json()["error"] == "invalid API key"
    refusal, store_down = audit_lines(caplog)
    assert "GET /api/instances from 127.0.0.1 (identity none): 401 invalid API key" in refusal
    assert "the line above is the only record" in store_down


def test_a_failure_inside_the_audit_never_turns_a_refusal_into_an_error(
    secured: RunningControlPlane, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(entry: Any) -> bool:
        raise RuntimeError("the audit broke")

    monkeypatch.setattr(secured.cp, "record_audit", broken)

    response = send(secured, "DELETE", "/api/instances/web-1", READ_KEY)

    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert any(
        r.name == "draas.audit" and r.levelno == logging.ERROR and r.exc_info is not None for r in caplog.records
    )
