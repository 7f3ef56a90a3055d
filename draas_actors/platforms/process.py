"""Local OS processes: spawn, adopt, signal and reap."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil

from ..errors import InvalidInput
from ..records import ProcessSpec, Runtime

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ProcessPlatform:
    """Owns the ``Popen`` objects of the processes we spawned.

    Keeping them matters: a ``Popen`` dropped while its child runs goes on ``subprocess``'s cleanup list,
    whose later ``waitpid`` could reap a *new* child that reused the PID and steal its exit status.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def log_paths(self, instance_id: str) -> tuple[Path, Path]:
        safe = _UNSAFE.sub("_", instance_id)
        return self.log_dir / f"{safe}.out.log", self.log_dir / f"{safe}.err.log"

    def spawn(self, instance_id: str, spec: ProcessSpec) -> Runtime:
        """Start the command in its own process group (so a terminal's ^C does not reach it)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out_path, err_path = self.log_paths(instance_id)
        with open(out_path, "ab") as out, open(err_path, "ab") as err:
            popen = subprocess.Popen(
                list(spec.command),
                cwd=spec.cwd,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                process_group=0,
                close_fds=True,
            )
        with self._lock:
            self._children[popen.pid] = popen
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0  # already gone and reaped by nobody yet: the monitor reports its exit
        return Runtime(
            pid=popen.pid, create_time=create_time, started_at=time.time(), child=True, own_group=True
        )

    def adopt(self, pid: int) -> Runtime:
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                raise InvalidInput(f"process {pid} has already exited", field="process.pid")
            create_time = process.create_time()
        except psutil.NoSuchProcess:
            raise InvalidInput(f"no process with PID {pid}", field="process.pid") from None
        except psutil.AccessDenied:
            raise InvalidInput(f"no permission to watch PID {pid}", field="process.pid") from None
        with self._lock:
            child = pid in self._children
        return Runtime(pid=pid, create_time=create_time, started_at=create_time, child=child)

    def is_child(self, pid: int) -> bool:
        with self._lock:
            return pid in self._children

    def is_same_process(self, runtime: Runtime) -> bool:
        """Alive, not a zombie, and not a different process that reused the PID."""
        try:
            process = psutil.Process(runtime.pid)
            return (
                process.create_time() == runtime.create_time
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.NoSuchProcess:
            return False

    def signal(self, runtime: Runtime, signum: signal.Signals) -> bool:
        """Signal the process (its group if we spawned it); False when it is no longer there."""
        if not self.is_same_process(runtime):
            return False
        try:
            if runtime.own_group and os.getpgid(runtime.pid) == runtime.pid:
                os.killpg(runtime.pid, signum)
            else:
                os.kill(runtime.pid, signum)
            return True
        except ProcessLookupError:
            return False

    def reap(self, pid: int) -> int | None:
        """Exit code of our child ``pid`` (negative signal number if killed); None if not our child."""
        with self._lock:
            popen = self._children.pop(pid, None)
        if popen is None:
            return None
        try:
            return popen.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            log.warning("PID %d reported ended but is not reapable yet", pid)
            with self._lock:
                self._children[pid] = popen
            return None

    def terminate_later(self, runtime: Runtime, timeout: float) -> None:
        """SIGTERM now and SIGKILL after ``timeout``, for instances whose actor is going away."""
        if not self.signal(runtime, signal.SIGTERM):
            return
        if timeout >= threading.TIMEOUT_MAX:
            return  # 292 years or more means never; a Timer asked to wait 1e300 s dies of OverflowError
        timer = threading.Timer(timeout, self.signal, args=(runtime, signal.SIGKILL))
        timer.daemon = True
        timer.start()
