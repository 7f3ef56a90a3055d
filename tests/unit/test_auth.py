"""Authentication and roles through falcon's test client: keys, certificate headers, and the route table's roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import pytest
from falcon import testing

from draas_actors.api.app import create_app
from draas_actors.api.routes import ROUTES
from draas_actors.security import (
    ADMIN,
    OPERATE,
    PUBLIC,
    READ,
    AuthSettings,
    Identity,
    NetworkSettings,
    SecuritySettings,
    daemon_identity,
    operator_identity,
    parse_network,
)
from draas_actors.system import ControlPlane
from tests.helpers import unstarted_control_plane
from tests.security_fixtures import SUBJECT, credential, fixed_key

KEYS = {name: fixed_key(name) for name in ("reader", "operator", "admin", "daemon", "rotating")}
NEW_KEY = fixed_key("rotating-new")
IDENTITIES: dict[str, Identity] = {
    "reader": operator_identity("reader", READ),
    "operator": operator_identity("operator", OPERATE),
    "admin": operator_identity("admin", ADMIN),
    "daemon": daemon_identity("docker-host-1"),
}
SECURITY = SecuritySettings(
    auth=AuthSettings(
        credentials=(
            *(
                credential(identity, KEYS[name], subjects=(SUBJECT,) if name == "daemon" else ())
                for name, identity in IDENTITIES.items()
            ),
            credential(daemon_identity("rotating"), KEYS["rotating"], NEW_KEY),
        )
    ),
    network=NetworkSettings(trusted_proxies=(parse_network("127.0.0.1/32"),)),
)
PROXY, STRANGER = "127.0.0.1", "198.51.100.7"


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    # Never started: a request that passes authentication gets a 503 or a 4xx from its resource, never 401/403.
    with unstarted_control_plane(tmp_path) as cp:
        yield cp


@pytest.fixture
def client(control_plane: ControlPlane) -> testing.TestClient:
    return testing.TestClient(create_app(control_plane, security=SECURITY))


def _request(
    client: testing.TestClient, method: str, path: str, headers: dict[str, str], remote_addr: str = STRANGER
) -> testing.Result:
    body: dict[str, Any] = {"json": {}} if method in ("POST", "PUT") else {}
    return client.simulate_request(method, path, headers=headers, remote_addr=remote_addr, **body)


def _route_cases() -> list[tuple[str, str, str]]:
    return [(o.path.replace("{instance_id}", "web-1"), o.method, o.role) for o in ROUTES]


def test_every_route_and_method_admits_exactly_the_identities_with_its_role(
    client: testing.TestClient, control_plane: ControlPlane
) -> None:
    cases = _route_cases()
    assert len(cases) >= 14
    for path, method, role in cases:
        for name, identity in IDENTITIES.items():
            result = _request(client, method, path, {"X-API-Key": KEYS[name]})
            allowed = role == PUBLIC or identity.has_role(role)
            assert (result.status_code == 403) is not allowed, f"{name} {method} {path}: {result.status_code}"
            assert result.status_code != 401, f"{name} {method} {path}"


def test_a_forbidden_request_names_the_role_it_needs_without_the_key(client: testing.TestClient) -> None:
    result = _request(client, "DELETE", "/api/instances/web-1", {"X-API-Key": KEYS["operator"]})
    assert result.status_code == 403
    assert result.json["error"] == "forbidden"
    assert "'admin'" in result.json["detail"] and "'operate'" in result.json["detail"]
    assert KEYS["operator"] not in result.text


def test_no_key_a_wrong_key_and_a_basic_header_are_401_with_a_bearer_challenge(client: testing.TestClient) -> None:
    for headers in ({}, {"X-API-Key": "not-a-configured-key-000"}, {"Authorization": f"Basic {KEYS['admin']}"}):
        result = _request(client, "GET", "/api/instances", headers)
        assert result.status_code == 401, headers
        assert "Bearer" in result.headers["www-authenticate"]
        assert "not-a-configured-key-000" not in result.text


def test_a_key_works_as_a_bearer_token(client: testing.TestClient) -> None:
    assert _request(client, "GET", "/api/audit", {"Authorization": f"Bearer {KEYS['admin']}"}).status_code != 401


def test_both_hashes_of_a_rotating_identity_are_valid(client: testing.TestClient) -> None:
    for key in (KEYS["rotating"], NEW_KEY):
        assert _request(client, "POST", "/api/status/updates", {"X-API-Key": key}).status_code == 400
    retired = {"X-API-Key": "rotating-key-retired-0000"}
    assert _request(client, "POST", "/api/status/updates", retired).status_code == 401


def test_an_unknown_method_on_a_known_route_asks_for_credentials_before_saying_405(
    client: testing.TestClient,
) -> None:
    assert _request(client, "PATCH", "/api/instances", {}).status_code == 401
    assert _request(client, "PATCH", "/api/instances", {"X-API-Key": KEYS["reader"]}).status_code == 405
    assert _request(client, "POST", "/healthz", {}).status_code == 405


# -- client certificates forwarded by the trusted proxy ------------------------------------------------------


def _cert(subject: str = SUBJECT, verify: str = "SUCCESS") -> dict[str, str]:
    return {"X-Client-Verify": verify, "X-Client-Subject": subject}


def test_a_verified_certificate_from_the_trusted_proxy_authenticates_its_daemon(client: testing.TestClient) -> None:
    assert _request(client, "POST", "/api/status/updates", _cert(), PROXY).status_code == 400  # past auth
    # The subject in another spelling is the same identity.
    spelled = _cert("cn=docker-host-1, o=draas")
    assert _request(client, "POST", "/api/status/updates", spelled, PROXY).status_code == 400


def test_certificate_headers_from_any_other_peer_are_ignored(client: testing.TestClient) -> None:
    result = _request(client, "POST", "/api/status/updates", _cert(), STRANGER)
    assert result.status_code == 401
    assert result.json["error"] == "missing credentials"


def test_a_certificate_the_proxy_could_not_verify_is_refused_even_with_a_good_key(client: testing.TestClient) -> None:
    headers = {**_cert(verify="FAILED:certificate has expired"), "X-API-Key": KEYS["daemon"]}
    result = _request(client, "POST", "/api/status/updates", headers, PROXY)
    assert result.status_code == 401
    assert "certificate has expired" in result.json["detail"]


def test_no_certificate_at_the_proxy_falls_back_to_the_key(client: testing.TestClient) -> None:
    headers = {**_cert(verify="NONE", subject=""), "X-API-Key": KEYS["daemon"]}
    assert _request(client, "POST", "/api/status/updates", headers, PROXY).status_code == 400


def test_an_unknown_certificate_subject_is_401(client: testing.TestClient) -> None:
    result = _request(client, "POST", "/api/status/updates", _cert("CN=intruder,O=draas"), PROXY)
    assert result.status_code == 401
    assert "CN=intruder" in result.json["detail"]


def test_a_certificate_and_a_key_of_different_identities_are_refused(client: testing.TestClient) -> None:
    mixed = {**_cert(), "X-API-Key": KEYS["rotating"]}
    assert _request(client, "POST", "/api/status/updates", mixed, PROXY).status_code == 401
    same = {**_cert(), "X-API-Key": KEYS["daemon"]}
    assert _request(client, "POST", "/api/status/updates", same, PROXY).status_code == 400


def test_a_certificate_identity_is_a_daemon_and_cannot_use_operator_routes(client: testing.TestClient) -> None:
    assert _request(client, "GET", "/api/instances", _cert(), PROXY).status_code == 403


def test_the_identity_is_on_the_request_context_for_later_middleware(control_plane: ControlPlane) -> None:
    seen: list[Identity | None] = []

    class Spy:
        def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object, params: object
                             ) -> None:
            seen.append(getattr(req.context, "identity", None))

    app = create_app(control_plane, security=SECURITY)
    app.add_middleware(Spy())
    client = testing.TestClient(app)
    client.simulate_get("/api/instances", headers={"X-API-Key": KEYS["reader"]}, remote_addr=STRANGER)
    client.simulate_get("/healthz", remote_addr=STRANGER)
    assert seen == [IDENTITIES["reader"], None]
