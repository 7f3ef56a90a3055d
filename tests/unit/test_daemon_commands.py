"""Both daemons' commands: ``--help`` lists every environment variable they read and exits 0 without reading or
connecting to anything; any other argument is a usage error."""

from __future__ import annotations

import configparser
import importlib
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("daemons.docker_daemon", "daemons.k8s_daemon")
# Every variable name the daemon's sources quote (environ.get("X"), number(environ, "X", ...), defaults, ...).
_READ = re.compile(r"""["']((?:DRAAS_|CONTROL_PLANE_|WATCH_|KUBE)[A-Z0-9_]*)["']""")


def variables_read(module: str) -> set[str]:
    sources = [ROOT / "daemons" / "daemon_env.py", ROOT / Path(*module.split(".")).with_suffix(".py")]
    return {name for source in sources for name in _READ.findall(source.read_text())}


def console_script(module: str) -> Callable[[], int]:
    """The function setup.cfg's console script for ``module`` calls."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        _, _, target = (part.strip() for part in line.partition("="))
        target_module, _, function = target.partition(":")
        if target_module == module:
            main: Callable[[], int] = getattr(importlib.import_module(module), function)
            return main
    raise AssertionError(f"no console script runs {module}")


@pytest.mark.parametrize("module", MODULES)
def test_the_console_script_answers_help_with_every_variable_it_reads_and_exits_0(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    monkeypatch.delenv("CONTROL_PLANE_URL", raising=False)  # nothing is read: a missing URL is no error here

    assert console_script(module)() == 0

    out = capsys.readouterr().out
    assert out.startswith("usage: draas-")
    listed = set(re.findall(r"^  ([A-Z][A-Z0-9_]+)  ", out, re.MULTILINE))
    read = variables_read(module)
    assert {"CONTROL_PLANE_URL", "DRAAS_API_KEY", "DRAAS_RESYNC_INTERVAL", "DRAAS_STORE_CHECK_INTERVAL"} <= read
    assert read <= listed, read - listed
    assert "DRAAS_RESYNC_INTERVAL" in out and "(default: 600)" in out
    assert re.search(r"DRAAS_STORE_CHECK_INTERVAL .*\(default: 5\)", " ".join(out.split())), out


@pytest.mark.parametrize("module", MODULES)
def test_python_m_help_needs_no_settings_and_touches_nothing(module: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=tmp_path, env={"PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "DRAAS_SPOOL_PATH" in result.stdout and not result.stderr
    assert list(tmp_path.iterdir()) == []  # no spool made, nothing connected to


@pytest.mark.parametrize("module", MODULES)
def test_any_other_argument_is_a_usage_error(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert importlib.import_module(module).main(["--verbose"]) == 2
    assert "--help" in capsys.readouterr().err
