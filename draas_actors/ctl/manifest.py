"""``draasctl apply -f``: registrations read from TOML, YAML or JSON, and what applying each one does.

A file holds one registration (the body of ``POST /api/instances``), a list of them, or an ``instances`` list (the
shape of the control plane's own ``[[instances]]``). Applying registers an instance that does not exist. For one
that does, only its restart policy can change (the API replaces a policy, ``PUT .../restart-policy``; it cannot
change a platform or a process spec): a different platform or process is refused naming the field, so a manifest
never silently disagrees with what runs. Delete and apply again to change those.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import yaml


class ManifestError(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Action(str, Enum):
    CREATE = "created"
    UPDATE_POLICY = "configured"
    NOTHING = "unchanged"


def read(path: Path, text: str) -> list[dict[str, Any]]:
    """The registrations in ``text`` (the file ``path``, whose suffix says the format)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ManifestError(f"{path}: expected a .toml, .yaml, .yml or .json file", field="-f")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise ManifestError(f"{path}: not valid {suffix[1:].upper()}: {error}", field="-f") from None
    if isinstance(data, dict) and "instances" in data and "instanceId" not in data:
        data = data["instances"]
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("instanceId"), str):
            raise ManifestError(f"{path}: item {index}: expected a registration with an instanceId",
                                field=f"[{index}].instanceId")
    return items


def _process_differs(wanted: Mapping[str, Any], current: Mapping[str, Any] | None) -> str | None:
    """The first process field the manifest gives that differs from the registered instance's."""
    current = current or {}
    checks = {
        "command": current.get("command"),
        "cwd": current.get("cwd"),
        "pid": current.get("adoptedPid"),
        "stopTimeout": current.get("stopTimeout"),
        "env": None,  # values are never shown; their keys are compared below
    }
    for key, have in checks.items():
        if key not in wanted:
            continue
        if key == "env":
            if sorted(wanted["env"]) != current.get("envKeys"):
                return "process.env"
        elif wanted[key] != have:
            return f"process.{key}"
    return None


def plan(wanted: Mapping[str, Any], current: Mapping[str, Any] | None) -> Action:
    """What applying ``wanted`` does, given the registered instance (None: there is none)."""
    if current is None:
        return Action.CREATE
    if wanted.get("platform") != current["platform"]:
        raise ManifestError(
            f"platform: {wanted['instanceId']!r} is registered as {current['platform']}: cannot change; "
            "delete it and apply again", field="platform",
        )
    differs = _process_differs(wanted.get("process") or {}, current.get("process"))
    if differs is not None:
        raise ManifestError(
            f"{differs}: differs from the registered {wanted['instanceId']!r}'s and cannot be changed in place; "
            "delete it and apply again", field=differs,
        )
    policy = wanted.get("restartPolicy")
    if policy is None:
        return Action.NOTHING
    have = current["restartPolicy"]
    same = all(
        sorted(value) == have.get(key) if key == "successExitCodes" else value == have.get(key)
        for key, value in policy.items()
    )
    return Action.NOTHING if same else Action.UPDATE_POLICY
