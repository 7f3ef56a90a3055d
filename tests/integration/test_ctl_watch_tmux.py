"""``draasctl watch`` in a real terminal (tmux): a SIGKILLed process's changes appear as lines, coloured, live, and
Ctrl-C ends it. tmux runs on a socket of this test's own, killed (that server only) when the test ends."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import RunningControlPlane, wait_until
from tests.integration.ctl_support import ROOT, ctl_command, ctl_env

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, socket: str) -> None:
        assert TMUX is not None
        self.base = [TMUX, "-L", socket, "-f", "/dev/null"]

    def tmux(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10, check=True).stdout

    def screen(self, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", "w")

    def shows(self, text: str) -> str:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.05)
        pytest.fail(f"the terminal did not show {text!r} within 10 s; it shows:\n{self.screen()}")


def open_streams(plane: RunningControlPlane) -> float:
    found = re.search(r"^draas_open_streams (\S+)$", plane.get("/metrics").text, re.M)
    return float(found[1]) if found else -1.0


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(f"draasctl-test-{os.getpid()}-{tmp_path.name}")
    term.tmux("new-session", "-d", "-s", "w", "-x", "200", "-y", "50", "sh")
    try:
        yield term
    finally:
        subprocess.run([*term.base, "kill-server"], capture_output=True, timeout=10, check=False)


def test_watch_prints_each_change_live_in_colour_and_ends_on_ctrl_c(
    plane: RunningControlPlane, terminal: Terminal, tmp_path: Path
) -> None:
    env = ctl_env(tmp_path / "config", plane, TERM="xterm-256color")
    script = tmp_path / "watch.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
    script.write_text(f"{exports}cd {shlex.quote(str(ROOT))}\nexec {shlex.join(ctl_command('watch'))}\n")
    terminal.tmux("send-keys", "-t", "w", f"sh {shlex.quote(str(script))}", "Enter")
    wait_until(lambda: open_streams(plane) == 1, 10.0, 0.05, "the watch's stream is open")

    view = plane.register({"instanceId": "svc", "platform": "process", "restartPolicy": {"mode": "always"},
                           "process": {"command": [sys.executable, "-c", "import time; time.sleep(60)"]}})
    terminal.shows("  #1  svc  process  Pending -> Running  (control-plane)")
    os.kill(view["runtime"]["pid"], signal.SIGKILL)
    terminal.shows("Running -> Failed  (process-monitor: killed by signal 9)")
    assert "\x1b[31mFailed" in terminal.screen(colours=True)  # red: a terminal gets colour
    wait_until(lambda: terminal.screen().count("-> Running") == 2, 10.0, 0.05, "restarted: Running again")

    terminal.tmux("send-keys", "-t", "w", "C-c")
    terminal.tmux("send-keys", "-t", "w", "echo watch-ended-$?", "Enter")  # runs once the watch has ended
    terminal.shows("watch-ended-0")
    assert "Traceback" not in terminal.screen()
