"""CPU time and context switches of this process's threads, grouped by name, from /proc (Linux).

py-spy cannot attach where ptrace is not allowed, and cProfile slows waitress's loop so much that it measures
itself; the kernel's per-thread counters cost nothing. Threads are grouped by name without a trailing number
(``InstanceActor-12`` -> ``InstanceActor``, ``waitress-3`` -> ``waitress``).
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TASKS = Path("/proc/self/task")
_SWITCHES = re.compile(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Snapshot:
    cpu_ns: dict[int, int]  # thread id -> nanoseconds on a CPU (schedstat)
    switches: dict[int, int]  # thread id -> voluntary + involuntary context switches
    names: dict[int, str]  # thread id -> group name


def group(name: str) -> str:
    return re.sub(r"[-_ ]?\d+$", "", name)


def snapshot() -> Snapshot:
    names = {t.native_id: group(t.name) for t in threading.enumerate() if t.native_id is not None}
    cpu: dict[int, int] = {}
    switches: dict[int, int] = {}
    for task in TASKS.iterdir():
        tid = int(task.name)
        try:
            cpu[tid] = int((task / "schedstat").read_text().split()[0])
            switches[tid] = sum(int(n) for n in _SWITCHES.findall((task / "status").read_text()))
            names.setdefault(tid, group((task / "comm").read_text().strip()))
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended between the listing and the read
    return Snapshot(cpu, switches, names)


@dataclass(frozen=True)
class Share:
    group: str
    threads: int
    cpu_ms: float  # per unit
    switches: float  # per unit


def per_unit(before: Snapshot, after: Snapshot, units: int) -> list[Share]:
    """Each group's CPU (ms) and context switches between the snapshots, divided by ``units``; largest first."""
    cpu: Counter[str] = Counter()
    switches: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for tid, ns in after.cpu_ns.items():
        name = after.names.get(tid) or before.names.get(tid, "?")
        cpu[name] += ns - before.cpu_ns.get(tid, 0)
        switches[name] += after.switches.get(tid, 0) - before.switches.get(tid, 0)
        threads[name] += 1
    units = max(1, units)
    return [Share(name, threads[name], ns / 1e6 / units, switches[name] / units) for name, ns in cpu.most_common()]


def render(shares: list[Share], unit: str = "update", top: int = 8) -> str:
    return "\n".join(
        f"    {s.group:<24} {s.threads:>5} threads  {s.cpu_ms:7.3f} ms CPU/{unit}  {s.switches:6.2f} switches/{unit}"
        for s in shares[:top] if s.cpu_ms >= 0.0005 or s.switches >= 0.005
    )
