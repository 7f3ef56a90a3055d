"""Settings: the only module that reads configuration files or the environment.

A TOML file (default ``config/draas.toml``), then ``DRAAS_*`` environment variables, then command-line
flags, each overriding the one before. Every error names the field it is about.

Kubernetes: the kubeconfig is ``DRAAS_KUBECONFIG``, else ``[kubernetes] kubeconfig``; either one is an explicit
choice and is used even inside a cluster. Without one, the in-cluster configuration (service account) is used when
``KUBERNETES_SERVICE_HOST`` is set, else ``KUBECONFIG``, else the client's default (``~/.kube/config``). None of
this is needed to start: the client is made on the first pod delete.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .actors.pool import ActorSettings
from .actors.store import Durability, Retention
from .actors.supervisor import SupervisionSettings
from .api.server import ServerLimits
from .errors import ConfigError, DraasError
from .model import Platform
from .platforms.docker import DockerSettings
from .platforms.kubernetes import KubernetesSettings
from .records import InstanceRecord
from .security import (
    OPERATOR_ROLES,
    AuthSettings,
    Credential,
    LimitSettings,
    Network,
    NetworkSettings,
    SecuritySettings,
    SessionSettings,
    daemon_identity,
    is_key_hash,
    normalise_subject,
    operator_identity,
    parse_network,
)
from .streams import StreamSettings
from .system import SystemSettings
from .webhooks import WebhookSettings
from .wire import PATTERN_MESSAGE, parse_registration, validate

_SECONDS = {"type": "number", "minimum": 0}
_NETWORKS = {"type": "array", "items": {"type": "string", "minLength": 1}}
# "$(?![\s\S])": the end of the string, not before a final newline (see wire._ID).
_NAME = {
    "type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$(?![\s\S])",
    PATTERN_MESSAGE: "is not a name: a letter or digit, then letters, digits, '.', '_', '@', ':' or '-'",
}
# Hashes are checked in _key_hashes, whose error never echoes the value (it may be a plain key pasted by mistake).
_KEY_HASHES = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2}
_DAEMON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": _NAME,
        "keyHashes": _KEY_HASHES,
        "certSubjects": {"type": "array", "items": {"type": "string", "minLength": 3}, "minItems": 1},
        "platforms": {"type": "array", "items": {"enum": [p.value for p in Platform]}, "minItems": 1},
        "instances": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        "allow": _NETWORKS,
        "rate": {"type": "number", "exclusiveMinimum": 0},
        "burst": {"type": "integer", "minimum": 1},
        "requestRate": {"type": "number", "exclusiveMinimum": 0},
        "requestBurst": {"type": "integer", "minimum": 1},
    },
}
_OPERATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "keyHashes", "role"],
    "properties": {"name": _NAME, "keyHashes": _KEY_HASHES, "role": {"enum": list(OPERATOR_ROLES)}, "allow": _NETWORKS},
}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dataDir": {"type": "string", "minLength": 1},
        "logLevel": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR"]},
        "server": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "threads": {"type": "integer", "minimum": 1, "maximum": 256},
                "channelTimeout": {"type": "integer", "minimum": 1},
                "requestTimeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                "connectionLimit": {"type": "integer", "minimum": 1},
                "reservedConnections": {"type": "integer", "minimum": 0},
                "connectionsPerAddress": {"type": "integer", "minimum": 1},
                "maxHeaderBytes": {"type": "integer", "minimum": 1024},
            },
        },
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "maxBodyBytes": {"type": "integer", "minimum": 1024},
                "maxJsonDepth": {"type": "integer", "minimum": 3, "maximum": 64},
                "maxMetadataKeys": {"type": "integer", "minimum": 0},
                "maxMetadataValueLength": {"type": "integer", "minimum": 1},
                "maxClockSkew": {"type": "number", "minimum": 0},
                "pushRate": {"type": "number", "exclusiveMinimum": 0},
                "pushBurst": {"type": "integer", "minimum": 1},
                "pushRequestBurst": {"type": "integer", "minimum": 1},
                "operatorRate": {"type": "number", "exclusiveMinimum": 0},
                "operatorBurst": {"type": "integer", "minimum": 1},
                "maxLogBytes": {"type": "integer", "minimum": 1024},
                "maxLogLines": {"type": "integer", "minimum": 1},
            },
        },
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "daemons": {"type": "array", "items": _DAEMON_SCHEMA},
                "operators": {"type": "array", "items": _OPERATOR_SCHEMA},
            },
        },
        "network": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"trustedProxies": _NETWORKS, "pushAllowlist": _NETWORKS},
        },
        "store": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "durability": {"enum": [d.value for d in Durability]},
                "maxChanges": {"type": "integer", "minimum": 1},
                "maxAge": _SECONDS,
                "pruneInterval": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "monitor": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"sweepInterval": {"type": "number", "exclusiveMinimum": 0}},
        },
        "supervisor": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "maxRestarts": {"type": "integer", "minimum": 0},
                "window": {"type": "number", "exclusiveMinimum": 0},
                "autoCreate": {"type": "boolean"},
                "autoCreateCap": {"type": "integer", "minimum": 0},
                "askTimeout": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "actors": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "runtime": {"enum": ["pool", "threads"]},
                "poolThreads": {"type": "integer", "minimum": 1, "maximum": 256},
                "poolMaxThreads": {"type": "integer", "minimum": 1, "maximum": 1024},
            },
        },
        "shutdown": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"stopProcesses": {"type": "boolean"}, "timeout": _SECONDS},
        },
        "docker": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"stopTimeout": {"type": "number", "minimum": 0, "maximum": 3600}},
        },
        "kubernetes": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kubeconfig": {"type": "string", "minLength": 1},
                "context": {"type": "string", "minLength": 1},
                "requestTimeout": {"type": "number", "exclusiveMinimum": 0},
                "replacementGrace": _SECONDS,
            },
        },
        "metrics": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"requireKey": {"type": "boolean"}},
        },
        "webhooks": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "allowedHosts": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 253}},
                "retryHorizon": {"type": "number", "exclusiveMinimum": 0},
                "firstBackoff": {"type": "number", "exclusiveMinimum": 0},
                "maxBackoff": {"type": "number", "exclusiveMinimum": 0},
                "connectTimeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
                "source": {"type": "string", "minLength": 1},
                "maxDeadLetters": {"type": "integer", "minimum": 1},
                "maxWebhooks": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
        },
        "ui": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "sessionSeconds": {"type": "number", "minimum": 60, "maximum": 30 * 24 * 3600},
                "maxSessions": {"type": "integer", "minimum": 1},
            },
        },
        "stream": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "heartbeatSeconds": {"type": "number", "exclusiveMinimum": 0},
                "maxLag": {"type": "integer", "minimum": 1},
                "maxStreams": {"type": "integer", "minimum": 0},
                "stallSeconds": {"type": "number", "exclusiveMinimum": 0},
                "pollSeconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
            },
        },
        "instances": {"type": "array", "items": {"type": "object"}},
    },
}

# Environment variable -> (section, key, type). Sections are the TOML tables above ("" for top level).
ENVIRONMENT: dict[str, tuple[str, str, type]] = {
    "DRAAS_DATA_DIR": ("", "dataDir", str),
    "DRAAS_LOG_LEVEL": ("", "logLevel", str),
    "DRAAS_HOST": ("server", "host", str),
    "DRAAS_PORT": ("server", "port", int),
    "DRAAS_STORE_PATH": ("store", "path", str),
    "DRAAS_STORE_DURABILITY": ("store", "durability", str),
    "DRAAS_STORE_MAX_CHANGES": ("store", "maxChanges", int),
    "DRAAS_STORE_MAX_AGE": ("store", "maxAge", float),
    "DRAAS_SWEEP_INTERVAL": ("monitor", "sweepInterval", float),
    "DRAAS_AUTO_CREATE": ("supervisor", "autoCreate", bool),
    "DRAAS_AUTO_CREATE_CAP": ("supervisor", "autoCreateCap", int),
    "DRAAS_STOP_PROCESSES_ON_EXIT": ("shutdown", "stopProcesses", bool),
    "DRAAS_DOCKER_STOP_TIMEOUT": ("docker", "stopTimeout", float),
    "DRAAS_KUBECONFIG": ("kubernetes", "kubeconfig", str),
    "DRAAS_KUBE_CONTEXT": ("kubernetes", "context", str),
}
# Plain keys from the environment: the quick-start identities local-daemon and local-admin.
KEY_VARIABLES = {"DRAAS_DAEMON_API_KEY": "daemon_keys", "DRAAS_OPERATOR_API_KEY": "operator_keys"}
MIN_KEY_LENGTH = 16
# Where keys, the store and other state go without dataDir; SystemSettings has no default, this is the only one.
DEFAULT_DATA_DIR = "./var"


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8088
    threads: int = 8
    log_level: str = "INFO"
    daemon_keys: tuple[str, ...] = ()
    operator_keys: tuple[str, ...] = ()
    stop_processes_on_exit: bool = False
    shutdown_timeout: float = 10.0
    instances: tuple[InstanceRecord, ...] = ()
    security: SecuritySettings = dataclasses.field(default_factory=SecuritySettings)
    server_limits: ServerLimits = ServerLimits()
    system: SystemSettings


def load_settings(
    path: Path | None,
    *,
    environ: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read ``path`` (may be None), apply the environment and ``overrides`` (``host``/``port``/``dataDir``)."""
    raw: dict[str, Any] = {}
    where = str(path) if path is not None else "settings"
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file", field="--config") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    _refuse_plain_keys(raw.get("auth"), where)
    _apply_environment(raw, environ)
    plain = _environment_keys(environ)
    for key, value in (overrides or {}).items():
        if value is not None:
            section, name = ("", "dataDir") if key == "dataDir" else ("server", key)
            _section(raw, section)[name] = value
    try:
        validate(CONFIG_SCHEMA, raw)
        instances = tuple(
            parse_registration(item, prefix=f"instances[{i}]") for i, item in enumerate(raw.get("instances", []))
        )
    except DraasError as error:
        raise ConfigError(f"{where}: {error.message}", field=error.field) from None
    _check_unique(instances, where)
    actors = _actor_settings(raw.get("actors", {}), where)
    kubernetes = _kubernetes_settings(raw.get("kubernetes", {}), environ, where)
    security = _security_settings(raw, where)
    server, store, supervisor = raw.get("server", {}), raw.get("store", {}), raw.get("supervisor", {})
    if "durability" in store:
        store = {**store, "durability": Durability(store["durability"])}
    return Settings(
        **_given(raw, {"logLevel": "log_level"}),
        **_given(server, {"host": "host", "port": "port", "threads": "threads"}),
        **_given(raw.get("shutdown", {}), {"stopProcesses": "stop_processes_on_exit", "timeout": "shutdown_timeout"}),
        **plain,
        instances=instances,
        security=security,
        server_limits=ServerLimits(
            **_given(server, _SERVER_LIMIT_FIELDS),
            **_given(raw.get("limits", {}), {"maxBodyBytes": "max_body_bytes"}),
            uncapped=security.network.trusted_proxies,
        ),
        system=SystemSettings(
            data_dir=Path(raw.get("dataDir", DEFAULT_DATA_DIR)),
            **_given(store, {"path": "store_path", "durability": "durability"}),
            retention=Retention(**_given(store, {"maxChanges": "max_changes", "maxAge": "max_age",
                                                 "pruneInterval": "prune_interval"})),
            supervision=SupervisionSettings(**_given(supervisor, _SUPERVISION_FIELDS)),
            **_given(raw.get("monitor", {}), {"sweepInterval": "sweep_interval"}),
            # One [supervisor] askTimeout bounds both the supervisor's asks and the facade's.
            **_given(supervisor, {"askTimeout": "ask_timeout"}),
            kubernetes=kubernetes,
            actors=actors,
            docker=DockerSettings(**_given(raw.get("docker", {}), {"stopTimeout": "stop_timeout"})),
            webhooks=_webhook_settings(raw.get("webhooks", {})),
            stream=StreamSettings(**_given(raw.get("stream", {}), _STREAM_FIELDS)),
        ),
    )


