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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from .actors.store import Retention
from .actors.supervisor import SupervisionSettings
from .errors import ConfigError, DraasError
from .platforms.kubernetes import KubernetesSettings
from .records import InstanceRecord
from .system import SystemSettings
from .wire import parse_registration, validate

_SECONDS = {"type": "number", "minimum": 0}
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
            },
        },
        "auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "daemonApiKeys": {"type": "array", "items": {"type": "string", "minLength": 16}},
                "operatorApiKeys": {"type": "array", "items": {"type": "string", "minLength": 16}},
            },
        },
        "store": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "path": {"type": "string", "minLength": 1},
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
        "shutdown": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"stopProcesses": {"type": "boolean"}, "timeout": _SECONDS},
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
    "DRAAS_STORE_MAX_CHANGES": ("store", "maxChanges", int),
    "DRAAS_STORE_MAX_AGE": ("store", "maxAge", float),
    "DRAAS_SWEEP_INTERVAL": ("monitor", "sweepInterval", float),
    "DRAAS_AUTO_CREATE": ("supervisor", "autoCreate", bool),
    "DRAAS_AUTO_CREATE_CAP": ("supervisor", "autoCreateCap", int),
    "DRAAS_STOP_PROCESSES_ON_EXIT": ("shutdown", "stopProcesses", bool),
    "DRAAS_KUBECONFIG": ("kubernetes", "kubeconfig", str),
    "DRAAS_KUBE_CONTEXT": ("kubernetes", "context", str),
}
KEY_VARIABLES = {"DRAAS_DAEMON_API_KEY": "daemonApiKeys", "DRAAS_OPERATOR_API_KEY": "operatorApiKeys"}


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
    _apply_environment(raw, environ)
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
    kubernetes = _kubernetes_settings(raw.get("kubernetes", {}), environ, where)
    server, store, sup = raw.get("server", {}), raw.get("store", {}), raw.get("supervisor", {})
    shutdown, auth = raw.get("shutdown", {}), raw.get("auth", {})
    data_dir = Path(raw.get("dataDir", "./var"))
    return Settings(
        host=server.get("host", "127.0.0.1"),
        port=server.get("port", 8088),
        threads=server.get("threads", 8),
        log_level=raw.get("logLevel", "INFO"),
        daemon_keys=tuple(auth.get("daemonApiKeys", ())),
        operator_keys=tuple(auth.get("operatorApiKeys", ())),
        stop_processes_on_exit=shutdown.get("stopProcesses", False),
        shutdown_timeout=shutdown.get("timeout", 10.0),
        instances=instances,
        system=SystemSettings(
            data_dir=data_dir,
            store_path=store.get("path"),
            retention=Retention(
                max_changes=store.get("maxChanges", Retention.max_changes),
                max_age=store.get("maxAge", Retention.max_age),
                prune_interval=store.get("pruneInterval", Retention.prune_interval),
            ),
            supervision=SupervisionSettings(
                max_restarts=sup.get("maxRestarts", SupervisionSettings.max_restarts),
                window=sup.get("window", SupervisionSettings.window),
                auto_create=sup.get("autoCreate", SupervisionSettings.auto_create),
                auto_create_cap=sup.get("autoCreateCap", SupervisionSettings.auto_create_cap),
                ask_timeout=sup.get("askTimeout", SupervisionSettings.ask_timeout),
            ),
            sweep_interval=raw.get("monitor", {}).get("sweepInterval", 5.0),
            ask_timeout=sup.get("askTimeout", SupervisionSettings.ask_timeout),
            kubernetes=kubernetes,
        ),
    )


def ensure_keys(settings: Settings) -> tuple[Settings, list[Path]]:
    """Generate a key per role that has none, into ``<dataDir>/<role>.key`` (mode 0600), and reuse it later.

    Returns the settings with keys and the files written, so the caller can say where they are
    without ever printing a key.
    """
    written: list[Path] = []
    keys: dict[str, tuple[str, ...]] = {}
    for role, configured in (("daemon", settings.daemon_keys), ("operator", settings.operator_keys)):
        if configured:
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
    for variable, key in KEY_VARIABLES.items():
        if environ.get(variable):
            _section(raw, "auth")[key] = [environ[variable]]


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
        request_timeout=section.get("requestTimeout", KubernetesSettings.request_timeout),
        replacement_grace=section.get("replacementGrace", KubernetesSettings.replacement_grace),
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
