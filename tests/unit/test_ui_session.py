"""The dashboard's sessions through falcon's test client: sign-in, the cookie's attributes, expiry on a fake clock,
the cross-site checks on unsafe methods, sign-out, and the UI's security headers."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from falcon import testing

from draas_actors.api.app import create_app
from draas_actors.api.session import COOKIE, CSRF_HEADER, Sessions
from draas_actors.api.ui import CONTENT_SECURITY_POLICY
from draas_actors.security import (
    READ,
    AuthSettings,
    NetworkSettings,
    SecuritySettings,
    SessionSettings,
    daemon_identity,
    operator_identity,
    parse_network,
)
from draas_actors.system import ControlPlane
from tests.helpers import unstarted_control_plane
from tests.security_fixtures import credential, fixed_key

ADMIN_KEY, READER_KEY, DAEMON_KEY = fixed_key("ui-admin"), fixed_key("ui-reader"), fixed_key("ui-daemon")
SECURITY = SecuritySettings(
    auth=AuthSettings(
        credentials=(
            credential(operator_identity("ui-admin"), ADMIN_KEY),
            credential(operator_identity("ui-reader", READ), READER_KEY),
            credential(daemon_identity("ui-daemon"), DAEMON_KEY),
        )
    ),
    network=NetworkSettings(trusted_proxies=(parse_network("127.0.0.1/32"),)),
    sessions=SessionSettings(session_seconds=600.0),
)
HOST = "dash.example:8088"
SAME_ORIGIN = {"Host": HOST, "Origin": f"http://{HOST}"}
STRANGER = "198.51.100.7"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    # Never started: a request that passes authentication gets a 503 or a 4xx from its resource, never 401/403.
    with unstarted_control_plane(tmp_path) as cp:
        yield cp


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(control_plane: ControlPlane, clock: FakeClock) -> testing.TestClient:
    return testing.TestClient(create_app(control_plane, security=SECURITY, clock=clock))


def sign_in(client: testing.TestClient, key: str, **headers: str) -> testing.Result:
    return client.simulate_post(
        "/ui/session", json={"key": key}, headers={**SAME_ORIGIN, **headers}, remote_addr=STRANGER
    )


def cookie_of(result: testing.Result) -> tuple[str, str]:
    """(the Set-Cookie header, the token)."""
    header = result.headers["set-cookie"]
    parsed: SimpleCookie = SimpleCookie()
    parsed.load(header)
    return header, parsed[COOKIE].value


def call(
    client: testing.TestClient, method: str, path: str, token: str, csrf: str | None = None, **headers: str
) -> testing.Result:
    sent = {**SAME_ORIGIN, "Cookie": f"{COOKIE}={token}", **headers}
    if csrf is not None:
        sent[CSRF_HEADER] = csrf
    return client.simulate_request(method, path, headers=sent, remote_addr=STRANGER)


def test_an_operator_key_signs_in_and_the_cookie_is_http_only_strict_and_for_every_path(
    client: testing.TestClient,
) -> None:
    result = sign_in(client, ADMIN_KEY)
    assert result.status_code == 200
    assert result.json["identity"] == "ui-admin" and result.json["role"] == "admin"
    assert result.json["csrfToken"]
    header, token = cookie_of(result)
    attributes = {part.strip().lower() for part in header.split(";")}
    assert {"httponly", "samesite=strict", "path=/", "max-age=600"} <= attributes
    assert "secure" not in attributes  # plain HTTP: a Secure cookie would never come back
    assert ADMIN_KEY not in result.text and ADMIN_KEY not in header and token != ADMIN_KEY


def test_the_cookie_is_secure_when_the_trusted_proxy_says_https_and_not_when_a_stranger_does(
    client: testing.TestClient,
) -> None:
    proxied = client.simulate_post(
        "/ui/session", json={"key": ADMIN_KEY}, headers={**SAME_ORIGIN, "X-Forwarded-Proto": "https"},
        remote_addr="127.0.0.1",
    )
    assert "secure" in {part.strip().lower() for part in proxied.headers["set-cookie"].split(";")}
    claimed = sign_in(client, ADMIN_KEY, **{"X-Forwarded-Proto": "https"})
    assert "secure" not in {part.strip().lower() for part in claimed.headers["set-cookie"].split(";")}


def test_the_cookie_authenticates_the_api_with_the_key_s_role(client: testing.TestClient) -> None:
    _, token = cookie_of(sign_in(client, READER_KEY))
    assert call(client, "GET", "/api/instances", token).status_code not in (401, 403)
    session = call(client, "GET", "/ui/session", token)
    assert session.json["role"] == "read" and session.json["csrfToken"]
    restart = call(client, "POST", "/api/instances/web-1/restart", token, session.json["csrfToken"])
    assert restart.status_code == 403 and "'operate'" in restart.json["detail"]


def test_a_wrong_key_is_401_and_a_daemon_key_cannot_sign_in(
    client: testing.TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = sign_in(client, "not-a-configured-key-000")
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert "not-a-configured-key-000" not in wrong.text
    assert sign_in(client, ADMIN_KEY).status_code == 200
    assert caplog.records, "the refusal is audited"
    assert "not-a-configured-key-000" not in caplog.text and ADMIN_KEY not in caplog.text  # no key in the logs
    daemon = sign_in(client, DAEMON_KEY)
    assert daemon.status_code == 403 and daemon.json["field"] == "key"
    assert sign_in(client, "").status_code == 422


def test_a_cross_site_post_carrying_the_cookie_is_refused_even_with_the_token(client: testing.TestClient) -> None:
    signed_in = sign_in(client, ADMIN_KEY)
    _, token = cookie_of(signed_in)
    csrf = signed_in.json["csrfToken"]
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}):
        refused = call(client, "POST", "/api/instances/web-1/restart", token, csrf, **headers)
        assert refused.status_code == 403 and refused.json["field"] == "Origin", headers
    no_origin = call(client, "POST", "/api/instances/web-1/restart", token, csrf, Origin="",
                     Referer="https://evil.example/page")
    assert no_origin.status_code == 403 and no_origin.json["field"] == "Referer"


def test_an_unsafe_method_with_the_cookie_needs_the_session_s_csrf_token(client: testing.TestClient) -> None:
    signed_in = sign_in(client, ADMIN_KEY)
    _, token = cookie_of(signed_in)
    for csrf in (None, "wrong-token"):
        refused = call(client, "DELETE", "/api/instances/web-1", token, csrf)
        assert refused.status_code == 403 and refused.json["field"] == CSRF_HEADER
    allowed = call(client, "DELETE", "/api/instances/web-1", token, signed_in.json["csrfToken"])
    assert allowed.status_code not in (401, 403)


def test_a_key_needs_no_csrf_token_even_with_a_cookie_beside_it(client: testing.TestClient) -> None:
    result = client.simulate_post(
        "/api/instances/web-1/restart", headers={"X-API-Key": ADMIN_KEY, "Origin": "https://evil.example"},
        remote_addr=STRANGER,
    )
    assert result.status_code not in (401, 403)


def test_a_cross_site_sign_in_is_refused(client: testing.TestClient) -> None:
    result = sign_in(client, ADMIN_KEY, Origin="https://evil.example")
    assert result.status_code == 403 and "set-cookie" not in result.headers


def test_the_session_expires_on_the_server_s_clock(client: testing.TestClient, clock: FakeClock) -> None:
    _, token = cookie_of(sign_in(client, ADMIN_KEY))
    clock.now += 599
    assert call(client, "GET", "/ui/session", token).status_code == 200
    clock.now += 2
    expired = call(client, "GET", "/ui/session", token)
    assert expired.status_code == 401 and expired.json["error"] == "session expired"


def test_sign_out_ends_the_session_and_clears_the_cookie(client: testing.TestClient) -> None:
    signed_in = sign_in(client, ADMIN_KEY)
    _, token = cookie_of(signed_in)
    out = call(client, "DELETE", "/ui/session", token, signed_in.json["csrfToken"])
    assert out.status_code == 204
    header, value = cookie_of(out)
    assert value == "" and "expires=" in header.lower()
    assert call(client, "GET", "/api/instances", token).status_code == 401


def test_sessions_beyond_the_cap_end_the_one_that_expires_first() -> None:
    clock = FakeClock()
    sessions = Sessions(SessionSettings(session_seconds=100.0, max_sessions=2), clock)
    first, _ = sessions.open(operator_identity("a"))
    clock.now += 1
    second, _ = sessions.open(operator_identity("b"))
    third, _ = sessions.open(operator_identity("c"))
    assert sessions.find(first) is None
    assert sessions.find(second) is not None and sessions.find(third) is not None
    assert len(sessions) == 2


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/signin", "/ui/instance", "/ui/static/app.js"])
def test_the_dashboard_is_public_and_served_with_strict_security_headers(
    client: testing.TestClient, path: str
) -> None:
    result = client.simulate_get(path)
    assert result.status_code == 200
    assert result.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["x-frame-options"] == "DENY"


def test_a_file_that_is_not_shipped_is_404(client: testing.TestClient) -> None:
    for name in ("nothing.js", "..%2F__init__.py", "__init__.py"):
        assert client.simulate_get(f"/ui/static/{name}").status_code == 404, name
