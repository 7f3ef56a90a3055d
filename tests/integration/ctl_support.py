"""Running draasctl as a subprocess against a running control plane, as an operator's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import RunningControlPlane

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 30.0


def ctl_env(config_home: Path, plane: RunningControlPlane | None = None, **extra: str) -> dict[str, str]:
    """The environment of one run: its own config folder, and the plane's URL and key unless ``extra`` says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAAS_") and k != "NO_COLOR"}
    env["XDG_CONFIG_HOME"] = str(config_home)
    if plane is not None:
        env.update(DRAAS_URL=plane.base_url, DRAAS_API_KEY=plane.operator_key)
    env.update(extra)
    return env


def ctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "draas_actors.ctl", *args]


def ctl(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ctl_command(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, input=stdin,
        check=False,
    )
