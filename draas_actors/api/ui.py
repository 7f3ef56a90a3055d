"""The dashboard at ``/ui``: its pages and files (public: they hold no data), and sign-in / sign-out.

Every byte the page runs comes from ``draas_actors/ui/static``; its data comes from the API, authenticated by the
session cookie (``session.py``). The headers below keep anything else out: no inline script, no other origin, no
framing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from ..errors import InvalidInput
from ..security import OPERATOR, Identity
from ..ui import static_files
from ..wire import format_time
from .auth import HTTPForbidden, KeyRing
from .limits import read_json
from .session import Session, Sessions, clear_cookie, request_host, same_host, session_token, set_cookie

UI_PREFIX = "/ui"
SESSION_PATH = "/ui/session"
# No inline script or style, nothing from another origin, no framing, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MAX_KEY_LENGTH = 512


def _secure(resp: falcon.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        resp.set_header(name, value)
    # Revalidated each time: an upgraded control plane's page never runs with a stale module.
    resp.cache_control = ["no-cache"]


class _Files:
    """The static files, read once per app."""

    def __init__(self) -> None:
        self.files = static_files()

    def serve(self, resp: falcon.Response, name: str) -> None:
        found = self.files.get(name)
        if found is None:
            raise falcon.HTTPNotFound(title="not found", description=f"no dashboard file {name!r}")
        resp.data, resp.content_type = found
        _secure(resp)


class UiPage(_Files):
    """GET /ui, /ui/instance, /ui/signin: one HTML page each."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.serve(resp, self.page)


class UiStatic(_Files):
    """GET /ui/static/{name}: the page's modules, styles and images."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        self.serve(resp, name)


class UiSession:
    """/ui/session: who is signed in (GET), sign in with an operator key (POST), sign out (DELETE)."""

    def __init__(self, sessions: Sessions, keys: KeyRing, clock: Callable[[], float]) -> None:
        self.sessions = sessions
        self.keys = keys
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session: Session | None = getattr(req.context, "session", None)
        resp.media = _view(req.context.identity, session)
        resp.cache_control = ["no-store"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Signing a victim in as the attacker (login CSRF) is refused like any other cross-site write.
        origin = req.get_header("Origin")
        if origin and not same_host(origin, request_host(req)):
            raise HTTPForbidden("a cross-site sign-in is refused (Origin is another site)", field="Origin")
        body = read_json(req)
        key = body.get("key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise InvalidInput(f"key: expected the operator's API key (1 to {MAX_KEY_LENGTH} characters)", field="key")
        identity = self.keys.identify(key)
        if identity is None:
            raise falcon.HTTPUnauthorized(
                title="invalid API key", description="the key is not one of the configured keys"
            )
        if identity.kind != OPERATOR:
            raise HTTPForbidden(f"{identity.name!r} is a daemon identity: only operators sign in", field="key")
        token, session = self.sessions.open(identity)
        set_cookie(req, resp, token, session.expires_at - self.clock())
        resp.media = _view(identity, session)
        resp.cache_control = ["no-store"]

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        token = session_token(req)
        if token is not None:
            self.sessions.close(token)
        clear_cookie(req, resp)
        resp.status = falcon.HTTP_204


def _view(identity: Identity, session: Session | None) -> dict[str, Any]:
    """Who is signed in; the CSRF token only to the page the session cookie authenticated (a key needs none)."""
    return {
        "identity": identity.name,
        "role": identity.role,
        "csrfToken": None if session is None else session.csrf_token,
        "expiresAt": None if session is None else format_time(session.expires_at),
    }


__all__ = ["CONTENT_SECURITY_POLICY", "SESSION_PATH", "UI_PREFIX", "UiPage", "UiSession", "UiStatic"]
