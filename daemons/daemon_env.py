"""The settings every daemon shares, and the readers of environment variables its ``load_settings`` is made of.

Each reader takes the environment and a variable's name, and raises ``ConfigError`` naming the variable (the
message starts with it) when the value is wrong. A variable that is unset or blank takes its default.
"""

from __future__ import annotations

import dataclasses
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from draas_actors.errors import ConfigError

from .push_client import PushSettings

__all__ = [
    "COMMON_VARIABLES",
    "LOG_LEVELS",
    "CommonSettings",
    "Variable",
    "api_key",
    "control_plane_url",
    "log_level",
    "number",
    "port",
    "positive",
    "read_common",
    "required",
    "tls_files",
]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

S = TypeVar("S", bound="CommonSettings")


@dataclass(frozen=True, kw_only=True)
class CommonSettings:
    """What every daemon needs: where to push and as whom, its durable spool, its reconnect backoff and its
    shutdown bound."""

    control_plane_url: str
    api_key: str  # "" when the client certificate alone identifies the daemon
    spool_path: Path
    spool_max_items: int = 100_000
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    shutdown_flush: float = 5.0  # at most this long on SIGTERM to deliver what is spooled
    resync_interval: float = 600.0  # DRAAS_RESYNC_INTERVAL: push everything again this often (daemons.outbox)
    # DRAAS_STORE_CHECK_INTERVAL: while no push has been answered for this long, ask /healthz which store answers
    # (daemons.outbox), so that a quiet daemon refills a new control plane within about this long.
    store_check_interval: float = 5.0
    log_level: str = "INFO"
    client_cert: Path | None = None  # DRAAS_CLIENT_CERT, for a TLS proxy that asks for one (mTLS)
    client_key: Path | None = None  # DRAAS_CLIENT_KEY
    ca_bundle: Path | None = None  # DRAAS_CA_BUNDLE: the CA(s) of the proxy's server certificate
    metrics_port: int | None = None  # DRAAS_METRICS_PORT: serve the daemon's metrics there (daemons.metrics); off
    metrics_host: str = "127.0.0.1"  # DRAAS_METRICS_HOST: the address that port is bound on

    def push_settings(self) -> PushSettings:
        return PushSettings(
            url=self.control_plane_url,
            api_key=self.api_key,
            spool_path=self.spool_path,
            spool_max_items=self.spool_max_items,
            client_cert=self.client_cert,
            client_key=self.client_key,
            ca_bundle=self.ca_bundle,
        )


@dataclass(frozen=True)
class Variable:
    """An environment variable as ``--help`` lists it; its default is read from the settings ``field``."""

    name: str
    help: str
    field: str | None = None  # the settings field it sets, whose default --help shows; None: no default to show


COMMON_VARIABLES = (
    Variable("CONTROL_PLANE_URL", "required: the control plane's base URL, http(s)://host[:port]"),
    Variable("DRAAS_API_KEY", "required unless DRAAS_CLIENT_CERT is set: the control plane's daemon key"),
    Variable("DRAAS_CLIENT_CERT", "PEM client certificate for a TLS proxy (https:// only; with DRAAS_CLIENT_KEY)"),
    Variable("DRAAS_CLIENT_KEY", "its PEM private key, not encrypted"),
    Variable("DRAAS_CA_BUNDLE", "PEM CA certificate(s) to check the proxy's certificate with (else the system's)"),
    Variable("DRAAS_SPOOL_PATH", "the durable spool of pending updates; <path>.reported beside it", "spool_path"),
    Variable("DRAAS_SPOOL_MAX_ITEMS", "pending updates kept at most; past it the oldest are dropped",
             "spool_max_items"),
    Variable("DRAAS_SHUTDOWN_FLUSH_SECONDS", "on SIGTERM/SIGINT, how long to keep delivering the spool",
             "shutdown_flush"),
    Variable("DRAAS_RECONNECT_MAX_SECONDS", "the cap of the backoff between reconnects", "reconnect_max"),
    Variable("DRAAS_RESYNC_INTERVAL", "seconds (above 0) between two pushes of every instance's last update",
             "resync_interval"),
    Variable("DRAAS_STORE_CHECK_INTERVAL", "seconds (above 0) without an answered push after which the daemon "
             "asks /healthz whether another store answers", "store_check_interval"),
    Variable("DRAAS_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", "log_level"),
    Variable("DRAAS_METRICS_PORT", "serve Prometheus metrics on this port at /metrics (1-65535); unset: no port "
             "is opened"),
    Variable("DRAAS_METRICS_HOST", "the address DRAAS_METRICS_PORT listens on (0.0.0.0 for every interface)",
             "metrics_host"),
)


