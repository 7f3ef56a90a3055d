"""Each setting's default is stated once, by its dataclass: settings.py passes on only the keys that are set."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from draas_actors import settings as settings_module
from draas_actors.actors.pool import ActorSettings
from draas_actors.actors.supervisor import SupervisionSettings
from draas_actors.api.server import ServerLimits
from draas_actors.platforms.docker import DockerSettings
from draas_actors.security import LimitSettings, SecuritySettings, SessionSettings
from draas_actors.settings import DEFAULT_DATA_DIR, Settings, load_settings
from draas_actors.system import SystemSettings


def test_an_empty_configuration_yields_exactly_the_dataclasses_defaults() -> None:
    assert load_settings(None, environ={}) == Settings(system=SystemSettings(data_dir=Path(DEFAULT_DATA_DIR)))


def test_an_empty_file_is_the_same_as_no_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("")
    assert load_settings(path, environ={}) == load_settings(None, environ={})


@pytest.mark.parametrize(
    ("toml", "changed"),
    [
        ("[server]\nport = 9000", lambda s: dataclasses.replace(s, port=9000)),
        ("[store]\ndurability = \"power-loss\"", None),
        ("[supervisor]\nmaxRestarts = 2", lambda s: dataclasses.replace(
            s, system=dataclasses.replace(s.system, supervision=SupervisionSettings(max_restarts=2)))),
        ("[docker]\nstopTimeout = 3", lambda s: dataclasses.replace(
            s, system=dataclasses.replace(s.system, docker=DockerSettings(stop_timeout=3)))),
        ("[actors]\npoolMaxThreads = 12", lambda s: dataclasses.replace(
            s, system=dataclasses.replace(s.system, actors=ActorSettings(pool_max_threads=12)))),
        ("[limits]\nmaxBodyBytes = 4096", lambda s: dataclasses.replace(
            s, security=SecuritySettings(limits=LimitSettings(max_body_bytes=4096)),
            server_limits=ServerLimits(max_body_bytes=4096))),
        ("[ui]\nsessionSeconds = 600", lambda s: dataclasses.replace(
            s, security=SecuritySettings(sessions=SessionSettings(session_seconds=600)))),
    ],
    ids=["server", "store", "supervisor", "docker", "actors", "limits", "ui"],
)
def test_a_key_that_is_set_changes_its_field_and_nothing_else(tmp_path: Path, toml: str, changed: Any) -> None:
    path = tmp_path / "one.toml"
    path.write_text(toml + "\n")
    loaded = load_settings(path, environ={})
    default = load_settings(None, environ={})
    if changed is None:  # durability: an enum, named by value in the file
        assert loaded.system.durability is not SystemSettings.durability
        system = dataclasses.replace(loaded.system, durability=SystemSettings.durability)
        assert dataclasses.replace(loaded, system=system) == default
    else:
        assert loaded == changed(default)


def _literal_defaults(function: Any) -> list[str]:
    """Calls ``x.get(key, default)`` whose default is not an empty table or list: a default stated again."""
    found = []
    for node in ast.walk(ast.parse(inspect.getsource(function))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and len(node.args) == 2
            and not isinstance(node.args[1], (ast.Dict, ast.List))
        ):
            found.append(ast.unparse(node))
    return found


def test_the_loader_restates_no_default() -> None:
    # dataDir is the one key without a dataclass default; DEFAULT_DATA_DIR is where it is stated.
    restated = [
        call
        for function in (settings_module.load_settings, settings_module._kubernetes_settings,
                         settings_module._actor_settings)
        for call in _literal_defaults(function)
        if "DEFAULT_DATA_DIR" not in call
    ]
    assert restated == []


def test_max_body_bytes_has_one_default_for_the_app_and_for_waitress() -> None:
    # [limits] maxBodyBytes feeds both LimitSettings (the app) and ServerLimits (waitress).
    assert ServerLimits.max_body_bytes == LimitSettings.max_body_bytes
    source = inspect.getsource(ServerLimits)
    assert "max_body_bytes: int = LimitSettings.max_body_bytes" in source
