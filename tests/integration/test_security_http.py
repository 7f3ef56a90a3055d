"""Identities, roles, daemon scope, trusted proxies and allowlists over real HTTP (waitress on 127.0.0.1).

Every refusal is checked for its status, the field it names, and that nothing it asked for happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from draas_actors.model import Platform
from draas_actors.security import (
    ADMIN,
    OPERATE,
    READ,
    AuthSettings,
    Credential,
    Identity,
    NetworkSettings,
    SecuritySettings,
    daemon_identity,
    operator_identity,
    parse_network,
)
from tests.helpers import HTTP_TIMEOUT, RunningControlPlane, running_control_plane
from tests.security_fixtures import SUBJECT, credential, fixed_key

PUSH_PATH = "/api/status/updates"
KEYS = {
    name: fixed_key(name)
    for name in ("docker", "reader", "operator", "admin", "rotating-old", "rotating-new", "near", "far", "remote-op")
}


def _credential(identity: Identity, *names: str, subjects: tuple[str, ...] = ()) -> Credential:
    return credential(identity, *(KEYS[name] for name in names), subjects=subjects)


CREDENTIALS = (
    _credential(
        daemon_identity("docker-web", platforms=frozenset({Platform.DOCKER}), instances=("web-*",)),
        "docker",
        subjects=(SUBJECT,),
    ),
    _credential(operator_identity("reader", READ), "reader"),
    _credential(operator_identity("operator", OPERATE), "operator"),
    _credential(operator_identity("admin", ADMIN), "admin"),
    _credential(daemon_identity("rotating"), "rotating-old", "rotating-new"),
    _credential(daemon_identity("near", allow=(parse_network("127.0.0.1/32"),)), "near"),
    _credential(daemon_identity("far", allow=(parse_network("192.0.2.0/24"),)), "far"),
    _credential(operator_identity("remote-op", READ, allow=(parse_network("192.0.2.0/24"),)), "remote-op"),
)


def _security(*, trusted: tuple[str, ...] = (), allowlist: tuple[str, ...] = ()) -> SecuritySettings:
    return SecuritySettings(
        auth=AuthSettings(credentials=CREDENTIALS),
        network=NetworkSettings(
            trusted_proxies=tuple(parse_network(n) for n in trusted),
            push_allowlist=tuple(parse_network(n) for n in allowlist),
        ),
    )


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path, security=_security(trusted=("127.0.0.1/32",))) as running:
        yield running


def _call(
    plane: RunningControlPlane, method: str, path: str, key: str | None = None, headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    sent = dict(headers or {})
    if key is not None:
        sent["X-API-Key"] = KEYS[key]
    return requests.request(method, plane.base_url + path, headers=sent, timeout=HTTP_TIMEOUT, **kwargs)


def _push(plane: RunningControlPlane, body: Any, key: str | None = "docker", **headers: str) -> requests.Response:
    return _call(plane, "POST", PUSH_PATH, key, headers, json=body)


def _update(instance_id: str, platform: str | None = "docker", status: str = "Running") -> dict[str, Any]:
    body = {"instanceId": instance_id, "status": status, "source": "DockerDaemon"}
    return body if platform is None else {**body, "platform": platform}


def _state(plane: RunningControlPlane) -> tuple[list[tuple[str, str, str]], int]:
    """What a refused request must not change: every instance's status and the change feed's length."""
    response = plane.get("/api/instances")
    assert response.status_code == 200, response.text
    instances = sorted((v["instanceId"], v["platform"], v["status"]) for v in response.json()["instances"])
    return instances, len(plane.changes())


def _refused(response: requests.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


# -- daemon scope -------------------------------------------------------------------------------------------


def test_a_scoped_daemon_is_accepted_inside_its_scope_and_refused_outside_it(plane: RunningControlPlane) -> None:
    assert _push(plane, _update("web-1")).status_code == 202
    plane.wait_for("web-1", lambda v: v["status"] == "Running")
    before = _state(plane)

    _refused(_push(plane, _update("db-1")), 403, "instanceId")
    _refused(_push(plane, _update("web-2", platform="kubernetes")), 403, "platform")
    _refused(_push(plane, _update("web-1", status="Failed", platform="process")), 403, "platform")

    assert _state(plane) == before
    assert plane.get("/api/instances/db-1").status_code == 404


def test_a_scoped_daemon_reads_the_status_of_instances_in_its_scope_only(plane: RunningControlPlane) -> None:
    assert _push(plane, _update("web-1")).status_code == 202
    assert plane.push(_update("db-1")).status_code == 202  # local-daemon: any scope
    assert plane.push(_update("web-pod", platform="kubernetes")).status_code == 202
    plane.wait_for("web-pod", lambda v: v["status"] == "Running")

    mine = _call(plane, "GET", "/api/status/web-1/status", "docker")
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "Running"
    _refused(_call(plane, "GET", "/api/status/db-1/status", "docker"), 403, "instanceId")
    _refused(_call(plane, "GET", "/api/status/db-9/status", "docker"), 403, "instanceId")  # exists or not: 403
    _refused(_call(plane, "GET", "/api/status/web-pod/status", "docker"), 403, "platform")
    _refused(_call(plane, "GET", "/api/status/changes", "docker"), 403)


def test_a_report_cannot_reach_another_platforms_instance_with_or_without_naming_a_platform(
    plane: RunningControlPlane,
) -> None:
    assert plane.push(_update("web-pod", platform="kubernetes")).status_code == 202  # local-daemon: any scope
    plane.wait_for("web-pod", lambda v: v["status"] == "Running")
    before = _state(plane)

    _refused(_push(plane, _update("web-pod", platform=None, status="Failed")), 403, "platform")
    _refused(_push(plane, _update("web-pod", platform="docker", status="Failed")), 403, "platform")

    assert _state(plane) == before


def test_a_batch_with_one_item_out_of_scope_is_refused_whole(plane: RunningControlPlane) -> None:
    before = _state(plane)
    batch = [_update("web-3"), _update("db-3"), _update("web-4")]
    _refused(_push(plane, batch), 403, "[1].instanceId")
    _refused(_push(plane, [_update("web-3"), _update("web-4", platform="kubernetes")]), 403, "[1].platform")
    # An invalid item does not shift the index the refusal names.
    _refused(_push(plane, [{**_update("web-3"), "status": "Dozing"}, _update("web-4"), _update("db-4")]), 403,
             "[2].instanceId")
    assert _state(plane) == before

    accepted = _push(plane, [_update("web-3"), _update("web-4")])
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 2


# -- roles ----------------------------------------------------------------------------------------------------


def test_read_sees_but_changes_nothing_operate_acts_admin_manages(plane: RunningControlPlane) -> None:
    assert _push(plane, _update("web-r")).status_code == 202
    view = plane.wait_for("web-r", lambda v: v["status"] == "Running")
    before = _state(plane)
    policy = {"mode": "always"}
    registration = {"instanceId": "web-new", "platform": "docker"}

    assert _call(plane, "GET", "/api/instances/web-r", "reader").json() == view
    for key in ("reader", "operator"):
        _refused(_call(plane, "DELETE", "/api/instances/web-r", key), 403)
        _refused(_call(plane, "PUT", "/api/instances/web-r/restart-policy", key, json=policy), 403)
        _refused(_call(plane, "POST", "/api/instances", key, json=registration), 403)
    _refused(_call(plane, "POST", "/api/instances/web-r/stop", "reader"), 403)
    _refused(_call(plane, "GET", "/api/audit", "operator"), 403)
    assert _state(plane) == before
    assert plane.instance("web-r")["restartPolicy"] == view["restartPolicy"]

    # Past the role check, the operation itself answers: no such instance.
    assert _call(plane, "POST", "/api/instances/nobody/stop", "operator").status_code == 404
    assert _call(plane, "PUT", "/api/instances/web-r/restart-policy", "admin", json=policy).status_code == 200
    assert _call(plane, "DELETE", "/api/instances/web-r", "admin", params={"stop": "false"}).status_code == 204
    assert plane.get("/api/instances/web-r").status_code == 404


def test_a_daemon_key_on_an_operator_route_and_an_operator_key_on_the_push_route_are_403(
    plane: RunningControlPlane,
) -> None:
    before = _state(plane)
    _refused(_call(plane, "GET", "/api/instances", "docker"), 403)
    _refused(_call(plane, "POST", "/api/instances", "docker", json={"instanceId": "web-x", "platform": "docker"}), 403)
    _refused(_push(plane, _update("web-5"), key="admin"), 403)
    assert _state(plane) == before


def test_both_keys_of_a_rotating_identity_push_and_an_unknown_key_is_401(plane: RunningControlPlane) -> None:
    assert _push(plane, _update("rot-1"), key="rotating-old").status_code == 202
    assert _push(plane, _update("rot-2"), key="rotating-new").status_code == 202
    before = _state(plane)
    _refused(_push(plane, _update("rot-3"), key=None, **{"X-API-Key": "retired-key-0123456789abcdef"}), 401)
    _refused(_push(plane, _update("rot-3"), key=None), 401)
    assert _state(plane) == before


# -- client certificates through the trusted proxy -------------------------------------------------------------

CERT = {"X-Client-Verify": "SUCCESS", "X-Client-Subject": SUBJECT}


def test_a_certificate_forwarded_by_the_trusted_proxy_is_its_identity_with_its_scope(
    plane: RunningControlPlane,
) -> None:
    assert _push(plane, _update("web-c"), key=None, **CERT).status_code == 202
    plane.wait_for("web-c", lambda v: v["status"] == "Running")
    before = _state(plane)
    _refused(_push(plane, _update("db-c"), key=None, **CERT), 403, "instanceId")
    _refused(_push(plane, _update("web-d"), key=None, **{**CERT, "X-Client-Verify": "FAILED:unknown CA"}), 401)
    _refused(_push(plane, _update("web-d"), key=None, **{**CERT, "X-Client-Subject": "CN=other,O=draas"}), 401)
    _refused(_push(plane, _update("web-d"), key="rotating-old", **CERT), 401)  # certificate and key disagree
    assert _state(plane) == before


def test_an_untrusted_peers_certificate_and_forwarding_headers_are_ignored(tmp_path: Path) -> None:
    security = _security(trusted=("10.0.0.0/8",), allowlist=("203.0.113.0/24",))
    with running_control_plane(tmp_path, security=security) as plane:
        before = _state(plane)
        _refused(_push(plane, _update("web-u"), key=None, **CERT), 401)
        # The peer is 127.0.0.1 whatever X-Forwarded-For says, and 127.0.0.1 may not push.
        _refused(_push(plane, _update("web-u"), **{"X-Forwarded-For": "203.0.113.5"}), 403)
        assert _state(plane) == before


# -- allowlists ---------------------------------------------------------------------------------------------------


def test_the_push_allowlist_sees_the_client_behind_the_trusted_proxy(tmp_path: Path) -> None:
    security = _security(trusted=("127.0.0.1/32",), allowlist=("203.0.113.0/24",))
    with running_control_plane(tmp_path, security=security) as plane:
        assert _push(plane, _update("web-a"), **{"X-Forwarded-For": "203.0.113.5"}).status_code == 202
        plane.wait_for("web-a", lambda v: v["status"] == "Running")
        before = _state(plane)
        _refused(_push(plane, _update("web-b"), **{"X-Forwarded-For": "198.51.100.1"}), 403)
        _refused(_push(plane, _update("web-b")), 403)  # the proxy itself is not a pushing client
        # A client cannot put an allowed address in front of its own: the proxy appends the real one.
        _refused(_push(plane, _update("web-b"), **{"X-Forwarded-For": "203.0.113.5, 198.51.100.1"}), 403)
        assert _state(plane) == before
        # The push allowlist is about pushing: operators elsewhere still read.
        assert _call(plane, "GET", "/api/instances", "reader", {"X-Forwarded-For": "198.51.100.1"}).status_code == 200


def test_an_identity_allowlist_applies_on_top_of_the_global_one(plane: RunningControlPlane) -> None:
    assert _push(plane, _update("near-1"), key="near").status_code == 202
    plane.wait_for("near-1", lambda v: v["status"] == "Running")
    before = _state(plane)
    _refused(_push(plane, _update("far-1"), key="far"), 403)
    _refused(_call(plane, "GET", "/api/instances", "remote-op"), 403)
    assert _state(plane) == before
    assert _push(plane, _update("far-1"), key="far", **{"X-Forwarded-For": "192.0.2.9"}).status_code == 202
    assert _call(plane, "GET", "/api/instances", "remote-op", {"X-Forwarded-For": "192.0.2.9"}).status_code == 200


# -- the document ---------------------------------------------------------------------------------------------------


def test_the_openapi_document_served_over_http_shows_the_security_requirements(plane: RunningControlPlane) -> None:
    response = requests.get(plane.base_url + "/api/openapi.json", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    document = response.json()
    assert set(document["components"]["securitySchemes"]) == {"ApiKeyHeader", "Bearer", "mutualTLS", "SessionCookie"}
    push = document["paths"][PUSH_PATH]["post"]
    assert {"mutualTLS": []} in push["security"] and push["x-required-role"] == "push"
    assert {"SessionCookie": []} not in push["security"]  # the dashboard's cookie is an operator's, never a daemon's
    delete = document["paths"]["/api/instances/{instance_id}"]["delete"]
    assert delete["x-required-role"] == "admin" and {"ApiKeyHeader": []} in delete["security"]
    assert {"SessionCookie": []} in delete["security"]
    assert document["paths"]["/healthz"]["get"]["security"] == []
