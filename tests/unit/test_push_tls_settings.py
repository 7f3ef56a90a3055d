"""The daemons' TLS settings: DRAAS_CLIENT_CERT, DRAAS_CLIENT_KEY and DRAAS_CA_BUNDLE, checked at start, and
what the push client hands to ``requests``."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from daemons import docker_daemon, k8s_daemon
from daemons.push_client import PushSettings
from draas_actors.errors import ConfigError
from tests.tls.pki import TestPki

HTTPS = "https://127.0.0.1:8443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki.make(tmp_path_factory.mktemp("tls"))


def tls_environ(pki: TestPki, **overrides: str) -> dict[str, str]:
    environ = {
        "CONTROL_PLANE_URL": HTTPS,
        "DRAAS_CLIENT_CERT": str(pki.good.cert_path),
        "DRAAS_CLIENT_KEY": str(pki.good.key_path),
        "DRAAS_CA_BUNDLE": str(pki.ca.cert_path),
    }
    environ.update(overrides)
    return {name: value for name, value in environ.items() if value != "<unset>"}


@pytest.mark.parametrize("load_settings", [docker_daemon.load_settings, k8s_daemon.load_settings])
def test_a_client_certificate_and_ca_bundle_reach_requests_and_replace_the_key(
    pki: TestPki, load_settings: object
) -> None:
    settings = load_settings(tls_environ(pki))  # type: ignore[operator]
    assert settings.api_key == ""
    push = settings.push_settings()
    assert (push.client_cert, push.client_key, push.ca_bundle) == (pki.good.cert_path, pki.good.key_path,
                                                                   pki.ca.cert_path)
    assert push.tls_arguments() == {
        "cert": (str(pki.good.cert_path), str(pki.good.key_path)),
        "verify": str(pki.ca.cert_path),
    }


def test_without_tls_variables_nothing_changes_for_requests(pki: TestPki) -> None:
    settings = docker_daemon.load_settings({"CONTROL_PLANE_URL": "http://127.0.0.1:8088", "DRAAS_API_KEY": "k" * 32})
    assert (settings.client_cert, settings.client_key, settings.ca_bundle) == (None, None, None)
    assert settings.push_settings().tls_arguments() == {}


def test_a_ca_bundle_alone_checks_the_server_and_keeps_the_key(pki: TestPki) -> None:
    environ = tls_environ(pki, DRAAS_CLIENT_CERT="<unset>", DRAAS_CLIENT_KEY="<unset>", DRAAS_API_KEY="k" * 32)
    push = docker_daemon.load_settings(environ).push_settings()
    assert push.api_key == "k" * 32
    assert push.tls_arguments() == {"verify": str(pki.ca.cert_path)}


def _encrypted_key(pki: TestPki, directory: Path) -> str:
    path = directory / "encrypted.key"
    path.write_bytes(
        pki.good.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("case", "variable"),
    [
        ("no key and no certificate", "DRAAS_API_KEY"),
        ("certificate file missing", "DRAAS_CLIENT_CERT"),
        ("key file missing", "DRAAS_CLIENT_KEY"),
        ("bundle file missing", "DRAAS_CA_BUNDLE"),
        ("certificate without key", "DRAAS_CLIENT_KEY"),
        ("key without certificate", "DRAAS_CLIENT_CERT"),
        ("key of another certificate", "DRAAS_CLIENT_CERT"),
        ("encrypted key", "DRAAS_CLIENT_CERT"),
        ("bundle that is a key", "DRAAS_CA_BUNDLE"),
        ("certificate over plain http", "DRAAS_CLIENT_CERT"),
        ("bundle over plain http", "DRAAS_CA_BUNDLE"),
    ],
)
def test_a_bad_tls_setting_stops_the_daemon_naming_its_variable(
    pki: TestPki, tmp_path: Path, case: str, variable: str
) -> None:
    overrides = {
        "no key and no certificate": {"DRAAS_CLIENT_CERT": "<unset>", "DRAAS_CLIENT_KEY": "<unset>"},
        "certificate file missing": {"DRAAS_CLIENT_CERT": str(tmp_path / "nope.crt")},
        "key file missing": {"DRAAS_CLIENT_KEY": str(tmp_path / "nope.key")},
        "bundle file missing": {"DRAAS_CA_BUNDLE": str(tmp_path / "nope.pem")},
        "certificate without key": {"DRAAS_CLIENT_KEY": "<unset>"},
        "key without certificate": {"DRAAS_CLIENT_CERT": "<unset>", "DRAAS_API_KEY": "k" * 32},
        "key of another certificate": {"DRAAS_CLIENT_KEY": str(pki.other_identity.key_path)},
        "encrypted key": {"DRAAS_CLIENT_KEY": _encrypted_key(pki, tmp_path)},
        "bundle that is a key": {"DRAAS_CA_BUNDLE": str(pki.ca.key_path)},
        "certificate over plain http": {"CONTROL_PLANE_URL": "http://127.0.0.1:8088", "DRAAS_CA_BUNDLE": "<unset>"},
        "bundle over plain http": {
            "CONTROL_PLANE_URL": "http://127.0.0.1:8088", "DRAAS_CLIENT_CERT": "<unset>",
            "DRAAS_CLIENT_KEY": "<unset>", "DRAAS_API_KEY": "k" * 32,
        },
    }[case]
    with pytest.raises(ConfigError) as caught:
        docker_daemon.load_settings(tls_environ(pki, **overrides))
    assert caught.value.field == variable
    assert caught.value.message.startswith(variable)
    assert "secret" not in caught.value.message


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"client_key": None}, "give both or neither"),
        ({"client_cert": None}, "give both or neither"),
        ({"client_cert": None, "client_key": None, "api_key": ""}, "api_key or a client certificate"),
        ({"url": "http://127.0.0.1:8088"}, "https:// url"),
        ({"url": "http://127.0.0.1:8088", "client_cert": None, "client_key": None, "api_key": "k"}, "https:// url"),
    ],
)
def test_push_settings_refuse_an_inconsistent_tls_setup(
    pki: TestPki, tmp_path: Path, overrides: dict[str, object], fragment: str
) -> None:
    values: dict[str, object] = {
        "url": HTTPS, "api_key": "", "spool_path": tmp_path / "spool.db", "client_cert": pki.good.cert_path,
        "client_key": pki.good.key_path, "ca_bundle": pki.ca.cert_path,
    }
    with pytest.raises(ValueError, match=fragment):
        PushSettings(**{**values, **overrides})  # type: ignore[arg-type]
