"""No key ever appears in a log line, a response, or the store: every outcome, both ways of sending a key."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import requests

from daemons.push_client import PushClient, PushSettings
from draas_actors.security import new_key
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane
from tests.security_fixtures import MAX_BODY, UPDATE, staff_security

KEYS = {name: new_key() for name in ("admin", "read", "operate", "daemon", "rogue", "invalid-1", "invalid-2")}
SECURITY = staff_security(
    admin=KEYS["admin"], read=KEYS["read"], operate=KEYS["operate"], daemon=KEYS["daemon"], rogue=KEYS["rogue"]
)
FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s")


def credentials(key: str, style: str) -> dict[str, str]:
    return {"X-API-Key": key} if style == "header" else {"Authorization": f"Bearer {key}"}


def exercise(plane: RunningControlPlane, keys: dict[str, str], style: str) -> list[requests.Response]:
    """Requests that are accepted, refused in every audited way, and neither (404, 405), with keys in ``style``."""

    def call(method: str, path: str, key: str, **kwargs: Any) -> requests.Response:
        headers = {**credentials(key, style), **kwargs.pop("headers", {})}
        return requests.request(method, plane.base_url + path, headers=headers, timeout=HTTP_TIMEOUT, **kwargs)

    push = "/api/status/updates"
    responses = [
        call("POST", push, keys["daemon"], json=UPDATE),
        call("POST", push, keys["quick-start daemon"], json=[{**UPDATE, "instanceId": "web-2"}]),
        call("POST", push, keys["invalid-1"], json=UPDATE),
        call("POST", push, keys["daemon"], json={**UPDATE, "instanceId": "db-1"}),
        call("POST", push, keys["daemon"], json={**UPDATE, "status": "Sleeping"}),
        call("POST", push, keys["daemon"], json={**UPDATE, "metadata": {"padding": "x" * MAX_BODY}}),
        call("POST", push, keys["daemon"], data=b"status=Running", headers={"Content-Type": "text/plain"}),
        call("POST", push, keys["admin"], json=UPDATE),
        *(call("POST", push, keys["rogue"], json={**UPDATE, "instanceId": "rogue-1"}) for _ in range(2)),
        *(call("GET", "/api/instances", keys[name]) for name in ("admin", "read", "operate", "quick-start operator")),
        call("GET", "/api/instances/web-1", keys["invalid-2"]),
        call("GET", "/api/instances", keys["daemon"]),
        call("DELETE", "/api/instances/web-1", keys["read"]),
        call("POST", "/api/instances/nobody/restart", keys["operate"]),
        call("PATCH", "/api/instances", keys["admin"]),
        call("GET", "/api/no-such-route", keys["admin"]),
        call("GET", "/api/audit", keys["operate"]),
        call("GET", "/api/audit", keys["admin"]),
    ]
    return responses


def push_with_the_client(plane: RunningControlPlane, key: str, spool: Path) -> None:
    client = PushClient(PushSettings(url=plane.base_url, api_key=key, spool_path=spool))
    client.start()
    try:
        client.submit([{**UPDATE, "instanceId": "web-3"}])
        assert client.flush(timeout=10), "the push client's spool drains (acknowledged or dropped)"
    finally:
        client.close(timeout=5)


def test_no_key_appears_in_any_log_line_response_or_stored_byte(
    tmp_path: Path, janitor: ProcessJanitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("waitress", *logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)  # loggers with a level of their own, too
    canary = new_key()
    data_dir = tmp_path / "data"
    responses: list[requests.Response] = []
    with running_control_plane(data_dir, janitor=janitor, security=SECURITY) as plane:
        keys = {**KEYS, "quick-start daemon": plane.daemon_key, "quick-start operator": plane.operator_key}
        for style in ("header", "bearer"):
            responses += exercise(plane, keys, style)
        push_with_the_client(plane, keys["daemon"], tmp_path / "good.spool")
        push_with_the_client(plane, keys["invalid-1"], tmp_path / "bad.spool")
        logging.getLogger("waitress").debug("canary %s", canary)

    places = {
        **{f"log line {i} ({r.name})": FORMAT.format(r) for i, r in enumerate(caplog.records)},
        **{f"response {i} ({r.request.method} {r.url} -> {r.status_code})": r.text for i, r in enumerate(responses)},
        **{f"response {i} headers": "\n".join(f"{k}: {v}" for k, v in r.headers.items())
           for i, r in enumerate(responses)},
        # Key files are where keys belong; everything else the control plane wrote (store, WAL, logs) is searched.
        **{f"file {p}": p.read_bytes().decode("latin-1") for p in data_dir.rglob("*") if p.is_file()
           and p.suffix != ".key"},
    }
    # The search can find a key where there is one, at DEBUG, in a library's logger.
    assert any(canary in text for text in places.values())
    # And it searched what the brief asks: every outcome, the audit's log lines and waitress's loggers.
    assert {r.status_code for r in responses} >= {200, 202, 401, 403, 404, 405, 413, 415, 422, 429}
    assert sum(1 for r in caplog.records if r.name == "draas.audit") >= 10
    assert any(r.name == "daemons.push_client" and r.levelno == logging.ERROR for r in caplog.records)
    assert any(p.name == "draas.sqlite3" for p in data_dir.rglob("*"))

    leaks = [(name, where) for name, key in keys.items() for where, text in places.items() if key in text]
    assert leaks == []
