"""The SSRF guard: which URLs a webhook may have, and which resolved addresses a delivery may go to."""

from __future__ import annotations

import pytest

from draas_actors.errors import InvalidInput
from draas_actors.webhooks.guard import AllowedHosts, Refused, check_url, resolve
from draas_actors.webhooks.sender import REFUSED, Sender

OPEN = AllowedHosts()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::ffff:169.254.169.254]/hook", "link-local"),
        ("http://[fd00:ec2::254]/hook", "metadata"),
        ("http://metadata.google.internal/computeMetadata", "metadata"),
        ("http:///no-host", "no host"),
        ("http://user:pw@example.com/hook", "credentials"),
        ("http://example.com:99999/hook", "not a valid URL"),
    ],
)
def test_a_url_that_may_not_be_a_webhook_is_a_422_naming_url(url: str, words: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        check_url(url, OPEN)
    assert raised.value.field == "url"
    assert words in raised.value.message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://hooks.example.com/x?y=1", "HTTP://10.1.2.3/"])
def test_ordinary_urls_pass_by_default(url: str) -> None:
    check_url(url, OPEN)


def test_allowed_hosts_narrow_to_named_hosts_and_cidrs() -> None:
    allowed = AllowedHosts.parse(("hooks.example.com", "10.0.0.0/8"))
    check_url("https://HOOKS.example.com/x", allowed)
    check_url("http://10.9.8.7/x", allowed)
    for url in ("https://other.example.com/x", "http://127.0.0.1/x"):
        with pytest.raises(InvalidInput, match="allowedHosts"):
            check_url(url, allowed)


def test_a_cidr_in_allowed_hosts_lets_a_link_local_address_through() -> None:
    check_url("http://169.254.10.10/x", AllowedHosts.parse(("169.254.10.0/24",)))


def test_a_name_that_resolves_to_the_metadata_address_is_refused_at_delivery() -> None:
    with pytest.raises(Refused, match="link-local"):
        resolve("innocent.example.com", 80, OPEN, lambda host, port: ["93.184.216.34", "169.254.169.254"])


def test_a_listed_name_still_may_not_lead_to_a_link_local_address() -> None:
    allowed = AllowedHosts.parse(("hooks.example.com",))
    assert resolve("hooks.example.com", 443, allowed, lambda h, p: ["10.1.1.1"]) == ["10.1.1.1"]
    with pytest.raises(Refused):
        resolve("hooks.example.com", 443, allowed, lambda h, p: ["169.254.169.254"])


def test_with_allowed_hosts_an_unlisted_name_is_refused_without_resolving_it() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("resolved")

    with pytest.raises(Refused, match="allowedHosts"):
        resolve("elsewhere.example.com", 80, AllowedHosts.parse(("10.0.0.0/8",)), resolver)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    with pytest.raises(Refused, match="cannot resolve"):
        resolve("nowhere.invalid", 80, OPEN, resolver)


def test_a_delivery_to_a_name_that_resolves_to_the_metadata_service_is_refused_before_any_connection() -> None:
    sender = Sender(OPEN, connect_timeout=0.1, timeout=0.1, resolver=lambda host, port: ["169.254.169.254"])
    result = sender.send("http://rebound.example.com/hook", {}, b"{}")
    assert result.outcome == REFUSED and not result.ok and "link-local" in result.error
