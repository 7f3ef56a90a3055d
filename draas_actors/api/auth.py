"""API keys: daemons push with a daemon key, operators use an operator key; compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any, Mapping

import falcon

PUBLIC, DAEMON, OPERATOR = "public", "daemon", "operator"


class ApiKeyAuth:
    """falcon middleware; ``roles`` maps a route template to the role it requires."""

    def __init__(self, roles: Mapping[str, str], keys: Mapping[str, tuple[str, ...]]) -> None:
        self.roles = roles
        self.keys = {role: tuple(k.encode() for k in values) for role, values in keys.items()}

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        role = self.roles.get(req.uri_template or "", OPERATOR)
        if role == PUBLIC:
            return
        presented = _presented_key(req)
        if presented is None:
            raise falcon.HTTPUnauthorized(
                title="missing API key",
                description=f"send the {role} key as X-API-Key or Authorization: Bearer",
                challenges=["Bearer"],
            )
        # Check every key, not the first match, so timing does not tell which key was close.
        ok = False
        for key in self.keys.get(role, ()):
            ok |= hmac.compare_digest(presented, key)
        if not ok:
            raise falcon.HTTPUnauthorized(
                title="invalid API key", description=f"this route needs a {role} key", challenges=["Bearer"]
            )


def _presented_key(req: falcon.Request) -> bytes | None:
    key = req.get_header("X-API-Key")
    if not key:
        auth = req.get_header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    return key.encode() if key else None