def read_common(environ: Mapping[str, str], settings: S) -> S:
    """``settings`` with the shared variables read from ``environ``; its own values are the defaults.

    ``control_plane_url`` and ``api_key`` are not read here: the daemon's settings cannot be made without them,
    so its ``load_settings`` reads them first with ``control_plane_url`` and ``api_key``.
    """
    client_cert, client_key, ca_bundle = tls_files(environ, settings.control_plane_url)
    return dataclasses.replace(
        settings,
        client_cert=client_cert,
        client_key=client_key,
        ca_bundle=ca_bundle,
        spool_path=Path(environ.get("DRAAS_SPOOL_PATH", "").strip() or settings.spool_path),
        spool_max_items=int(number(environ, "DRAAS_SPOOL_MAX_ITEMS", settings.spool_max_items, 1, integer=True)),
        reconnect_max=number(environ, "DRAAS_RECONNECT_MAX_SECONDS", settings.reconnect_max, 0.01),
        shutdown_flush=number(environ, "DRAAS_SHUTDOWN_FLUSH_SECONDS", settings.shutdown_flush, 0.0),
        resync_interval=positive(environ, "DRAAS_RESYNC_INTERVAL", settings.resync_interval),
        store_check_interval=positive(environ, "DRAAS_STORE_CHECK_INTERVAL", settings.store_check_interval),
        log_level=log_level(environ, "DRAAS_LOG_LEVEL", settings.log_level),
        metrics_port=port(environ, "DRAAS_METRICS_PORT", settings.metrics_port),
        metrics_host=environ.get("DRAAS_METRICS_HOST", "").strip() or settings.metrics_host,
    )


def required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required", field=name)
    return value


def api_key(environ: Mapping[str, str], name: str = "DRAAS_API_KEY") -> str:
    """The daemon key: required, unless a client certificate (``DRAAS_CLIENT_CERT``) identifies the daemon."""
    value = environ.get(name, "").strip()
    if not value and not environ.get("DRAAS_CLIENT_CERT", "").strip():
        raise ConfigError(
            f"{name} is required (or a client certificate: DRAAS_CLIENT_CERT and DRAAS_CLIENT_KEY)", field=name
        )
    return value


def tls_files(environ: Mapping[str, str], url: str) -> tuple[Path | None, Path | None, Path | None]:
    """``DRAAS_CLIENT_CERT``, ``DRAAS_CLIENT_KEY`` and ``DRAAS_CA_BUNDLE``, each None when unset.

    Checked at start rather than at the first push, where a bad file would only show as a retried TLS error:
    the files exist, the certificate and key come together, load and match (an encrypted key is refused:
    nothing could type its passphrase), the CA bundle holds certificates, and the URL is https.
    """
    cert, key, bundle = (_file(environ, name) for name in ("DRAAS_CLIENT_CERT", "DRAAS_CLIENT_KEY", "DRAAS_CA_BUNDLE"))
    if cert is not None and key is None:
        raise ConfigError("DRAAS_CLIENT_KEY is required with DRAAS_CLIENT_CERT", field="DRAAS_CLIENT_KEY")
    if key is not None and cert is None:
        raise ConfigError("DRAAS_CLIENT_CERT is required with DRAAS_CLIENT_KEY", field="DRAAS_CLIENT_CERT")
    for name, path in (("DRAAS_CLIENT_CERT", cert), ("DRAAS_CA_BUNDLE", bundle)):
        if path is not None and not url.startswith("https://"):
            raise ConfigError(f"{name}: needs an https:// CONTROL_PLANE_URL, got {url!r}", field=name)
    if cert is not None and key is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key, password=b"")
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(
                f"DRAAS_CLIENT_CERT: cannot use {str(cert)!r} with the key DRAAS_CLIENT_KEY={str(key)!r} (PEM, "
                f"matching, key not encrypted): {error}",
                field="DRAAS_CLIENT_CERT",
            ) from None
    if bundle is not None:
        try:
            ssl.create_default_context(cafile=str(bundle))
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(
                f"DRAAS_CA_BUNDLE: {str(bundle)!r} holds no usable PEM CA certificate: {error}", field="DRAAS_CA_BUNDLE"
            ) from None
    return cert, key, bundle


def _file(environ: Mapping[str, str], name: str) -> Path | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name}: no such file {text!r}", field=name)
    return path


def control_plane_url(environ: Mapping[str, str], name: str = "CONTROL_PLANE_URL") -> str:
    """A required ``http(s)://host[:port]`` base URL."""
    url = required(environ, name)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: expected http(s)://host[:port], got {url!r}", field=name)
    return url


def number(environ: Mapping[str, str], name: str, default: float, low: float, *, integer: bool = False) -> float:
    """A finite number (an integer with ``integer``) of at least ``low``."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        expected = "an integer" if integer else "a number"
        raise ConfigError(f"{name}: expected {expected}, got {text!r}", field=name) from None
    if not math.isfinite(value) or value < low:
        raise ConfigError(f"{name}: must be at least {low:g}, got {text!r}", field=name)
    return value


def port(environ: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A TCP port, 1 to 65535; unset or blank: ``default`` (None: nothing listens)."""
    if not environ.get(name, "").strip():
        return default
    value = int(number(environ, name, 1, 1, integer=True))
    if value > 65535:
        raise ConfigError(f"{name}: must be at most 65535, got {environ.get(name, '').strip()!r}", field=name)
    return value


def positive(environ: Mapping[str, str], name: str, default: float) -> float:
    """A finite number of seconds above zero."""
    value = number(environ, name, default, 0.0)
    if value <= 0:
        raise ConfigError(f"{name}: must be more than 0, got {environ.get(name, '').strip()!r}", field=name)
    return value


def log_level(environ: Mapping[str, str], name: str, default: str) -> str:
    text = environ.get(name, "").strip() or default
    level = text.upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{name}: expected {', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}, got {text!r}",
                          field=name)
    return level
