"""Where a request comes from (``req.context.client``) and the push allowlists (403).

The peer address is the TCP peer. Only when that peer is a trusted proxy are its ``X-Forwarded-For`` and
``X-Client-*`` headers believed; the client is then the right-most ``X-Forwarded-For`` hop that is not itself a
trusted proxy, because every hop left of it was written by someone we do not trust (a client can send
``X-Forwarded-For: 10.0.0.1`` and the proxy appends the real address after it).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import falcon

from ..security import PUSH, Network, address_in
from .auth import HTTPForbidden

UNKNOWN = "unknown"


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: tuple[Network, ...]) -> str:
    """The client's address: ``peer``, or from ``X-Forwarded-For`` when ``peer`` is a trusted proxy."""
    if not forwarded_for or not address_in(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        if not _is_address(hop):
            return UNKNOWN  # a hop we cannot read: claim nothing rather than trust a hop further left
        if not address_in(hop, trusted_proxies):
            return hop
    return hops[0]  # every hop is a trusted proxy: the left-most is the origin


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class ClientAddress:
    """falcon middleware, first in the chain: sets ``req.context.client`` and ``req.context.from_trusted_proxy``."""

    def __init__(self, trusted_proxies: tuple[Network, ...]) -> None:
        self.trusted_proxies = trusted_proxies

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = req.remote_addr or UNKNOWN
        req.context.peer = peer
        req.context.from_trusted_proxy = address_in(peer, self.trusted_proxies)
        req.context.client = client_address(peer, req.get_header("X-Forwarded-For"), self.trusted_proxies)


class PushAllowlist:
    """falcon middleware, after authentication: the global push allowlist, then the identity's own ``allow``."""

    def __init__(self, push_allowlist: tuple[Network, ...]) -> None:
        self.push_allowlist = push_allowlist

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        identity = getattr(req.context, "identity", None)
        if identity is None:
            return  # a public route
        client: str = req.context.client
        if self.push_allowlist and identity.role == PUSH and not address_in(client, self.push_allowlist):
            raise HTTPForbidden(f"{client} is not in the push allowlist ([network] pushAllowlist)")
        if not identity.allows_address(client):
            raise HTTPForbidden(f"{client} is not in the allowlist of identity {identity.name!r}")
