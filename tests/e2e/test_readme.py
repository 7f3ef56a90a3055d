"""The README's Python example runs as written: extracted from the README and run in a fresh interpreter."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers import running_control_plane, wait_until

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


# The fenced Python block right after the webhook receiver's line.
RECEIVER = re.compile(
    r"^A receiver, verifying with the `standardwebhooks` package.*?\n\n```python\n(.*?)^```$", re.S | re.M
)


def test_the_readme_webhook_receiver_verifies_a_delivery_as_written(tmp_path: Path) -> None:
    found = RECEIVER.search((REPO_ROOT / "README.md").read_text())
    assert found is not None, "the README has no webhook receiver block"
    script = tmp_path / "receiver.py"
    script.write_text(found.group(1))
    with socket.socket() as probe:  # a free port for the receiver (it takes PORT from the environment)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_control_plane(tmp_path / "data") as plane:
        created = plane.post("/api/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"})
        assert created.status_code == 201, created.text
        env = {**os.environ, "WEBHOOK_SECRET": created.json()["secret"], "PORT": str(port)}
        receiver = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: _listening(port), 10.0, message="the README receiver listens")
            pushed = plane.push({"instanceId": "readme-1", "status": "Running", "source": "e2e", "platform": "docker"})
            assert pushed.status_code == 202, pushed.text
            assert receiver.stdout is not None
            readable, _, _ = select.select([receiver.stdout], [], [], 10.0)
            assert readable, "the README receiver printed nothing within 10 s"
            line = receiver.stdout.readline()
            assert line.split() == ["io.draas.instance.status.changed", "readme-1", "Running"]
        finally:
            receiver.kill()
            receiver.wait(timeout=5)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
