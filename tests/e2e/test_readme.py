"""The README's Python example runs as written: extracted from the README and run in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import REPO_ROOT

# The fenced Python block right after the "Subscribing in-process" line.
SUBSCRIPTION = re.compile(r"^Subscribing in-process:\n\n```python\n(.*?)^```$", re.S | re.M)


def test_the_readme_subscription_example_runs_as_written(tmp_path: Path) -> None:
    found = SUBSCRIPTION.search((REPO_ROOT / "README.md").read_text())
    assert found is not None, "the README has no 'Subscribing in-process' Python block"
    script = tmp_path / "subscribe.py"
    script.write_text(found.group(1))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # subprocess.run kills the interpreter (by its PID) if it outlives the timeout.
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "crasher Running -> Failed" in result.stdout, result.stdout + result.stderr
