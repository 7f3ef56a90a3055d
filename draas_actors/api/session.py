"""The dashboard's sign-in sessions: a cookie that stands for an operator's key, and what protects it.

A browser's EventSource cannot send an API key, so the page signs in once (``POST /ui/session`` with the key) and
the server answers with a random session token in an HttpOnly, SameSite=Strict cookie. The key itself is never
stored, echoed or logged; the token is kept hashed, with the identity it stands for and a fixed expiry.

Sessions live in memory: a restart signs everyone out. ``max_sessions`` bounds the memory they take.

A cookie is sent by the browser whoever made the page that asks, so a request authenticated by it is a possible
cross-site request forgery. Every unsafe method (anything but GET, HEAD, OPTIONS) that the cookie authenticates
must carry the session's CSRF token in ``X-Draas-CSRF`` (another site's page cannot read it, nor send a custom
header cross-origin without a CORS preflight that this server never grants), and its ``Origin`` (else ``Referer``),
when sent, must name this server's host.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import falcon

from ..security import Identity, SessionSettings

COOKIE = "draas_session"
CSRF_HEADER = "X-Draas-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    identity: Identity
    csrf_token: str
    expires_at: float  # the clock's seconds


class Sessions:
    """Open sessions by the hash of their token; thread-safe (every request thread reads it)."""

    def __init__(self, settings: SessionSettings | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or SessionSettings()
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, Session] = {}

    def open(self, identity: Identity) -> tuple[str, Session]:
        """A new session for ``identity``: its token (for the cookie, never kept) and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(identity, secrets.token_urlsafe(32), self.clock() + self.settings.session_seconds)
        with self._lock:
            self._prune()
            while len(self._open) >= self.settings.max_sessions:
                del self._open[min(self._open, key=lambda k: self._open[k].expires_at)]
            self._open[_digest(token)] = session
        return token, session

    def find(self, token: str) -> Session | None:
        """The live session of ``token``; None when unknown, signed out or expired."""
        key = _digest(token)
        with self._lock:
            session = self._open.get(key)
            if session is not None and session.expires_at <= self.clock():
                del self._open[key]
                return None
            return session

    def close(self, token: str) -> None:
        with self._lock:
            self._open.pop(_digest(token), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._open.items() if s.expires_at <= now]:
            del self._open[key]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_token(req: falcon.Request) -> str | None:
    values = req.get_cookie_values(COOKIE) or [""]
    return values[0] or None


def forgery_refusal(req: falcon.Request, session: Session) -> tuple[str, str] | None:
    """Why a request the cookie authenticates may be forged, as (field, message); None when it may go on."""
    if req.method.upper() in SAFE_METHODS:
        return None
    origin = req.get_header("Origin") or req.get_header("Referer")
    field = "Origin" if req.get_header("Origin") else "Referer"
    if origin and not same_host(origin, request_host(req)):
        return field, f"a cross-site {req.method} with the session cookie is refused ({field} is another site)"
    token = req.get_header(CSRF_HEADER) or ""
    if not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        return CSRF_HEADER, f"a {req.method} with the session cookie needs the session's {CSRF_HEADER} header"
    return None


def same_host(url: str, host: str) -> bool:
    """True when ``url`` (an Origin or a Referer) names ``host`` (``name[:port]``), in any case."""
    try:
        netloc = urlsplit(url.strip()).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()


def request_host(req: falcon.Request) -> str:
    """The host the browser asked: the trusted proxy's ``X-Forwarded-Host``, else ``Host``."""
    if getattr(req.context, "from_trusted_proxy", False):
        forwarded = req.get_header("X-Forwarded-Host")
        if forwarded:
            return forwarded.split(",")[0]
    return req.get_header("Host") or ""


def over_tls(req: falcon.Request) -> bool:
    """True when the browser reached us over TLS: directly, or as the trusted proxy says (``X-Forwarded-Proto``)."""
    if req.scheme == "https":
        return True
    if getattr(req.context, "from_trusted_proxy", False):
        return (req.get_header("X-Forwarded-Proto") or "").split(",")[0].strip().lower() == "https"
    return False


def set_cookie(req: falcon.Request, resp: falcon.Response, token: str, max_age: float) -> None:
    """The session cookie: HttpOnly (no script reads it), SameSite=Strict, Path=/, Secure over TLS."""
    resp.set_cookie(
        COOKIE, token, max_age=int(max_age), path="/", http_only=True, secure=over_tls(req), same_site="Strict"
    )


def clear_cookie(req: falcon.Request, resp: falcon.Response) -> None:
    resp.unset_cookie(COOKIE, path="/", same_site="Strict")


__all__ = [
    "COOKIE", "CSRF_HEADER", "Session", "Sessions", "clear_cookie", "forgery_refusal", "over_tls", "request_host",
    "same_host", "session_token", "set_cookie",
]
