"""Pure security rules: key hashing, roles, daemon scope, subjects, addresses and X-Forwarded-For."""

from __future__ import annotations

import hashlib

import pytest

from draas_actors.api.network import UNKNOWN, client_address
from draas_actors.model import Platform
from draas_actors.security import (
    ADMIN,
    LOCAL_ADMIN,
    LOCAL_DAEMON,
    OPERATE,
    PUSH,
    READ,
    Identity,
    address_in,
    daemon_identity,
    hash_key,
    is_key_hash,
    new_key,
    normalise_subject,
    operator_identity,
    parse_network,
    quick_start,
    scope_refusal,
)

DOCKER_ONLY = frozenset({Platform.DOCKER})


# -- keys ---------------------------------------------------------------------------------------------------


def test_a_key_hash_is_sha256_hex_of_the_key_with_its_prefix() -> None:
    assert hash_key("a-key") == "sha256:" + hashlib.sha256(b"a-key").hexdigest()
    assert is_key_hash(hash_key("a-key"))


@pytest.mark.parametrize(
    "text", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha1:" + "a" * 64, "a" * 64, "sha256:" + "g" * 64, ""]
)
def test_anything_but_sha256_and_64_lower_case_hex_digits_is_not_a_key_hash(text: str) -> None:
    assert not is_key_hash(text)


def test_new_keys_are_long_random_and_hash_apart() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert len(first) >= 43  # 32 random bytes, base64url
    assert hash_key(first) != hash_key(second)


def test_quick_start_keys_become_local_daemon_with_all_scope_and_local_admin() -> None:
    daemon, operator = quick_start(("d" * 20,), ("o" * 20, "p" * 20))
    assert daemon.identity == Identity(name=LOCAL_DAEMON, kind="daemon", role=PUSH)
    assert daemon.key_hashes == (hash_key("d" * 20),)
    assert operator.identity.name == LOCAL_ADMIN and operator.identity.role == ADMIN
    assert operator.key_hashes == (hash_key("o" * 20), hash_key("p" * 20))
    assert quick_start((), ()) == ()


# -- roles --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (READ, {READ}),
        (OPERATE, {READ, OPERATE}),
        (ADMIN, {READ, OPERATE, ADMIN}),
    ],
)
def test_each_operator_role_includes_the_roles_below_it_and_never_push(role: str, allowed: set[str]) -> None:
    identity = operator_identity("alice", role)
    assert {r for r in (READ, OPERATE, ADMIN, PUSH) if identity.has_role(r)} == allowed


def test_a_daemon_identity_may_only_push() -> None:
    identity = daemon_identity("d")
    assert {r for r in (READ, OPERATE, ADMIN, PUSH) if identity.has_role(r)} == {PUSH}


def test_an_unknown_operator_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operator role"):
        operator_identity("alice", "root")


# -- daemon scope -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_id", "expected"),
    [("web-1", True), ("web-", True), ("db-1", True), ("db-12", False), ("Web-1", False), ("api-web-1", False)],
)
def test_instance_patterns_are_case_sensitive_fnmatch_on_the_whole_id(instance_id: str, expected: bool) -> None:
    identity = daemon_identity("d", instances=("web-*", "db-?"))
    assert identity.may_report_on(instance_id) is expected


def test_no_instance_patterns_means_every_instance() -> None:
    assert daemon_identity("d").may_report_on("anything/at:all")


def test_a_report_outside_the_instance_patterns_is_refused_naming_instance_id() -> None:
    identity = daemon_identity("d", instances=("web-*",))
    refusal = scope_refusal(identity, "db-1", Platform.DOCKER, None, "DockerDaemon")
    assert refusal is not None and refusal[0] == "instanceId"
    assert "db-1" in refusal[1] and "web-*" in refusal[1]


def test_a_report_naming_a_platform_outside_the_scope_is_refused_naming_platform() -> None:
    identity = daemon_identity("d", platforms=DOCKER_ONLY)
    refusal = scope_refusal(identity, "web-1", Platform.KUBERNETES, None, "k8s")
    assert refusal is not None and refusal[0] == "platform"


def test_a_report_without_platform_is_judged_by_the_existing_instance_platform() -> None:
    identity = daemon_identity("d", platforms=DOCKER_ONLY)
    assert scope_refusal(identity, "web-1", None, Platform.DOCKER, "x") is None
    refusal = scope_refusal(identity, "pod-1", None, Platform.KUBERNETES, "x")
    assert refusal is not None and refusal[0] == "platform"


