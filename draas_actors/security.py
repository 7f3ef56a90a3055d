"""Security settings and identities: who may call the API, from where, and how much.

Pure data and pure functions; the falcon middleware that applies them lives in ``api/``.
Keys are random tokens (``secrets.token_urlsafe(32)``), stored as ``sha256:<hex>``: a slow KDF adds nothing
against brute force of a 256-bit random secret, and a fast hash keeps each request cheap.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass, field

from .model import Platform, guess_platform

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DAEMON, OPERATOR = "daemon", "operator"
PUBLIC, PUSH, READ, OPERATE, ADMIN = "public", "push", "read", "operate", "admin"
# A route's role that operators with READ and daemons both have: upstream documents GET .../{id}/status for daemons'
# health checks and synchronisation. A daemon reads within its scope (the resource checks it).
READ_OR_PUSH = "read-or-push"
# Operator roles, each including the ones before it.
OPERATOR_ROLES: tuple[str, ...] = (READ, OPERATE, ADMIN)
LOCAL_DAEMON, LOCAL_ADMIN = "local-daemon", "local-admin"
HASH_PREFIX = "sha256:"


@dataclass(frozen=True, kw_only=True)
class Identity:
    """An authenticated caller, as the middleware sees it on ``req.context.identity``."""

    name: str
    kind: str  # DAEMON | OPERATOR
    role: str  # PUSH for daemons; READ < OPERATE < ADMIN for operators
    platforms: frozenset[Platform] | None = None  # daemons: None = all
    instances: tuple[str, ...] = ()  # daemons: fnmatch patterns; empty = all
    allow: tuple[Network, ...] = ()  # empty = no restriction beyond the global allowlist
    rate: float | None = None  # updates per second; None = LimitSettings.push_rate
    burst: int | None = None  # None = LimitSettings.push_burst
    request_rate: float | None = None  # daemons: requests per second; None = REQUEST_RATE_FACTOR x its rate
    request_burst: int | None = None  # None = LimitSettings.push_request_burst

    def has_role(self, required: str) -> bool:
        """True when this identity's role is ``required`` or (operators) a role above it."""
        if required == READ_OR_PUSH:
            return self.kind == DAEMON or self.has_role(READ)
        if self.kind == DAEMON:
            return required == PUSH
        if required not in OPERATOR_ROLES or self.role not in OPERATOR_ROLES:
            return False
        return OPERATOR_ROLES.index(self.role) >= OPERATOR_ROLES.index(required)

    def may_report_on(self, instance_id: str) -> bool:
        """True when ``instance_id`` matches one of this daemon's instance patterns (case-sensitive)."""
        return not self.instances or any(fnmatch.fnmatchcase(instance_id, p) for p in self.instances)

    def allows_address(self, address: str) -> bool:
        return address_in(address, self.allow) if self.allow else True


def scope_refusal(
    identity: Identity, instance_id: str, platform: Platform | None, existing: Platform | None, source: str
) -> tuple[str, str] | None:
    """Why a daemon may not push this report, as (field, message); None when it may.

    ``platform`` is the report's own, ``existing`` the platform of the instance if it exists. Both must be in scope:
    a report cannot reach another platform's instance by naming an allowed platform. A report for a new instance
    without a platform is judged by the platform auto-create would give it (guessed from ``source``).
    """
    if not identity.may_report_on(instance_id):
        patterns = ", ".join(identity.instances)
        return "instanceId", f"identity {identity.name!r} may not report on {instance_id!r} (its instances: {patterns})"
    if identity.platforms is None:
        return None
    allowed = ", ".join(sorted(p.value for p in identity.platforms))
    if platform is not None and platform not in identity.platforms:
        return "platform", f"identity {identity.name!r} may not report on platform {platform.value} (only {allowed})"
    if existing is not None and existing not in identity.platforms:
        return "platform", (
            f"{instance_id!r} is a {existing.value} instance; identity {identity.name!r} may report on {allowed} only"
        )
    guessed = guess_platform(source) if platform is None and existing is None else None
    if guessed is not None and guessed not in identity.platforms:
        return "platform", (
            f"{instance_id!r} would be created as a {guessed.value} instance (from its source); "
            f"identity {identity.name!r} may report on {allowed} only"
        )
    return None


@dataclass(frozen=True, kw_only=True)
class Credential:
    """How an identity proves itself: key hashes (two while rotating) and, for daemons, certificate subjects."""

    identity: Identity
    key_hashes: tuple[str, ...] = ()
    cert_subjects: tuple[str, ...] = ()


