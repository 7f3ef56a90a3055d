"""Mutual TLS through a real nginx running the shipped config/nginx/draas.conf, in front of a real control plane.

Certificates are made per module (tests/tls/pki.py): a CA that signs the server certificate (127.0.0.1) and the
daemons' certificates, a good one (CN=docker-host-1,O=draas), one from another CA, an expired one and a revoked
one (on the CRL nginx loads). The control plane trusts 127.0.0.1 as its proxy and knows two daemon identities by
certificate subject, each with a narrow scope. nginx's access log says, per request, whether it was passed to
the control plane, which is how "refused by nginx, nothing reached the control plane" is proven.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from daemons.push_client import PushClient, PushSettings, PushStats
from draas_actors.model import Platform
from draas_actors.security import (
    AuthSettings,
    Credential,
    NetworkSettings,
    SecuritySettings,
    daemon_identity,
    parse_network,
)
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane, wait_until
from tests.integration.nginx_support import RunningNginx, nginx_binary, running_nginx
from tests.tls.pki import DAEMON_SUBJECT, OTHER_DAEMON_SUBJECT, Issued, TestPki

pytestmark = pytest.mark.nginx

UPDATES = "/api/status/updates"
SECURITY = SecuritySettings(
    auth=AuthSettings(
        credentials=(
            Credential(
                identity=daemon_identity("docker-host-1", platforms=frozenset({Platform.DOCKER}), instances=("web-*",)),
                cert_subjects=(DAEMON_SUBJECT,),
            ),
            Credential(
                identity=daemon_identity("other-host", instances=("other-*",)), cert_subjects=(OTHER_DAEMON_SUBJECT,)
            ),
        )
    ),
    network=NetworkSettings(trusted_proxies=(parse_network("127.0.0.1/32"),)),
)


def update(instance_id: str, platform: str = "docker") -> dict[str, Any]:
    return {"instanceId": instance_id, "status": "Running", "source": "DockerDaemon", "platform": platform}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.make(tmp_path_factory.mktemp("tls"))


@dataclass
class Stack:
    """nginx on https://127.0.0.1:<port> in front of ``plane``; ``send`` goes through nginx."""

    plane: RunningControlPlane
    nginx: RunningNginx
    pki: TestPki

    def send(
        self,
        method: str,
        path: str,
        *,
        cert: Issued | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        return requests.request(
            method,
            self.nginx.base_url + path,
            cert=(str(cert.cert_path), str(cert.key_path)) if cert is not None else None,
            verify=str(self.pki.ca.cert_path),
            headers=headers,
            timeout=HTTP_TIMEOUT,
            **kwargs,
        )

    def push(self, body: Any, *, cert: Issued | None, headers: dict[str, str] | None = None) -> requests.Response:
        return self.send("POST", UPDATES, cert=cert, headers=headers, json=body)

    def exists(self, instance_id: str) -> bool:
        """Asked of the control plane directly, not through nginx."""
        response = self.plane.get(f"/api/instances/{instance_id}")
        assert response.status_code in (200, 404), response.text
        return response.status_code == 200

    def refusals(self, count: int) -> list[dict[str, Any]]:
        """The control plane's audit entries for the push path, once they add up to ``count`` refusals."""

        def check() -> list[dict[str, Any]]:
            response = self.plane.get("/api/audit", params={"limit": 100})
            assert response.status_code == 200, response.text
            entries = [e for e in response.json()["entries"] if e["route"] == UPDATES]
            return entries if sum(e.get("count", 1) for e in entries) == count else []

        return wait_until(check, 5.0, 0.02, f"{count} refused pushes are audited")


@pytest.fixture
def stack(tmp_path: Path, pki: TestPki, janitor: ProcessJanitor) -> Iterator[Stack]:
    nginx_binary()  # skip (or fail under CI) before starting anything
    tls_dir = pki.ca.cert_path.parent
    with (
        running_control_plane(tmp_path / "data", janitor=janitor, security=SECURITY) as plane,
        running_nginx(tmp_path / "nginx", upstream_port=plane.server.port, tls_dir=tls_dir) as nginx,
    ):
        yield Stack(plane, nginx, pki)


# -- refused by nginx -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("none", "client certificate required"),
        ("foreign", "client certificate refused"),
        ("expired", "client certificate refused"),
        ("revoked", "client certificate refused"),
    ],
)
def test_a_push_without_a_valid_certificate_is_refused_by_nginx_and_never_reaches_the_control_plane(
    stack: Stack, which: str, reason: str
) -> None:
    cert = None if which == "none" else getattr(stack.pki, which)
    # The valid daemon key too: nginx is the only thing that can refuse this push.
    response = stack.push(update("web-1"), cert=cert, headers=stack.plane.daemon_headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == reason
    assert response.json()["field"] == "clientCertificate"
    expected = {"none": "NONE", "foreign": "unable to verify", "expired": "expired", "revoked": "revoked"}[which]
    assert expected in response.json()["detail"]
    assert stack.nginx.proxied(1) == []
    assert not stack.exists("web-1")
    assert stack.plane.changes() == []


def test_a_refused_certificate_cannot_reach_the_operator_api_either(stack: Stack) -> None:
    response = stack.send("GET", "/api/instances", cert=stack.pki.revoked, headers=stack.plane.operator_headers)
    assert response.status_code == 403 and response.json()["detail"] == "FAILED:certificate revoked"
    assert stack.nginx.proxied(1) == []


def test_the_push_path_with_a_trailing_slash_or_in_another_case_needs_a_certificate_too(stack: Stack) -> None:
    response = stack.push(update("web-1"), cert=None, headers=stack.plane.daemon_headers)
    slashed = stack.send("POST", UPDATES + "/", json=update("web-1"), headers=stack.plane.daemon_headers)
    cased = stack.send("POST", "/API/Status/Updates", json=update("web-1"), headers=stack.plane.daemon_headers)
    assert (response.status_code, slashed.status_code, cased.status_code) == (403, 403, 403)
    assert stack.nginx.proxied(3) == []


# -- a good certificate: its identity's scope applies ---------------------------------------------------


def test_a_good_certificate_pushes_as_its_identity_within_its_scope(stack: Stack) -> None:
    accepted = stack.push(update("web-1"), cert=stack.pki.good)
    assert accepted.status_code == 202, accepted.text
    assert stack.plane.instance("web-1")["status"] == "Running"

    outside = stack.push(update("db-1"), cert=stack.pki.good)
    assert outside.status_code == 403, outside.text
    assert outside.json()["field"] == "instanceId"
    other_platform = stack.push(update("web-2", platform="kubernetes"), cert=stack.pki.good)
    assert other_platform.status_code == 403, other_platform.text
    assert other_platform.json()["field"] == "platform"
    batch = stack.push([update("web-3"), update("db-2")], cert=stack.pki.good)
    assert batch.status_code == 403 and batch.json()["field"] == "[1].instanceId"

    assert [stack.exists(i) for i in ("db-1", "web-2", "web-3", "db-2")] == [False] * 4
    assert [c["instanceId"] for c in stack.plane.changes()] == ["web-1"]
    # Refused by the control plane, not by nginx: all four were proxied.
    assert len(stack.nginx.proxied(4)) == 4
    refusals = stack.refusals(3)
    assert {(e["identity"], e["client"], e["status"]) for e in refusals} == {("docker-host-1", "127.0.0.1", 403)}


def test_a_second_identity_gets_its_own_scope(stack: Stack) -> None:
    assert stack.push(update("other-1", platform="kubernetes"), cert=stack.pki.other_identity).status_code == 202
    assert stack.push(update("web-9"), cert=stack.pki.other_identity).status_code == 403
    assert stack.exists("other-1") and not stack.exists("web-9")


def test_a_valid_certificate_no_identity_lists_is_refused_by_the_control_plane(stack: Stack) -> None:
    response = stack.push(update("web-1"), cert=stack.pki.unknown)
    assert response.status_code == 401, response.text
    assert "CN=stranger,O=draas" in response.text
    assert len(stack.nginx.proxied(1)) == 1 and not stack.exists("web-1")


def test_a_certificate_and_a_key_of_different_identities_are_refused(stack: Stack) -> None:
    response = stack.push(update("web-1"), cert=stack.pki.good, headers=stack.plane.daemon_headers)
    assert response.status_code == 401, response.text
    assert not stack.exists("web-1")


# -- headers a client cannot forge ------------------------------------------------------------------------


FORGED = {
    "X-Client-Verify": "SUCCESS",
    "X-Client-Subject": OTHER_DAEMON_SUBJECT,
    "X-Forwarded-For": "10.9.9.9",
}


def test_a_client_supplied_subject_does_not_reach_the_control_plane(stack: Stack) -> None:
    # Claiming to be other-host (scope other-*) with docker-host-1's certificate: docker-host-1's scope applies.
    assert stack.push(update("other-2"), cert=stack.pki.good, headers=FORGED).status_code == 403
    assert stack.push(update("web-4"), cert=stack.pki.good, headers=FORGED).status_code == 202
    assert not stack.exists("other-2") and stack.exists("web-4")
    # And a forged subject without any certificate gets no further than nginx.
    assert stack.push(update("other-3"), cert=None, headers=FORGED).status_code == 403
    assert not stack.exists("other-3")
    # The audit names the certificate's identity and nginx's address, not the forged ones.
    (refusal,) = stack.refusals(1)
    assert (refusal["identity"], refusal["client"]) == ("docker-host-1", "127.0.0.1")


def test_operators_reach_the_api_through_nginx_with_their_keys_and_no_certificate(stack: Stack) -> None:
    assert stack.send("GET", "/healthz").status_code == 200
    assert stack.send("GET", "/api/instances").status_code == 401
    listed = stack.send("GET", "/api/instances", headers={**stack.plane.operator_headers, **FORGED})
    assert listed.status_code == 200, listed.text


def test_nginx_refuses_a_body_over_the_control_planes_limit_and_plain_http(stack: Stack) -> None:
    too_big = stack.send("POST", UPDATES, cert=stack.pki.good, data=b"x" * (1_048_576 + 1),
                         headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413
    plain = requests.get(f"http://127.0.0.1:{stack.nginx.port}/healthz", timeout=HTTP_TIMEOUT)
    assert plain.status_code == 400 and plain.json()["field"] == "scheme"
    assert stack.nginx.proxied(2) == []


# -- what exactly nginx forwards (a recording upstream instead of the control plane) -------------------


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, list[str]]]

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        self.seen.append(headers)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def recording_upstream() -> Iterator[tuple[int, list[dict[str, list[str]]]]]:
    seen: list[dict[str, list[str]]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="recording-upstream", daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_nginx_replaces_every_identity_and_address_header_a_client_sends(tmp_path: Path, pki: TestPki) -> None:
    forged = {
        **FORGED,
        "X-Real-IP": "10.9.9.9",
        "Forwarded": "for=10.9.9.9",
        "X-Forwarded-Host": "evil.example",
        "X-Client-Cert": "forged",
        "X_Client_Subject": OTHER_DAEMON_SUBJECT,  # an underscore alias of the same WSGI variable
    }
    with recording_upstream() as (port, seen), running_nginx(tmp_path / "nginx", upstream_port=port,
                                                             tls_dir=pki.ca.cert_path.parent) as nginx:
        for cert in (None, pki.good):
            response = requests.post(
                nginx.base_url + ("/api/instances" if cert is None else UPDATES),
                cert=(str(cert.cert_path), str(cert.key_path)) if cert is not None else None,
                verify=str(pki.ca.cert_path),
                headers=forged,
                json={},
                timeout=HTTP_TIMEOUT,
            )
            assert response.status_code == 202
    without, with_cert = seen
    for headers in seen:
        assert headers["x-forwarded-for"] == ["127.0.0.1"]
        for name in ("x-real-ip", "forwarded", "x-forwarded-host", "x-client-cert", "x_client_subject"):
            assert name not in headers
    assert without["x-client-verify"] == ["NONE"] and "x-client-subject" not in without
    assert with_cert["x-client-verify"] == ["SUCCESS"]
    assert with_cert["x-client-subject"] == [DAEMON_SUBJECT]


# -- the daemons' push client -------------------------------------------------------------------------------


def test_the_push_client_delivers_through_nginx_with_its_client_certificate_and_no_key(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fast = {"backoff_initial": 0.01, "backoff_max": 0.05, "connect_timeout": 2.0, "read_timeout": 5.0}
    client = PushClient(
        PushSettings(
            url=stack.nginx.base_url, api_key="", spool_path=tmp_path / "good.spool",
            client_cert=stack.pki.good.cert_path, client_key=stack.pki.good.key_path, ca_bundle=stack.pki.ca.cert_path,
            **fast,  # type: ignore[arg-type]
        )
    )
    try:
        client.start()
        client.submit([update("web-5"), update("db-5")])
        assert client.flush(10.0)
        # One batch; the control plane refused it whole (db-5 is out of scope), so nothing was applied.
        assert client.stats == PushStats(submitted=2, dropped_rejected=2)
        client.submit([update("web-5")])
        assert client.flush(10.0)
        assert client.stats.acknowledged == 1
    finally:
        client.close()
    wait_until(lambda: stack.exists("web-5"), 5.0, 0.02, "web-5 was applied")
    assert not stack.exists("db-5")

    caplog.set_level(logging.ERROR, logger="daemons.push_client")
    keyless = PushClient(
        PushSettings(
            url=stack.nginx.base_url, api_key=stack.plane.daemon_key, spool_path=tmp_path / "keyless.spool",
            ca_bundle=stack.pki.ca.cert_path, **fast,  # type: ignore[arg-type]
        )
    )
    try:
        keyless.start()
        keyless.submit([update("web-6")])
        assert keyless.flush(10.0)
        assert keyless.stats == PushStats(submitted=1, dropped_rejected=1)
    finally:
        keyless.close()
    assert any("client certificate required" in r.getMessage() for r in caplog.records)
    assert stack.plane.daemon_key not in caplog.text
    assert not stack.exists("web-6")
