"""Where draasctl sends its requests: ``DRAAS_URL`` / ``DRAAS_API_KEY``, or named contexts in a config file.

The file is ``$XDG_CONFIG_HOME/draas/config.toml`` (``~/.config/draas/config.toml`` without it), shaped like a
kubeconfig: named contexts, each a URL and an operator key, and the one in use::

    current-context = "local"

    [contexts.local]
    url = "http://127.0.0.1:8088"
    api-key = "..."

It holds keys, so it is written with mode 0600 (its folder 0700), through a temporary file renamed over it: a
crash mid-write leaves the old file, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8088"  # the control plane's own default address (its [server] host and port)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ContextError(Exception):
    """The config file or a context is unusable; ``field`` names what to fix."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Context:
    name: str
    url: str
    api_key: str | None = None


@dataclass(frozen=True)
class CtlConfig:
    current: str | None = None
    contexts: Mapping[str, Context] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What a command talks to, and where that came from (shown by ``config current-context``)."""

    url: str
    api_key: str | None
    source: str


def config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or str(Path.home()), ".config")
    return Path(base) / "draas" / "config.toml"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ContextError(
            f"context name {name!r}: a letter or digit, then letters, digits, '.', '_' or '-'", field="NAME"
        )
    return name


def load(path: Path) -> CtlConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return CtlConfig()
    except tomllib.TOMLDecodeError as error:
        raise ContextError(f"{path}: not valid TOML: {error}", field=str(path)) from None
    contexts: dict[str, Context] = {}
    for name, table in (raw.get("contexts") or {}).items():
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            raise ContextError(f"{path}: contexts.{name}.url: expected a URL", field=f"contexts.{name}.url")
        key = table.get("api-key")
        contexts[name] = Context(name, table["url"], key if isinstance(key, str) else None)
    current = raw.get("current-context")
    return CtlConfig(current if isinstance(current, str) else None, contexts)


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string: the same quotes and escapes


def dump(config: CtlConfig) -> str:
    lines = [] if config.current is None else [f"current-context = {_toml(config.current)}", ""]
    for context in config.contexts.values():
        lines += [f"[contexts.{_toml(context.name)}]", f"url = {_toml(context.url)}"]
        if context.api_key is not None:
            lines.append(f"api-key = {_toml(context.api_key)}")
        lines.append("")
    return "\n".join(lines)


def save(path: Path, config: CtlConfig) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with suppress(FileNotFoundError):
        partial.unlink()  # left by a crash mid-write: never read, safe to replace
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(dump(config))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def set_context(config: CtlConfig, name: str, url: str | None, api_key: str | None) -> CtlConfig:
    """Add ``name`` or change what is given of it; the first context made becomes the current one."""
    check_name(name)
    old = config.contexts.get(name)
    if old is None and url is None:
        raise ContextError(f"context {name!r} is new: give its --url", field="--url")
    context = Context(name, DEFAULT_URL, None) if old is None else old
    if url is not None:
        context = replace(context, url=url)
    if api_key is not None:
        context = replace(context, api_key=api_key)
    return CtlConfig(config.current or name, {**config.contexts, name: context})


def use_context(config: CtlConfig, name: str) -> CtlConfig:
    if name not in config.contexts:
        raise ContextError(f"no context {name!r} (config get-contexts lists them)", field="NAME")
    return replace(config, current=name)


def delete_context(config: CtlConfig, name: str) -> CtlConfig:
    if name not in config.contexts:
        raise ContextError(f"no context {name!r} (config get-contexts lists them)", field="NAME")
    rest = {k: v for k, v in config.contexts.items() if k != name}
    return CtlConfig(None if config.current == name else config.current, rest)


def resolve(config: CtlConfig, environ: Mapping[str, str], chosen: str | None) -> Target:
    """``--context`` first; else ``DRAAS_URL`` and ``DRAAS_API_KEY`` over the current context (each on its own, as
    kubectl's flags override its context's fields); else the control plane's default address, with no key."""
    if chosen is not None:
        if chosen not in config.contexts:
            raise ContextError(f"no context {chosen!r} (config get-contexts lists them)", field="--context")
        context = config.contexts[chosen]
        return Target(context.url, context.api_key, f"context {chosen}")
    current = config.contexts.get(config.current) if config.current else None
    url = environ.get("DRAAS_URL") or (current.url if current else DEFAULT_URL)
    key = environ.get("DRAAS_API_KEY") or (current.api_key if current else None)
    source = "DRAAS_URL" if environ.get("DRAAS_URL") else f"context {current.name}" if current else "default"
    return Target(url.rstrip("/"), key, source)
