"""The SSRF guard: where a webhook may point, judged when it is created and again, on the resolved addresses, at
every delivery (a name that resolved to a public address yesterday may resolve to the metadata service today).

By default only link-local and cloud metadata addresses are refused: a control plane commonly notifies services on
its own network, loopback included. ``[webhooks] allowedHosts`` narrows it to named hosts and CIDRs; an address
inside a listed CIDR is allowed even when it is link-local (the operator said so).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ..errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
REFUSED_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.0.0/16",  # IPv4 link-local, 169.254.169.254 the metadata service of most clouds
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS's IPv6 metadata service
        "100.100.100.200/32",  # Alibaba Cloud's metadata service
    )
)
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})

Resolver = Callable[[str, int], list[str]]


class Refused(Exception):
    """A delivery's destination is not allowed (its message says why)."""


@dataclass(frozen=True)
class AllowedHosts:
    """``[webhooks] allowedHosts``: hostnames and CIDRs; empty means any host but the refused ones."""

    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: tuple[str, ...]) -> AllowedHosts:
        names: set[str] = set()
        networks: list[Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names.add(entry.strip().lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    @property
    def restricted(self) -> bool:
        return bool(self.names or self.networks)

    def lists_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


def check_url(url: str, allowed: AllowedHosts, *, field: str = "url") -> SplitResult:
    """The parsed URL of a webhook being created or changed; ``InvalidInput`` naming ``field`` when it may not be
    one. Names are not resolved here (that is done at each delivery): only literal addresses are judged."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"{field}: not a valid URL ({error})", field=field) from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidInput(f"{field}: the scheme must be http or https, not {parts.scheme!r}", field=field)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput(f"{field}: the URL has no host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"{field}: credentials in the URL are not supported (deliveries are signed)", field=field)
    if port == 0:
        raise InvalidInput(f"{field}: port 0 is not a port to deliver to", field=field)
    address = _literal(host)
    reason = refusal(address, allowed) if address is not None else _name_refusal(host, allowed)
    if reason is not None:
        raise InvalidInput(f"{field}: {reason}", field=field)
    return parts


def resolve(host: str, port: int, allowed: AllowedHosts, resolver: Resolver | None = None) -> list[str]:
    """The addresses to connect to for ``host``, every one of them allowed; ``Refused`` otherwise. The caller
    connects to these, not to the name again, so that a second lookup cannot answer differently."""
    host = host.rstrip(".")
    literal = _literal(host)
    if literal is None:
        reason = _name_refusal(host, allowed)
        if reason is not None:
            raise Refused(reason)
        try:
            found = (resolver or _getaddrinfo)(host, port)
        except OSError as error:
            raise Refused(f"cannot resolve {host!r}: {error}") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        named = host.lower() in allowed.names
    else:
        addresses, named = [literal], False
    if not addresses:
        raise Refused(f"{host!r} resolves to no address")
    for address in addresses:
        # A listed name still may not lead to a refused address, unless a CIDR lists it.
        reason = refusal(address, allowed, named=named)
        if reason is not None:
            raise Refused(f"{host!r} resolves to {address}: {reason}")
    return [str(a) for a in addresses]


def refusal(address: Address, allowed: AllowedHosts, *, named: bool = False) -> str | None:
    """Why a delivery may not go to ``address`` (of a host listed by name in allowedHosts when ``named``), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allowed.lists_address(address):
        return None
    if any(address in network for network in REFUSED_NETWORKS):
        return f"{address} is a link-local or cloud metadata address"
    if allowed.restricted and not named:
        return f"{address} is not in webhooks.allowedHosts"
    return None


def _name_refusal(host: str, allowed: AllowedHosts) -> str | None:
    name = host.lower()
    if allowed.restricted:
        return None if name in allowed.names else f"host {host!r} is not in webhooks.allowedHosts"
    if name in METADATA_NAMES:
        return f"{host!r} is a cloud metadata service"
    return None


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


__all__ = ["METADATA_NAMES", "REFUSED_NETWORKS", "AllowedHosts", "Refused", "check_url", "refusal", "resolve"]