def daemon_identity(
    name: str,
    *,
    platforms: frozenset[Platform] | None = None,
    instances: tuple[str, ...] = (),
    allow: tuple[Network, ...] = (),
    rate: float | None = None,
    burst: int | None = None,
    request_rate: float | None = None,
    request_burst: int | None = None,
) -> Identity:
    return Identity(
        name=name,
        kind=DAEMON,
        role=PUSH,
        platforms=platforms,
        instances=instances,
        allow=allow,
        rate=rate,
        burst=burst,
        request_rate=request_rate,
        request_burst=request_burst,
    )


def operator_identity(name: str, role: str = ADMIN, *, allow: tuple[Network, ...] = ()) -> Identity:
    if role not in OPERATOR_ROLES:
        raise ValueError(f"unknown operator role {role!r}; expected one of {', '.join(OPERATOR_ROLES)}")
    return Identity(name=name, kind=OPERATOR, role=role, allow=allow)


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """Configured credentials. Empty = quick start (``local-daemon``/``local-admin`` from key files)."""

    credentials: tuple[Credential, ...] = ()

    @property
    def daemons(self) -> tuple[Credential, ...]:
        return tuple(c for c in self.credentials if c.identity.kind == DAEMON)

    @property
    def operators(self) -> tuple[Credential, ...]:
        return tuple(c for c in self.credentials if c.identity.kind == OPERATOR)


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    trusted_proxies: tuple[Network, ...] = ()  # only these peers' X-Forwarded-For / X-Client-* are believed
    push_allowlist: tuple[Network, ...] = ()  # empty = any address may push


@dataclass(frozen=True, kw_only=True)
class LimitSettings:
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 8
    max_metadata_keys: int = 64
    max_metadata_value_length: int = 1024
    max_clock_skew: float = 300.0  # seconds a reported observedAt may be ahead of the control plane's clock
    push_rate: float = 200.0  # updates per second (a batch counts its items) ...
    # ... and how many at once: a resync of 1,000 instances (two batches of 500) leaves 1,000 for the events after it
    push_burst: int = 2000
    push_request_burst: int = 10  # requests at once, whatever their size (the request rate follows the rate)
    operator_rate: float = 200.0  # operators: one token per request, a separate and generous bucket
    operator_burst: int = 1000
    # GET /api/instances/{id}/logs: one answer holds at most this much of a process's output
    max_log_bytes: int = 1_048_576
    max_log_lines: int = 10_000


@dataclass(frozen=True, kw_only=True)
class SessionSettings:
    """``[ui]``: the dashboard's sign-in sessions (held in memory: a restart signs everyone out)."""

    session_seconds: float = 8 * 3600.0  # from sign-in, whatever the activity: then the operator signs in again
    max_sessions: int = 10_000  # beyond it, signing in ends the session that expires first (memory stays bounded)


@dataclass(frozen=True, kw_only=True)
class SecuritySettings:
    auth: AuthSettings = field(default_factory=AuthSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    metrics_require_key: bool = False  # [metrics] requireKey: GET /metrics needs a read key; public by default


def new_key() -> str:
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:<64 hex>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def is_key_hash(text: str) -> bool:
    return _KEY_HASH.fullmatch(text) is not None


_KEY_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def normalise_subject(subject: str) -> str:
    """An RFC 2253/4514 distinguished name in one spelling: no spaces around separators, attribute types upper-case.

    nginx's ``$ssl_client_s_dn`` gives ``CN=docker-host-1,O=draas``; the configuration may say
    ``cn=docker-host-1, O=draas``.
    Escaped separators (``\\,``) stay inside their value.
    """
    parts: list[str] = []
    for rdn in _split_unescaped(subject.strip(), ","):
        attributes = []
        for attribute in _split_unescaped(rdn, "+"):
            kind, _, value = attribute.partition("=")
            attributes.append(f"{kind.strip().upper()}={value.strip()}")
        parts.append("+".join(attributes))
    return ",".join(parts)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_network(text: str) -> Network:
    """A CIDR (or a bare address, meaning /32 or /128); raises ValueError with the text."""
    return ipaddress.ip_network(text.strip(), strict=False)


def address_in(address: str, networks: tuple[Network, ...]) -> bool:
    """True when ``address`` parses and lies in one of ``networks``; an unparsable address is in none."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed in network for network in networks)


def quick_start(daemon_keys: tuple[str, ...], operator_keys: tuple[str, ...]) -> tuple[Credential, ...]:
    """Plain keys (key files, environment, tests) as the ``local-daemon`` (all scope) and ``local-admin`` identities."""
    credentials: list[Credential] = []
    if daemon_keys:
        credentials.append(
            Credential(identity=daemon_identity(LOCAL_DAEMON), key_hashes=tuple(hash_key(k) for k in daemon_keys))
        )
    if operator_keys:
        credentials.append(
            Credential(identity=operator_identity(LOCAL_ADMIN), key_hashes=tuple(hash_key(k) for k in operator_keys))
        )
    return tuple(credentials)
