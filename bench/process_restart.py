"""Crash -> StatusChanged and crash -> replacement latency: draas-actors against supervisord, same child, same kills.

    python -m bench.process_restart [--kills N] [--quick] [--settle S] [--json]

Both sides run ``sleep 3600`` under an on-failure restart policy, let it run ``settle`` seconds (longer than our
``resetAfter``, so every kill follows a healthy run and is restarted at once), SIGKILL it by PID and time, from
the moment the signal was sent:

1. exit detection: our ``StatusChanged`` Running -> Failed reaching an in-process subscriber; supervisord's
   ``PROCESS_STATE_EXITED`` reaching an event listener;
2. replacement: ``StatusChanged`` -> Running with the new PID; supervisord's ``PROCESS_STATE_RUNNING`` for the
   new PID.

Timestamps are ``CLOCK_MONOTONIC`` on both sides (system-wide on Linux). Percentiles are nearest-rank, so with
fewer than 100 kills p99 is the worst kill.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from draas_actors.messages import StatusChanged
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.platforms.process import ProcessPlatform
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord, ProcessSpec, Runtime
from draas_actors.system import ControlPlane, SystemSettings

from .compare import Metric, ms, table
from .stats import median, p99
from .supervisord_peer import PeerResult, measure_supervisord

CHILD_COMMAND = ["sleep", "3600"]
FULL_KILLS = 30
QUICK_KILLS = 3
SETTLE_S = 0.3
RESET_AFTER_S = 0.2
DEADLINE_S = 10.0
INSTANCE_ID = InstanceId("bench-sleep")
TARGET_EXIT_P99_MS = 20.0
TARGET_REPLACEMENT_MEDIAN_MS = 50.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OurResult:
    """Per-kill latencies of draas-actors in milliseconds from SIGKILL."""

    exit_detect_ms: list[float]  # -> StatusChanged Running->Failed at the subscriber
    replacement_ms: list[float]  # -> StatusChanged ->Running (new pid) at the subscriber
    reaped_ms: list[float] = field(default_factory=list)  # -> the monitor actor reaps the exit (pidfd seen)
    spawned_ms: list[float] = field(default_factory=list)  # -> the replacement has been exec'd (Popen returned)


@dataclass(frozen=True)
class ProcessRestartResult:
    kills: int
    settle_s: float
    child_command: list[str]
    ours: OurResult
    supervisord: PeerResult

    @property
    def metrics(self) -> list[Metric]:
        return [
            Metric("(1) crash -> StatusChanged Failed", self.ours.exit_detect_ms,
                   self.supervisord.exit_detect_ms, "supervisord", "p99", TARGET_EXIT_P99_MS),
            Metric("(2) crash -> replacement Running", self.ours.replacement_ms,
                   self.supervisord.replacement_ms, "supervisord", "median", TARGET_REPLACEMENT_MEDIAN_MS),
        ]

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "process_restart",
            "kills": self.kills,
            "settle_s": self.settle_s,
            "child_command": self.child_command,
            "metrics": [m.summary() for m in self.metrics],
            "passed": self.passed,
            "samples_ms": {"ours": asdict(self.ours), "supervisord": asdict(self.supervisord)},
        }


# -- our side ---------------------------------------------------------------------------------------


class _TimedProcesses(ProcessPlatform):
    """The real process platform, noting when the monitor reaps an exit and when a spawn has exec'd."""

    def __init__(self, log_dir: pathlib.Path) -> None:
        super().__init__(log_dir)
        self.lock = threading.Lock()
        self.reaped_ns: dict[int, int] = {}
        self.spawned: dict[int, tuple[int, Runtime]] = {}  # pid -> (monotonic ns Popen returned, runtime)

    def reap(self, pid: int) -> int | None:
        now = time.monotonic_ns()
        with self.lock:
            self.reaped_ns.setdefault(pid, now)
        return super().reap(pid)

    def spawn(self, instance_id: str, spec: ProcessSpec) -> Runtime:
        runtime = super().spawn(instance_id, spec)
        now = time.monotonic_ns()
        with self.lock:
            self.spawned[runtime.pid] = (now, runtime)
        return runtime