def test_naming_an_allowed_platform_does_not_reach_another_platforms_instance() -> None:
    identity = daemon_identity("d", platforms=DOCKER_ONLY)
    refusal = scope_refusal(identity, "pod-1", Platform.DOCKER, Platform.KUBERNETES, "DockerDaemon")
    assert refusal is not None and refusal[0] == "platform"
    assert "kubernetes instance" in refusal[1]


def test_a_new_instance_without_platform_is_judged_by_the_platform_auto_create_would_guess() -> None:
    identity = daemon_identity("d", platforms=DOCKER_ONLY)
    assert scope_refusal(identity, "new-1", None, None, "DockerDaemon") is None
    refusal = scope_refusal(identity, "new-1", None, None, "AksDaemon")
    assert refusal is not None and refusal[0] == "platform"


def test_an_unrestricted_daemon_may_report_on_any_platform() -> None:
    identity = daemon_identity("d")
    assert scope_refusal(identity, "pod-1", Platform.KUBERNETES, Platform.PROCESS, "k8s") is None


# -- certificate subjects -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("CN=docker-host-1,O=draas", "CN=docker-host-1,O=draas"),
        ("cn=docker-host-1, o=draas", "CN=docker-host-1,O=draas"),
        (" CN = docker-host-1 ,O= draas ", "CN=docker-host-1,O=draas"),
        ("CN=a\\,b,O=draas", "CN=a\\,b,O=draas"),
        ("CN=a+uid=7,O=draas", "CN=a+UID=7,O=draas"),
    ],
)
def test_subjects_are_compared_in_one_spelling(written: str, canonical: str) -> None:
    assert normalise_subject(written) == canonical


def test_values_keep_their_case_in_a_subject() -> None:
    assert normalise_subject("CN=Host") != normalise_subject("CN=host")


# -- addresses ----------------------------------------------------------------------------------------------

PROXY = (parse_network("127.0.0.1/32"), parse_network("10.0.0.0/8"))


def test_networks_parse_cidrs_and_bare_addresses() -> None:
    assert str(parse_network("10.1.2.3")) == "10.1.2.3/32"
    assert str(parse_network("10.1.2.3/16")) == "10.1.0.0/16"  # host bits are forgiven
    assert str(parse_network("::1")) == "::1/128"
    with pytest.raises(ValueError):
        parse_network("10.0.0.0/33")


def test_an_ipv4_mapped_ipv6_address_matches_its_ipv4_network() -> None:
    assert address_in("::ffff:10.1.2.3", (parse_network("10.0.0.0/8"),))
    assert not address_in("not an address", (parse_network("0.0.0.0/0"),))


def test_an_untrusted_peer_is_the_client_whatever_x_forwarded_for_says() -> None:
    assert client_address("198.51.100.9", "203.0.113.5", PROXY) == "198.51.100.9"
    assert client_address("198.51.100.9", "203.0.113.5", ()) == "198.51.100.9"


def test_a_trusted_proxy_names_the_client_in_x_forwarded_for() -> None:
    assert client_address("127.0.0.1", "203.0.113.5", PROXY) == "203.0.113.5"
    assert client_address("127.0.0.1", None, PROXY) == "127.0.0.1"


def test_a_spoofed_x_forwarded_for_prefix_is_ignored_behind_a_trusted_proxy() -> None:
    # The client sent "X-Forwarded-For: 192.0.2.1"; nginx appended the address it really came from.
    assert client_address("127.0.0.1", "192.0.2.1, 203.0.113.5", PROXY) == "203.0.113.5"


def test_trusted_proxies_in_a_chain_are_skipped_from_the_right() -> None:
    assert client_address("127.0.0.1", "192.0.2.1, 203.0.113.5, 10.0.0.7", PROXY) == "203.0.113.5"
    assert client_address("127.0.0.1", "10.0.0.8, 10.0.0.7", PROXY) == "10.0.0.8"


def test_an_unreadable_hop_makes_the_client_unknown_rather_than_trusting_further_left() -> None:
    assert client_address("127.0.0.1", "203.0.113.5, garbage", PROXY) == UNKNOWN
    assert client_address("127.0.0.1", "203.0.113.5, 203.0.113.6:443", PROXY) == UNKNOWN


def test_an_identity_allowlist_restricts_only_when_given() -> None:
    assert daemon_identity("d").allows_address("198.51.100.1")
    limited = daemon_identity("d", allow=(parse_network("10.1.0.0/16"),))
    assert limited.allows_address("10.1.2.3")
    assert not limited.allows_address("10.2.0.1")
    assert not limited.allows_address(UNKNOWN)