_WEBHOOK_FIELDS = {
    "retryHorizon": "retry_horizon",
    "firstBackoff": "first_backoff",
    "maxBackoff": "max_backoff",
    "connectTimeout": "connect_timeout",
    "timeout": "timeout",
    "source": "source",
    "maxDeadLetters": "max_dead_letters",
    "maxWebhooks": "max_webhooks",
}


def _webhook_settings(section: Mapping[str, Any]) -> WebhookSettings:
    given = _given(section, _WEBHOOK_FIELDS)
    if "allowedHosts" in section:
        given["allowed_hosts"] = tuple(section["allowedHosts"])  # TOML's list, as the frozen dataclass's tuple
    return WebhookSettings(**given)


def _given(section: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """The keys of ``section`` that are set, as the dataclass's field names (``fields``: TOML key -> field).

    A key that is not set is not passed on, so its default is the dataclass's own, stated there and only there.
    """
    return {field: section[key] for key, field in fields.items() if key in section}


_SERVER_LIMIT_FIELDS = {
    "channelTimeout": "channel_timeout",
    "requestTimeout": "request_timeout",
    "connectionLimit": "connection_limit",
    "reservedConnections": "reserved_connections",
    "connectionsPerAddress": "connections_per_address",
    "maxHeaderBytes": "max_header_bytes",
}
_STREAM_FIELDS = {
    "heartbeatSeconds": "heartbeat_seconds",
    "maxLag": "max_lag",
    "maxStreams": "max_streams",
    "stallSeconds": "stall_seconds",
    "pollSeconds": "poll_seconds",
}
_SUPERVISION_FIELDS = {
    "maxRestarts": "max_restarts",
    "window": "window",
    "autoCreate": "auto_create",
    "autoCreateCap": "auto_create_cap",
    "askTimeout": "ask_timeout",
}


def ensure_keys(settings: Settings) -> tuple[Settings, list[Path]]:
    """Quick start: a key for each kind (daemon, operator) with no configured identity and no key from the
    environment is generated into ``<dataDir>/<kind>.key`` (mode 0600), and reused later.

    Returns the settings with keys and the files written, so the caller can say where they are
    without ever printing a key.
    """
    written: list[Path] = []
    keys: dict[str, tuple[str, ...]] = {}
    auth = settings.security.auth
    for role, configured, identities in (
        ("daemon", settings.daemon_keys, auth.daemons),
        ("operator", settings.operator_keys, auth.operators),
    ):
        if configured or identities:
            keys[role] = configured
            continue
        path = settings.system.data_dir / f"{role}.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
            written.append(path)
        keys[role] = (path.read_text().strip(),)
    return (
        dataclasses.replace(settings, daemon_keys=keys["daemon"], operator_keys=keys["operator"]),
        written,
    )


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for variable, (section, key, kind) in ENVIRONMENT.items():
        if variable in environ:
            _section(raw, section)[key] = _convert(variable, environ[variable], kind)


def _section(raw: dict[str, Any], section: str) -> dict[str, Any]:
    if not section:
        return raw
    value = raw.setdefault(section, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{section}: expected a table", field=section)
    return value


def _convert(variable: str, text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{variable}: expected true or false, got {text!r}", field=variable)
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{variable}: expected {kind.__name__}, got {text!r}", field=variable) from None


def _actor_settings(section: Mapping[str, Any], where: str) -> ActorSettings:
    actors = ActorSettings(**_given(section, {"runtime": "runtime", "poolThreads": "pool_threads",
                                              "poolMaxThreads": "pool_max_threads"}))
    if "poolMaxThreads" not in section and actors.pool_max_threads < actors.pool_threads:
        # The ceiling follows a larger poolThreads, so that raising one setting alone is never an error.
        return dataclasses.replace(actors, pool_max_threads=actors.pool_threads)
    if actors.pool_max_threads < actors.pool_threads:
        raise ConfigError(
            f"{where}: actors.poolMaxThreads ({actors.pool_max_threads}) is below actors.poolThreads "
            f"({actors.pool_threads})",
            field="actors.poolMaxThreads",
        )
    return actors


def _kubernetes_settings(section: Mapping[str, Any], environ: Mapping[str, str], where: str) -> KubernetesSettings:
    explicit = section.get("kubeconfig")
    context = section.get("context")
    if explicit is not None:
        explicit = os.pathsep.join(str(Path(p).expanduser()) for p in explicit.split(os.pathsep))
        _check_kubeconfig(explicit, context, where)
    return KubernetesSettings(
        kubeconfig=explicit or environ.get("KUBECONFIG") or None,
        context=context,
        in_cluster=explicit is None and bool(environ.get("KUBERNETES_SERVICE_HOST")),
        **_given(section, {"requestTimeout": "request_timeout", "replacementGrace": "replacement_grace"}),
    )


def _check_kubeconfig(paths: str, context: str | None, where: str) -> None:
    """An explicit kubeconfig must be there and readable, and hold the context asked for."""
    field = "kubernetes.kubeconfig"
    names: set[str] = set()
    for path in paths.split(os.pathsep):
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{where}: {field}: no such file {path!r}", field=field) from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"{where}: {field}: cannot read {path!r}: {error}", field=field) from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("contexts") or [], list):
            raise ConfigError(f"{where}: {field}: {path!r} is not a kubeconfig", field=field)
        names.update(str(c.get("name")) for c in loaded.get("contexts") or [] if isinstance(c, dict))
    if context is not None and context not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(
            f"{where}: kubernetes.context: {context!r} is not in {paths} (it has: {known})", field="kubernetes.context"
        )


def _check_unique(instances: tuple[InstanceRecord, ...], where: str) -> None:
    seen: set[str] = set()
    for index, record in enumerate(instances):
        if record.instance_id in seen:
            field = f"instances[{index}].instanceId"
            raise ConfigError(f"{where}: {field}: duplicate instance id {record.instance_id!r}", field=field)
        seen.add(record.instance_id)


# -- [auth] and [network] ---------------------------------------------------------------------------


def _refuse_plain_keys(auth: Any, where: str) -> None:
    if not isinstance(auth, dict):
        return
    for old, table in (("daemonApiKeys", "auth.daemons"), ("operatorApiKeys", "auth.operators")):
        if old in auth:
            raise ConfigError(
                f"{where}: auth.{old}: plain keys in the configuration are no longer accepted; declare "
                f"[[{table}]] identities with keyHashes (python run.py hash-key prints a new key and its hash), "
                f"or set DRAAS_{'DAEMON' if old.startswith('daemon') else 'OPERATOR'}_API_KEY",
                field=f"auth.{old}",
            )


def _environment_keys(environ: Mapping[str, str]) -> dict[str, Any]:
    """``daemon_keys``/``operator_keys`` for Settings, only those given."""
    keys: dict[str, Any] = {}
    for variable, field in KEY_VARIABLES.items():
        value = environ.get(variable, "").strip()
        if not value:
            continue
        if len(value) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"{variable}: a key must be at least {MIN_KEY_LENGTH} characters (python run.py hash-key makes one)",
                field=variable,
            )
        keys[field] = (value,)
    return keys


def _security_settings(raw: Mapping[str, Any], where: str) -> SecuritySettings:
    auth, network = raw.get("auth", {}), raw.get("network", {})
    credentials = [
        *(_daemon(item, f"auth.daemons[{i}]", where) for i, item in enumerate(auth.get("daemons", []))),
        *(_operator(item, f"auth.operators[{i}]", where) for i, item in enumerate(auth.get("operators", []))),
    ]
    _check_distinct(credentials, auth, where)
    return SecuritySettings(
        auth=AuthSettings(credentials=tuple(credentials)),
        network=NetworkSettings(
            trusted_proxies=_networks(network.get("trustedProxies", []), "network.trustedProxies", where),
            push_allowlist=_networks(network.get("pushAllowlist", []), "network.pushAllowlist", where),
        ),
        limits=_limit_settings(raw.get("limits", {})),
        sessions=SessionSettings(
            **_given(raw.get("ui", {}), {"sessionSeconds": "session_seconds", "maxSessions": "max_sessions"})
        ),
        **_given(raw.get("metrics", {}), {"requireKey": "metrics_require_key"}),
    )


def _daemon(item: Mapping[str, Any], field: str, where: str) -> Credential:
    if not item.get("keyHashes") and not item.get("certSubjects"):
        raise ConfigError(
            f"{where}: {field}: give keyHashes, certSubjects or both, or this daemon cannot authenticate",
            field=f"{field}.keyHashes",
        )
    platforms, patterns = item.get("platforms"), item.get("instances", [])
    identity = daemon_identity(
        item["name"],
        platforms=frozenset(Platform(p) for p in platforms) if platforms is not None else None,
        instances=() if "*" in patterns else tuple(patterns),
        allow=_networks(item.get("allow", []), f"{field}.allow", where),
        rate=item.get("rate"),
        burst=item.get("burst"),
        request_rate=item.get("requestRate"),
        request_burst=item.get("requestBurst"),
    )
    return Credential(
        identity=identity,
        key_hashes=_key_hashes(item.get("keyHashes", []), f"{field}.keyHashes", where),
        cert_subjects=tuple(normalise_subject(s) for s in item.get("certSubjects", [])),
    )


def _operator(item: Mapping[str, Any], field: str, where: str) -> Credential:
    allow = _networks(item.get("allow", []), f"{field}.allow", where)
    identity = operator_identity(item["name"], item["role"], allow=allow)
    return Credential(identity=identity, key_hashes=_key_hashes(item["keyHashes"], f"{field}.keyHashes", where))


def _key_hashes(values: list[str], field: str, where: str) -> tuple[str, ...]:
    for index, value in enumerate(values):
        if not is_key_hash(value):
            raise ConfigError(
                f"{where}: {field}[{index}]: expected 'sha256:' and 64 lower-case hex digits, the form "
                "`python run.py hash-key` prints (the value is not shown, in case it is a key)",
                field=f"{field}[{index}]",
            )
    return tuple(values)


def _networks(values: list[str], field: str, where: str) -> tuple[Network, ...]:
    networks: list[Network] = []
    for index, value in enumerate(values):
        try:
            networks.append(parse_network(value))
        except ValueError:
            raise ConfigError(
                f"{where}: {field}[{index}]: {value!r} is not an address or a CIDR network", field=f"{field}[{index}]"
            ) from None
    return tuple(networks)


def _check_distinct(credentials: list[Credential], auth: Mapping[str, Any], where: str) -> None:
    """Names, key hashes and certificate subjects each belong to one identity, or nobody could tell who called."""
    fields = [
        *(f"auth.daemons[{i}]" for i in range(len(auth.get("daemons", [])))),
        *(f"auth.operators[{i}]" for i in range(len(auth.get("operators", [])))),
    ]
    names: set[str] = set()
    hashes: set[str] = set()
    subjects: set[str] = set()
    for credential, field in zip(credentials, fields, strict=True):
        name = credential.identity.name
        if name in names:
            raise ConfigError(f"{where}: {field}.name: duplicate identity name {name!r}", field=f"{field}.name")
        names.add(name)
        for index, key_hash in enumerate(credential.key_hashes):
            if key_hash in hashes:
                raise ConfigError(
                    f"{where}: {field}.keyHashes[{index}]: this key hash already belongs to another identity",
                    field=f"{field}.keyHashes[{index}]",
                )
            hashes.add(key_hash)
        for index, subject in enumerate(credential.cert_subjects):
            if subject in subjects:
                raise ConfigError(
                    f"{where}: {field}.certSubjects[{index}]: {subject!r} already belongs to another daemon",
                    field=f"{field}.certSubjects[{index}]",
                )
            subjects.add(subject)


# -- [limits] ---------------------------------------------------------------------------------------

_LIMIT_FIELDS = {
    "maxBodyBytes": "max_body_bytes",
    "maxJsonDepth": "max_json_depth",
    "maxMetadataKeys": "max_metadata_keys",
    "maxMetadataValueLength": "max_metadata_value_length",
    "maxClockSkew": "max_clock_skew",
    "pushRate": "push_rate",
    "pushBurst": "push_burst",
    "pushRequestBurst": "push_request_burst",
    "operatorRate": "operator_rate",
    "operatorBurst": "operator_burst",
    "maxLogBytes": "max_log_bytes",
    "maxLogLines": "max_log_lines",
}


def _limit_settings(section: Mapping[str, Any]) -> LimitSettings:
    return LimitSettings(**_given(section, _LIMIT_FIELDS))