class _Recorder:
    """A bus subscriber that stamps each StatusChanged with monotonic_ns on arrival."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._events: list[tuple[int, StatusChanged]] = []

    def __call__(self, event: StatusChanged) -> None:
        now = time.monotonic_ns()
        with self._cond:
            self._events.append((now, event))
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._events)

    def wait_for(
        self, what: str, match: Callable[[StatusChanged], bool], *, start: int, deadline_s: float
    ) -> tuple[int, StatusChanged]:
        """The first event at index >= start that matches; TimeoutError after deadline_s."""
        deadline = time.monotonic() + deadline_s
        with self._cond:
            while True:
                for stamped in self._events[start:]:
                    if match(stamped[1]):
                        return stamped
                start = len(self._events)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {deadline_s} s")
                self._cond.wait(remaining)


def _pid_of(event: StatusChanged) -> str | None:
    return event.metadata.get("pid")


def _failed(pid: str) -> Callable[[StatusChanged], bool]:
    """Matches the Running -> Failed change for the process ``pid``."""
    return lambda e: e.old_status is Status.RUNNING and e.new_status is Status.FAILED and _pid_of(e) == pid


def _replaced(pid: str) -> Callable[[StatusChanged], bool]:
    """Matches a change to Running with a process other than ``pid``."""
    return lambda e: e.new_status is Status.RUNNING and _pid_of(e) not in (None, pid)


def measure_ours(
    *, kills: int, child_command: list[str], workdir: pathlib.Path, settle_s: float = SETTLE_S,
    deadline_s: float = DEADLINE_S,
) -> OurResult:
    """Run one process instance under an in-process ControlPlane, SIGKILL it `kills` times, time the events."""
    processes = _TimedProcesses(workdir / "logs")
    plane = ControlPlane(SystemSettings(data_dir=workdir), processes=processes)
    recorder = _Recorder()
    exit_ms: list[float] = []
    repl_ms: list[float] = []
    reaped_ms: list[float] = []
    spawned_ms: list[float] = []
    try:
        plane.start()
        plane.subscribe(recorder)
        plane.register(InstanceRecord(
            instance_id=INSTANCE_ID,
            platform=Platform.PROCESS,
            process=ProcessSpec(command=tuple(child_command), stop_timeout=2.0),
            restart_policy=RestartPolicy(
                mode=RestartMode.ON_FAILURE, reset_after=RESET_AFTER_S,
                max_restarts=1000,  # like the peer's startretries: the benchmark must not run out of budget
            ),
        ))
        running_ns, event = recorder.wait_for(
            "first Running", lambda e: e.new_status is Status.RUNNING and _pid_of(e) is not None,
            start=0, deadline_s=deadline_s,
        )
        pid = int(_pid_of(event) or 0)
        for _ in range(kills):
            # Pacing, not synchronisation: the child must have run longer than resetAfter.
            time.sleep(max(0.0, (running_ns + int(settle_s * 1e9) - time.monotonic_ns()) / 1e9))
            old, start = str(pid), len(recorder)
            t0 = time.monotonic_ns()
            os.kill(pid, signal.SIGKILL)
            failed_ns, _ = recorder.wait_for(
                f"Running->Failed for pid {old}",
                _failed(old),
                start=start, deadline_s=deadline_s,
            )
            running_ns, event = recorder.wait_for(
                f"->Running replacing pid {old}",
                _replaced(old),
                start=start, deadline_s=deadline_s,
            )
            new_pid = int(_pid_of(event) or 0)
            exit_ms.append((failed_ns - t0) / 1e6)
            repl_ms.append((running_ns - t0) / 1e6)
            with processes.lock:
                reaped = processes.reaped_ns.get(pid)
                spawned = processes.spawned.get(new_pid)
            if reaped is not None:
                reaped_ms.append((reaped - t0) / 1e6)
            if spawned is not None:
                spawned_ms.append((spawned[0] - t0) / 1e6)
            pid = new_pid
    finally:
        try:
            plane.stop(stop_processes=True, timeout=5.0)
        finally:
            with processes.lock:
                runtimes = [runtime for _, runtime in processes.spawned.values()]
            _kill_leftovers(runtimes)
    return OurResult(exit_detect_ms=exit_ms, replacement_ms=repl_ms, reaped_ms=reaped_ms, spawned_ms=spawned_ms)


def _kill_leftovers(runtimes: list[Runtime]) -> None:
    """SIGKILL any child we spawned that survived the stop; create time guards against a reused PID."""
    for runtime in runtimes:
        try:
            process = psutil.Process(runtime.pid)
            if process.create_time() != runtime.create_time or process.status() == psutil.STATUS_ZOMBIE:
                continue
            log.warning("child %d survived the control plane's stop: SIGKILL", runtime.pid)
            os.kill(runtime.pid, signal.SIGKILL)
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue


# -- both sides and the report ----------------------------------------------------------------------


def run(*, kills: int = FULL_KILLS, settle_s: float = SETTLE_S, child_command: list[str] | None = None,
        progress: Callable[[str], None] | None = None) -> ProcessRestartResult:
    """Measure draas-actors, then supervisord, on the same child with the same number of kills and settle."""
    if kills < 1:
        raise ValueError("kills must be at least 1")
    if settle_s <= RESET_AFTER_S:
        raise ValueError(f"settle must exceed resetAfter ({RESET_AFTER_S} s) so each restart is immediate")
    command = list(child_command or CHILD_COMMAND)
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="bench-draas-") as ours_dir:
        say(f"draas-actors: {kills} kills ...")
        ours = measure_ours(kills=kills, child_command=command, workdir=pathlib.Path(ours_dir), settle_s=settle_s)
    with tempfile.TemporaryDirectory(prefix="bench-supervisord-") as peer_dir:
        say(f"supervisord: {kills} kills (about {2 + settle_s:.1f} s each) ...")
        peer = measure_supervisord(kills=kills, child_command=command, workdir=pathlib.Path(peer_dir),
                                   settle_s=settle_s)
    return ProcessRestartResult(kills=kills, settle_s=settle_s, child_command=command, ours=ours, supervisord=peer)


def render(result: ProcessRestartResult) -> str:
    """The comparison table, the targets, and where our time goes."""
    lines = table(
        f"process restart: {result.kills} SIGKILLs per side, child `{' '.join(result.child_command)}`, "
        f"settle {result.settle_s:g} s; latency from SIGKILL; p99 is nearest-rank",
        result.metrics,
    )
    ours = result.ours
    stages: Mapping[str, list[float]] = {
        "monitor reaped the exit": ours.reaped_ms,
        "StatusChanged Failed at subscriber": ours.exit_detect_ms,
        "replacement exec'd (Popen returned)": ours.spawned_ms,
        "StatusChanged Running at subscriber": ours.replacement_ms,
    }
    lines.append("ours, along the path (median / p99 from SIGKILL):")
    for label, xs in stages.items():
        if xs:
            lines.append(f"  {label:<38} {ms(median(xs)):>9} / {ms(p99(xs))}")
    lines.append("overall: " + ("PASS" if result.passed else "MISS"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a target is missed in a full run (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.process_restart", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--kills", type=int, default=None, help=f"kills per side (default {FULL_KILLS}, quick {QUICK_KILLS})"
    )
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_KILLS} kills per side")
    ap.add_argument("--settle", type=float, default=SETTLE_S, help="seconds the child runs before each kill")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    kills = args.kills if args.kills is not None else (QUICK_KILLS if args.quick else FULL_KILLS)
    result = run(kills=kills, settle_s=args.settle,
                 progress=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
