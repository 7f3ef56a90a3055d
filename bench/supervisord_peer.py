"""supervisord as the comparison peer: SIGKILL its child, time exit detection and respawn."""
from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from .stats import median, p99

# Event listener run under supervisord; timestamps are CLOCK_MONOTONIC, which is system-wide on Linux.
_LISTENER = r'''
import sys, time
with open(sys.argv[1], "a", encoding="ascii") as out:
    while True:
        sys.stdout.write("READY\n"); sys.stdout.flush()
        header = sys.stdin.readline()
        if not header:
            break  # supervisord went away: stdin closed
        now = time.monotonic_ns()
        hdr = dict(t.split(":", 1) for t in header.split())
        payload = sys.stdin.read(int(hdr["len"]))
        fields = dict(t.split(":", 1) for t in payload.split("\n", 1)[0].split() if ":" in t)
        if fields.get("processname") == "child":
            out.write(f"{hdr['eventname']} {fields.get('pid', '0')} {now}\n"); out.flush()
        sys.stdout.write("RESULT 2\nOK"); sys.stdout.flush()
'''

_CONF = """[unix_http_server]
file={sock}

[supervisord]
nodaemon=true
pidfile={pidfile}
logfile={logfile}
childlogdir={workdir}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:child]
command={child}
autostart=true
autorestart=true
startsecs=0
startretries=1000
stopsignal=KILL
stopwaitsecs=2

[eventlistener:probe]
command={probe}
events=PROCESS_STATE_EXITED,PROCESS_STATE_RUNNING
stderr_logfile={probe_err}
"""


@dataclass(frozen=True)
class PeerResult:
    """Per-kill latencies in milliseconds, measured from the moment SIGKILL was sent."""

    exit_detect_ms: list[float]  # SIGKILL -> PROCESS_STATE_EXITED observed
    replacement_ms: list[float]  # SIGKILL -> replacement PROCESS_STATE_RUNNING observed


class _Events:
    """Tails the listener's event file into pid -> first RUNNING / EXITED monotonic_ns timestamps."""

    def __init__(self, path: pathlib.Path, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
        self._path, self._proc, self._deadline_ns = path, proc, int(deadline_s * 1e9)
        self._offset, self._partial = 0, ""
        self.running: dict[int, int] = {}
        self.exited: dict[int, int] = {}

    def _drain(self) -> None:
        """Fold complete lines appended since the last call into running/exited."""
        try:
            with open(self._path, encoding="ascii") as f:
                f.seek(self._offset)
                data = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return
        lines = (self._partial + data).split("\n")
        self._partial = lines.pop()  # a line still being written stays buffered
        for line in lines:
            name, pid, ts = line.split()
            (self.running if name == "PROCESS_STATE_RUNNING" else self.exited).setdefault(int(pid), int(ts))

    def wait(self, what: str, t_start: int, done: Callable[[], bool]) -> None:
        """Poll every ~1 ms until done(); raise if supervisord dies or the deadline passes."""
        while True:
            self._drain()
            if done():
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"supervisord exited ({self._proc.returncode}) while waiting for {what}")
            if time.monotonic_ns() - t_start > self._deadline_ns:
                raise TimeoutError(f"no {what} from supervisord within {self._deadline_ns / 1e9} s")
            time.sleep(0.001)


def _write_config(workdir: pathlib.Path, child_command: list[str], events: pathlib.Path) -> pathlib.Path:
    """Write supervisord.conf and the listener script into workdir; return the config path."""
    listener = workdir / "probe_listener.py"
    listener.write_text(_LISTENER, encoding="ascii")
    values = {
        "sock": workdir / "supervisor.sock", "pidfile": workdir / "supervisord.pid",
        "logfile": workdir / "supervisord.log", "workdir": workdir, "probe_err": workdir / "probe.err",
        "child": shlex.join(child_command), "probe": shlex.join([sys.executable, str(listener), str(events)]),
    }
    conf = workdir / "supervisord.conf"
    # supervisord's ConfigParser interpolates %(...)s, so literal % must be doubled.
    conf.write_text(_CONF.format(**{k: str(v).replace("%", "%%") for k, v in values.items()}), encoding="ascii")
    return conf


def _alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop(proc: subprocess.Popen[bytes], child_pid: int | None) -> None:
    """Stop the supervisord we started (by PID), then make sure its last child is gone."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if child_pid is None:
        return
    for _ in range(200):  # supervisord's shutdown should already have killed it; allow ~1 s
        if not _alive(child_pid):
            return
        time.sleep(0.005)
    with contextlib.suppress(ProcessLookupError):
        os.kill(child_pid, signal.SIGKILL)


def measure_supervisord(
    *, kills: int, child_command: list[str], workdir: pathlib.Path, settle_s: float = 0.3, deadline_s: float = 10.0
) -> PeerResult:
    """Run supervisord in workdir, SIGKILL its child `kills` times, and time detection and respawn."""
    workdir = pathlib.Path(workdir).resolve()
    conf = _write_config(workdir, child_command, workdir / "events.log")
    with open(workdir / "supervisord.out", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
            start_new_session=True,  # a terminal ^C must not race our own shutdown
        )
    ev = _Events(workdir / "events.log", proc, deadline_s)
    pid: int | None = None
    exit_ms: list[float] = []
    repl_ms: list[float] = []
    try:
        ev.wait("first RUNNING event for child", time.monotonic_ns(), lambda: bool(ev.running))
        pid = max(ev.running, key=ev.running.__getitem__)
        for _ in range(kills):
            settle_until = ev.running[pid] + int(settle_s * 1e9)
            while time.monotonic_ns() < settle_until:  # bounded by settle_s
                time.sleep(0.001)
            old, t0 = pid, time.monotonic_ns()
            os.kill(old, signal.SIGKILL)

            def new_pid(old: int = old, t0: int = t0) -> int | None:
                """The replacement child's pid, once its RUNNING event is logged."""
                return next((p for p, ts in ev.running.items() if p != old and ts > t0), None)

            def replaced(old: int = old) -> bool:
                """The killed child's exit and its replacement's start are both logged."""
                return old in ev.exited and new_pid() is not None

            ev.wait(f"EXITED+RUNNING after killing pid {old}", t0, replaced)
            pid = new_pid()
            assert pid is not None
            exit_ms.append((ev.exited[old] - t0) / 1e6)
            repl_ms.append((ev.running[pid] - t0) / 1e6)
    finally:
        _stop(proc, pid)
    return PeerResult(exit_detect_ms=exit_ms, replacement_ms=repl_ms)


def main() -> None:
    """CLI: measure supervisord against `sleep 3600` and print median / p99."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--settle", type=float, default=0.3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="svd-peer-") as tmp:
        r = measure_supervisord(kills=args.kills, child_command=["sleep", "3600"],
                                workdir=pathlib.Path(tmp), settle_s=args.settle)
    for label, xs in (("exit_detect_ms", r.exit_detect_ms), ("replacement_ms", r.replacement_ms)):
        print(f"{label}: n={len(xs)} median={median(xs):.1f} p99={p99(xs):.1f} "
              f"min={min(xs):.1f} max={max(xs):.1f}")


if __name__ == "__main__":
    main()
