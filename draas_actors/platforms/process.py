"""Local OS processes: spawn, adopt, signal and reap, and the descendants they leave behind.

Each command starts a session and a process group of its own (both IDs are its PID), and the control plane is a child
subreaper (``PR_SET_CHILD_SUBREAPER``): a descendant orphaned by its parent is re-parented to us, not to init. What
is left of a group when its main process ends is SIGKILLed before the main process is reaped (while it is a zombie,
its PID, and so the group's ID, cannot be reused), and those leftovers are reaped when they end. Only children that
belong to a group or session we started are reaped that way: the control plane's host process (a test run) may have
children of its own whose exit status is not ours to take.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import shutil
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
_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where the kernel does not offer it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class ProcessPlatform:
    """Owns the ``Popen`` objects of the processes we spawned.

    Keeping them matters: a ``Popen`` dropped while its child runs goes on ``subprocess``'s cleanup list,
    whose later ``waitpid`` could reap a *new* child that reused the PID and steal its exit status.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        # The sessions (= process groups) we started, kept while any process may still be in them.
        self._groups: set[int] = set()
        self._released: set[int] = set()  # children nobody is told about any more (deleted instances'), still ours
        self._lock = threading.Lock()
        self.subreaper = become_subreaper()

    def log_paths(self, instance_id: str) -> tuple[Path, Path]:
        safe = _UNSAFE.sub("_", instance_id)
        return self.log_dir / f"{safe}.out.log", self.log_dir / f"{safe}.err.log"

    def spawn(self, instance_id: str, spec: ProcessSpec) -> Runtime:
        """Start the command in a session and process group of its own (a terminal's ^C does not reach it, and a
        stop reaches all of it)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out_path, err_path = self.log_paths(instance_id)
        # Under the lock until the child is known: reap_leftovers must never take a child of ours for a leftover.
        with self._lock, open(out_path, "ab") as out, open(err_path, "ab") as err:
            popen = subprocess.Popen(
                list(spec.command),
                cwd=spec.cwd,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
            self._children[popen.pid] = popen
            self._groups.add(popen.pid)
        _wait_for_exec(popen.pid)
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0  # already gone and reaped by nobody yet: the monitor reports its exit
        return Runtime(
            pid=popen.pid, create_time=create_time, started_at=time.time(), child=True, own_group=True
        )

    def check_command(self, spec: ProcessSpec, *, field: str = "process") -> None:
        """422 naming ``process.command`` (or ``process.cwd``) when the spawn could not execute the command."""
        if spec.cwd is not None and not os.path.isdir(spec.cwd):
            raise InvalidInput(f"{field}.cwd: {spec.cwd!r} is not a directory", field=f"{field}.cwd")
        if not spec.command:
            return
        name = spec.command[0]
        cmd_field = f"{field}.command"
        if not name or "\0" in name:
            raise InvalidInput(f"{cmd_field}: {name!r} cannot be executed", field=cmd_field)
        if "/" in name:
            # exec resolves a path with a slash against the working directory the child has then: cwd.
            path = os.path.join(spec.cwd or os.getcwd(), name)
            if not os.path.isfile(path):
                raise InvalidInput(f"{cmd_field}: {name!r} is not a file", field=cmd_field)
            if not os.access(path, os.X_OK):
                raise InvalidInput(f"{cmd_field}: {name!r} is not executable", field=cmd_field)
            return
        # A bare name is looked up on the PATH of the child's environment, as subprocess does.
        search = os.pathsep.join(os.get_exec_path({**os.environ, **spec.env}))
        if shutil.which(name, path=search) is None:
            raise InvalidInput(
                f"{cmd_field}: {name!r} was not found as an executable on PATH", field=cmd_field
            )

    def adopt(self, pid: int) -> Runtime:
        if pid in (1, os.getpid()):
            what = "init" if pid == 1 else "the control plane itself"
            raise InvalidInput(f"process.pid: PID {pid} is {what} and cannot be adopted", field="process.pid")
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

    def release(self, pid: int) -> bool:
        """Nobody is to be told when our child ``pid`` ends (its instance is gone): it is reaped all the same, by
        ``reap_released`` if nothing else does. False when it is not our child."""
        with self._lock:
            if pid not in self._children:
                return False
            self._released.add(pid)
            return True

    def reap_released(self) -> int:
        """Reap each released child that has ended (the sweep's safety net); how many."""
        with self._lock:
            ended = [pid for pid in self._released if (stat := _stat(pid)) is None or stat.state == "Z"]
        for pid in ended:
            self.reap(pid)
        return len(ended)

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
        """Exit code of our child ``pid`` (negative signal number if killed); None if not our child.

        Called once ``pid`` has ended. What is left of its process group is SIGKILLed first, while the unreaped
        main process still holds the group's ID; a leftover of ours that has ended is reaped here too.
        """
        with self._lock:
            popen = self._children.pop(pid, None)
            self._released.discard(pid)
        if popen is None:
            self.reap_leftovers()
            return None
        self._kill_group(pid)
        try:
            code = popen.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            log.warning("PID %d reported ended but is not reapable yet", pid)
            with self._lock:
                self._children[pid] = popen
                self._released.add(pid)  # not told to anybody now: the sweep tries again
            return None
        self.reap_leftovers()  # and forget the group at once if nothing is left of it
        return code

    def leftovers(self) -> list[int]:
        """Our children that are not main processes but belong to a group or session we started: descendants of
        an instance re-parented to us, alive or not yet reaped."""
        with self._lock:
            return list(self._leftovers())

    def reap_leftovers(self) -> int:
        """Reap every leftover that has ended; forget the groups that have no process left. How many were reaped."""
        reaped = 0
        with self._lock:
            for pid, stat in self._leftovers().items():
                if stat.state == "Z":
                    try:
                        if os.waitpid(pid, os.WNOHANG)[0] == pid:
                            reaped += 1
                    except ChildProcessError:
                        pass
            for group in list(self._groups):
                if group not in self._children and not _group_exists(group):
                    self._groups.discard(group)
        return reaped

    def _leftovers(self) -> dict[int, _Stat]:
        """Each leftover and its ``/proc`` state; the caller holds the lock."""
        found: dict[int, _Stat] = {}
        if not self._groups:
            return found
        for pid in _own_children():
            # A group's ID is its leader's PID: our main process, or (once the group is gone and before we forget
            # it) a new process that reused the PID, which is not ours.
            if pid in self._children or pid in self._groups:
                continue
            stat = _stat(pid)
            if stat is not None and (stat.group in self._groups or stat.session in self._groups):
                found[pid] = stat
        return found

    def _kill_group(self, pid: int) -> None:
        """SIGKILL what is left of the session ``pid`` led: its process group, and any orphan of it that moved to
        another group of the same session (and so to us)."""
        with self._lock:
            if pid not in self._groups:
                return
            strays = [other for other, stat in self._leftovers().items() if stat.session == pid and stat.state != "Z"]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        for other in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(other, signal.SIGKILL)  # our unreaped child: its PID cannot have been reused

    def terminate_later(self, runtime: Runtime, timeout: float) -> None:
        """SIGTERM now and SIGKILL after ``timeout``, for instances whose actor is going away."""
        if not self.signal(runtime, signal.SIGTERM):
            return
        if timeout >= threading.TIMEOUT_MAX:
            return  # 292 years or more means never; a Timer asked to wait 1e300 s dies of OverflowError
        timer = threading.Timer(timeout, self.signal, args=(runtime, signal.SIGKILL))
        timer.daemon = True
        timer.start()


class _Stat:
    __slots__ = ("group", "session", "state")

    def __init__(self, state: str, group: int, session: int) -> None:
        self.state, self.group, self.session = state, group, session


def _stat(pid: int) -> _Stat | None:
    """State, process group and session of ``pid`` from ``/proc`` (a zombie's too); None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    return _Stat(fields[0].decode(), int(fields[2]), int(fields[3]))


def _wait_for_exec(pid: int, timeout: float = 0.1) -> None:
    """Wait, briefly, until the new program's arguments show in ``/proc``.

    ``Popen`` returns once the exec cannot fail any more, while the kernel may still be loading the program: for that
    moment ``/proc/<pid>/cmdline`` is empty, and a client that reads the PID we answer with would not find the command
    there (more often since the monitor's work at each exit competes for the CPU with a restart's exec).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if file.read(1):
                    return
        except OSError:
            return  # gone
        stat = _stat(pid)
        if stat is None or stat.state in ("Z", "X") or time.monotonic() >= deadline:
            return  # a zombie's arguments stay empty
        time.sleep(0.0005)


def _own_children() -> set[int]:
    """PIDs of this process's children that matter here: those re-parented to us as the subreaper.

    The kernel hands an orphan to the first live thread of the subreaper's thread group, its leader (see
    ``find_new_reaper``), so the leader's ``children`` list holds every leftover while the main thread lives. Reading
    only that list keeps an exit's cost independent of how many threads (one per actor) the control plane has: every
    thread's list took 40 ms at 2,000 threads. Were the leader gone, every thread's list is read.
    """
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as file:
            return {int(pid) for pid in file.read().split()}
    except OSError:
        pass
    children: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as file:
                children.update(int(pid) for pid in file.read().split())
        except OSError:
            continue  # a thread that ended meanwhile
    return children


def _group_exists(group: int) -> bool:
    try:
        os.killpg(group, 0)  # a zombie member still counts: it is reaped before the group is forgotten
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
