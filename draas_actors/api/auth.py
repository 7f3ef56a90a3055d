"""Authentication (401) and roles (403): who is calling, and may they call this route with this method.

A caller proves who it is with an API key (``X-API-Key`` or ``Authorization: Bearer``), for daemons with a
client certificate that the trusted TLS proxy verified and forwarded (``X-Client-Verify``, ``X-Client-Subject``),
or, for the dashboard, with the session cookie an operator's key bought at sign-in (``session.py``: the same
identity and role as the key, and every unsafe method it authenticates passes the cross-site checks).
Keys are hashed and compared in constant time with every configured hash; no key is ever logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import falcon

from ..security import (
    DAEMON,
    PUBLIC,
    PUSH,
    Credential,
    Identity,
    hash_key,
    normalise_subject,
)
from .session import Sessions, forgery_refusal, session_token

# Route template -> {HTTP method -> required role}: built from the route table (routes.ROUTES), the one place
# roles are declared.
RoleTable = Mapping[str, Mapping[str, str]]
NO_CERTIFICATE = "NONE"  # nginx's $ssl_client_verify when the client sent no certificate
# The WSGI environ key set to the identity's name once a request's credential is valid: its connection may then
# keep a reserved connection slot (see admission.py).
AUTHENTICATED = "draas.authenticated"


class HTTPForbidden(falcon.HTTPForbidden):
    """403 with the ``field`` our error body names (the error serializer reads it)."""

    def __init__(self, description: str, *, field: str | None = None) -> None:
        super().__init__(title="forbidden", description=description)
        self.field = field


def required_role(roles: RoleTable, template: str | None, method: str) -> str | None:
    """The role ``method`` on ``template`` needs; None for a method the route does not serve (falcon says 405)."""
    return roles.get(template or "", {}).get(method.upper())


class KeyRing:
    """The configured keys: who a presented key belongs to."""

    def __init__(self, credentials: tuple[Credential, ...] = ()) -> None:
        self.keyed = tuple((key_hash.encode(), c.identity) for c in credentials for key_hash in c.key_hashes)

    def identify(self, key: str) -> Identity | None:
        presented = hash_key(key).encode()
        found: Identity | None = None
        # Every hash is compared, match or not, so the time taken does not tell which one was close.
        for stored, identity in self.keyed:
            if hmac.compare_digest(presented, stored) and found is None:
                found = identity
        return found


class Authenticate:
    """falcon middleware: sets ``req.context.identity`` (401 if nobody) and checks its role (403)."""

    def __init__(
        self, roles: RoleTable, credentials: tuple[Credential, ...], sessions: Sessions | None = None
    ) -> None:
        self.roles = roles
        self.keys = KeyRing(credentials)
        self.subjects = {subject: c.identity for c in credentials for subject in c.cert_subjects}
        self.sessions = sessions

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        templates = self.roles.get(req.uri_template or "", {})
        required = required_role(self.roles, req.uri_template, req.method)
        if required == PUBLIC or (required is None and PUBLIC in templates.values()):
            return
        identity = self.authenticate(req)
        req.context.identity = identity
        req.env[AUTHENTICATED] = identity.name
        # A method the route does not serve is left to falcon's 405, but only once the caller is known.
        if required is not None and not identity.has_role(required):
            raise HTTPForbidden(_wrong_role(identity, required, req))

    def authenticate(self, req: falcon.Request) -> Identity:
        by_certificate = self._by_certificate(req)
        key = presented_key(req)
        if key is None:
            if by_certificate is None:
                return self._by_session(req)
            return by_certificate
        by_key = self.keys.identify(key)
        if by_key is None:
            raise _unauthorized("invalid API key", "the API key is not one of the configured keys")
        if by_certificate is not None and by_certificate != by_key:
            raise _unauthorized(
                "conflicting credentials", "the client certificate and the API key belong to different identities"
            )
        return by_key

    def _by_session(self, req: falcon.Request) -> Identity:
        token = session_token(req) if self.sessions is not None else None
        if token is None or self.sessions is None:
            raise _unauthorized("missing credentials", "send an API key as X-API-Key or Authorization: Bearer")
        session = self.sessions.find(token)
        if session is None:
            raise _unauthorized("session expired", "the session cookie is signed out or expired: sign in again")
        refusal = forgery_refusal(req, session)
        if refusal is not None:
            field, message = refusal
            raise HTTPForbidden(message, field=field)
        req.context.session = session
        return session.identity

    def _by_certificate(self, req: falcon.Request) -> Identity | None:
        # Only the trusted proxy's word counts: anyone else could send these headers.
        if not getattr(req.context, "from_trusted_proxy", False):
            return None
        verify = (req.get_header("X-Client-Verify") or NO_CERTIFICATE).strip()
        if verify == NO_CERTIFICATE:
            return None
        if verify != "SUCCESS":
            raise _unauthorized("client certificate refused", f"the TLS proxy did not verify it: {verify[:200]}")
        subject = normalise_subject(req.get_header("X-Client-Subject") or "")
        identity = self.subjects.get(subject)
        if identity is None:
            raise _unauthorized("unknown client certificate", f"no daemon identity lists the subject {subject[:200]!r}")
        return identity


def presented_key(req: falcon.Request) -> str | None:
    key = req.get_header("X-API-Key")
    if not key:
        auth = req.get_header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else ""
    return key or None


def _unauthorized(title: str, description: str) -> falcon.HTTPUnauthorized:
    return falcon.HTTPUnauthorized(title=title, description=description, challenges=["Bearer"])


def _wrong_role(identity: Identity, required: str, req: falcon.Request) -> str:
    route = f"{req.method} {req.uri_template}"
    if required == PUSH:
        return f"{route} is for daemon identities; {identity.name!r} is an operator"
    if identity.kind == DAEMON:
        return f"{route} is for operators; {identity.name!r} is a daemon identity"
    return f"{route} needs role {required!r}; {identity.name!r} has role {identity.role!r}"
