"""The [auth] and [network] tables: identities, hashed keys, scopes, allowlists; every error names its field."""

from __future__ import annotations

import io
import logging
import stat
from pathlib import Path

import pytest

from draas_actors.cli import main
from draas_actors.errors import ConfigError
from draas_actors.model import Platform
from draas_actors.security import ADMIN, DAEMON, OPERATE, PUSH, hash_key, parse_network
from draas_actors.settings import Settings, ensure_keys, load_settings

KEY, OTHER_KEY = "k" * 32, "q" * 32
HASH, OTHER_HASH = hash_key(KEY), hash_key(OTHER_KEY)
DAEMON_D = '[[auth.daemons]]\nname = "d"'

FULL = f"""
[[auth.daemons]]
name = "docker-host-1"
keyHashes = ["{HASH}", "{OTHER_HASH}"]
certSubjects = ["cn=docker-host-1, O=draas"]
platforms = ["docker"]
instances = ["web-*", "db-?"]
allow = ["10.1.0.0/16", "192.0.2.7"]
rate = 50.0
burst = 100
requestRate = 80.0
requestBurst = 5

[[auth.daemons]]
name = "anything"
certSubjects = ["CN=anything"]
instances = ["*"]

[[auth.operators]]
name = "alice"
keyHashes = ["{hash_key('a' * 32)}"]
role = "operate"

[network]
trustedProxies = ["127.0.0.1/32", "::1"]
pushAllowlist = ["10.0.0.0/8"]
"""


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "draas.toml"
    path.write_text(text)
    return load_settings(path, environ=environ or {})


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    return caught.value


def test_identities_and_networks_are_read_into_security_settings(tmp_path: Path) -> None:
    security = _load(tmp_path, FULL).security
    docker, anything, alice = security.auth.credentials
    assert docker.identity.name == "docker-host-1"
    assert (docker.identity.kind, docker.identity.role) == (DAEMON, PUSH)
    assert docker.key_hashes == (HASH, OTHER_HASH)
    assert docker.cert_subjects == ("CN=docker-host-1,O=draas",)
    assert docker.identity.platforms == frozenset({Platform.DOCKER})
    assert docker.identity.instances == ("web-*", "db-?")
    assert docker.identity.allow == (parse_network("10.1.0.0/16"), parse_network("192.0.2.7/32"))
    assert (docker.identity.rate, docker.identity.burst) == (50.0, 100)
    assert (docker.identity.request_rate, docker.identity.request_burst) == (80.0, 5)
    assert (anything.identity.request_rate, anything.identity.request_burst) == (None, None)
    assert anything.key_hashes == () and anything.identity.instances == () and anything.identity.platforms is None
    assert (alice.identity.kind, alice.identity.role) == ("operator", OPERATE)
    assert security.network.trusted_proxies == (parse_network("127.0.0.1/32"), parse_network("::1/128"))
    assert security.network.push_allowlist == (parse_network("10.0.0.0/8"),)


def test_no_auth_table_means_no_identities_and_no_networks(tmp_path: Path) -> None:
    security = _load(tmp_path, 'logLevel = "INFO"\n').security
    assert security.auth.credentials == ()
    assert security.network.trusted_proxies == () and security.network.push_allowlist == ()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[auth]\ndaemonApiKeys = ["' + "x" * 20 + '"]\n', "auth.daemonApiKeys"),
        ("[auth]\noperatorApiKeys = []\n", "auth.operatorApiKeys"),
        ('[[auth.daemons]]\nname = "d"\nkeyHashes = ["sha256:abc"]\n', "auth.daemons[0].keyHashes[0]"),
        (f'{DAEMON_D}\nkeyHashes = ["{HASH}", "{OTHER_HASH}", "{HASH}"]\n', "auth.daemons[0].keyHashes"),
        ('[[auth.daemons]]\nname = "d"\n', "auth.daemons[0].keyHashes"),
        (f'[[auth.daemons]]\nkeyHashes = ["{HASH}"]\n', "auth.daemons[0].name"),
        (f'[[auth.daemons]]\nname = "d"\nkeyHashes = ["{HASH}"]\nplatforms = ["vm"]\n', "auth.daemons[0].platforms[0]"),
        (f'{DAEMON_D}\nkeyHashes = ["{HASH}"]\nallow = ["10.0.0.0/33"]\n', "auth.daemons[0].allow[0]"),
        (f'[[auth.daemons]]\nname = "d"\nkeyHashes = ["{HASH}"]\nrate = 0\n', "auth.daemons[0].rate"),
        (f'[[auth.daemons]]\nname = "d"\nkeyHashes = ["{HASH}"]\nrequestBurst = 0\n', "auth.daemons[0].requestBurst"),
        (f'[[auth.daemons]]\nname = "d"\nkeyHashes = ["{HASH}"]\nsecret = 1\n', "auth.daemons[0].secret"),
        (f'[[auth.operators]]\nname = "o"\nkeyHashes = ["{HASH}"]\n', "auth.operators[0].role"),
        (f'[[auth.operators]]\nname = "o"\nkeyHashes = ["{HASH}"]\nrole = "root"\n', "auth.operators[0].role"),
        ('[[auth.operators]]\nname = "o"\nrole = "read"\n', "auth.operators[0].keyHashes"),
        ('[network]\ntrustedProxies = ["localhost"]\n', "network.trustedProxies[0]"),
        ('[network]\npushAllowlist = ["10.0.0.0/8", "nope"]\n', "network.pushAllowlist[1]"),
    ],
    ids=[
        "old daemon keys", "old operator keys", "bad hash", "three hashes", "no credentials", "no name",
        "unknown platform", "bad cidr", "zero rate", "zero request burst", "unknown field", "no role", "unknown role",
        "operator no hash",
        "proxy name", "allowlist entry",
    ],
)
def test_a_wrong_auth_or_network_setting_is_named(tmp_path: Path, text: str, field: str) -> None:
    assert _error(tmp_path, text).field == field


def test_the_old_plain_key_lists_point_to_the_identity_tables(tmp_path: Path) -> None:
    error = _error(tmp_path, '[auth]\ndaemonApiKeys = ["' + "x" * 20 + '"]\n')
    assert "[[auth.daemons]]" in error.message and "hash-key" in error.message
    assert "x" * 20 not in error.message


def test_a_plain_key_pasted_as_a_hash_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    error = _error(tmp_path, f'[[auth.operators]]\nname = "o"\nrole = "read"\nkeyHashes = ["{KEY}"]\n')
    assert error.field == "auth.operators[0].keyHashes[0]"
    assert KEY not in error.message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            f'[[auth.daemons]]\nname = "x"\nkeyHashes = ["{HASH}"]\n'
            f'[[auth.operators]]\nname = "x"\nkeyHashes = ["{OTHER_HASH}"]\nrole = "read"\n',
            "auth.operators[0].name",
        ),
        (
            f'[[auth.daemons]]\nname = "a"\nkeyHashes = ["{HASH}"]\n'
            f'[[auth.daemons]]\nname = "b"\nkeyHashes = ["{OTHER_HASH}", "{HASH}"]\n',
            "auth.daemons[1].keyHashes[1]",
        ),
        (
            '[[auth.daemons]]\nname = "a"\ncertSubjects = ["CN=h,O=x"]\n'
            '[[auth.daemons]]\nname = "b"\ncertSubjects = ["cn=h, o=x"]\n',
            "auth.daemons[1].certSubjects[0]",
        ),
    ],
    ids=["name", "key hash", "certificate subject"],
)
def test_two_identities_cannot_share_a_name_a_key_or_a_subject(tmp_path: Path, text: str, field: str) -> None:
    assert _error(tmp_path, text).field == field


# -- quick start ----------------------------------------------------------------------------------------------


def test_a_key_file_is_generated_only_for_a_kind_with_no_configured_identity(tmp_path: Path) -> None:
    only_daemons = f'dataDir = "{tmp_path}"\n[[auth.daemons]]\nname = "d"\nkeyHashes = ["{HASH}"]\n'
    settings, written = ensure_keys(_load(tmp_path, only_daemons))
    assert written == [tmp_path / "operator.key"]
    assert stat.S_IMODE((tmp_path / "operator.key").stat().st_mode) == 0o600
    assert settings.daemon_keys == ()
    assert settings.operator_keys == ((tmp_path / "operator.key").read_text().strip(),)


def test_keys_from_the_environment_are_the_quick_start_identities_next_to_configured_ones(tmp_path: Path) -> None:
    text = f'dataDir = "{tmp_path}"\n[[auth.daemons]]\nname = "d"\nkeyHashes = ["{HASH}"]\n'
    settings, written = ensure_keys(_load(tmp_path, text, {"DRAAS_OPERATOR_API_KEY": OTHER_KEY}))
    assert written == []
    assert settings.operator_keys == (OTHER_KEY,)
    assert len(settings.security.auth.daemons) == 1


def test_the_admin_role_is_a_valid_operator_role(tmp_path: Path) -> None:
    text = f'[[auth.operators]]\nname = "root"\nkeyHashes = ["{HASH}"]\nrole = "admin"\n'
    (root,) = _load(tmp_path, text).security.auth.operators
    assert root.identity.role == ADMIN


# -- run.py hash-key ------------------------------------------------------------------------------------------


def test_hash_key_prints_a_new_key_once_and_its_hash_and_logs_nothing(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["hash-key"]) == 0
    out, err = capsys.readouterr()
    key_line, hash_line = out.splitlines()
    key = key_line.removeprefix("key:").strip()
    assert len(key) >= 43
    assert hash_line.removeprefix("hash:").strip() == hash_key(key)
    assert err == ""
    assert caplog.records == []
    assert main(["hash-key"]) == 0
    assert key not in capsys.readouterr().out  # a new key every time


def test_hash_key_can_hash_an_existing_key_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert main(["hash-key", "--stdin"]) == 0
    assert capsys.readouterr().out.strip() == HASH
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["hash-key", "--stdin"]) == 2
    assert "short" not in capsys.readouterr().err
