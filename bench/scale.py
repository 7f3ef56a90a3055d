"""Scale: instance actors on the bounded pool against a thread each, in one run.

    python -m bench.scale [--quick] [--pooled N] [--threads N] [--json]

Each layout runs in a child Python process of its own, so that one's memory does not count against the other:
the pooled layout at the issue's size (50,000 instances), pykka's thread per actor at a size it can hold (5,000;
around 22,000 threads the process cannot start more), its figures extrapolated per instance to 50,000. Per
layout, in order:

1. 100 observed Docker instances, created by pushed reports, and the single-update throughput at 100: 16 client
   threads each submitting one report at a time through ``ControlPlane.submit`` (routing, instance actor, bus,
   the durable store and its commit; no HTTP, whose constant cost would only flatter the ratio);
2. instances up to 10,000 (reports in batches of 500), the heap settled as run.py settles it after start-up
   (``draas_actors.heap``: a collection, then ``gc.freeze()``), as if the control plane had started with them
   stored; then local crashes, the issue's target: a ``sleep`` child under an on-failure policy, SIGKILLed by PID,
   timed to the ``StatusChanged`` Running -> Failed at an in-process subscriber, with 10,000 idle instances besides;
3. the rest of the instances, then RSS, the threads that run instance actors, one full collection timed (the 40,000
   instances made after the freeze are not frozen yet), the heap settled again (as after a start with them all
   stored), the same throughput at full size; then rounds alternating between a second control plane with 100
   instances and this one, whose paired ratios are what the throughput check takes (``_paired``); and crashes again
   with every instance idle beside it (for information);
4. a stop, and a new control plane's ``start()`` on the same store with all the instances stored.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from draas_actors.actors.pool import ActorSettings
from draas_actors.actors.supervisor import SupervisionSettings
from draas_actors.heap import settle_after_start
from draas_actors.messages import StatusReport, SubscriptionFilter
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord, ProcessSpec, Runtime
from draas_actors.system import ControlPlane, SystemSettings

from .process_restart import _failed, _kill_leftovers, _pid_of, _Recorder
from .stats import median, p99

FULL_POOLED, FULL_THREADS = 50_000, 5_000
QUICK_POOLED, QUICK_THREADS = 1_000, 200
SMALL = 100  # the size the throughput at full size is compared with
FULL_UPDATES, QUICK_UPDATES = 10_000, 800  # per round
ROUNDS = 5  # the median round's rate counts: the machine is shared, one round can be unlucky
FULL_KILLS, QUICK_KILLS = 100, 2  # nearest-rank p99 of 100 is the second worst, not the worst as of 30

CLIENTS = 16
BATCH = 500
SETTLE_S = 0.3  # longer than the crash instance's resetAfter, so that every kill follows a healthy run
DEADLINE_S = 30.0
CHILD_TIMEOUT_S = 1800.0
ASK_TIMEOUT_S = 60.0
CRASH_ID = InstanceId("bench-crash")

TARGET_RSS_MIB = 1024.0
TARGET_THREADS = 64
TARGET_THROUGHPUT_RATIO = 0.90
TARGET_CRASH_P99_MS = 20.0
TARGET_START_S = 10.0
CRASH_IDLE_BESIDES = 10_000


@dataclass(frozen=True)
class SideResult:
    """One layout's figures, measured in its own process."""

    runtime: str
    instances: int
    rss_base_mib: float  # after start-up, before any instance
    rss_mib: float  # with every instance
    instance_threads: int  # threads running instance actors
    create_s: float
    small_updates_per_s: float  # at SMALL instances
    updates_per_s: float  # at `instances`
    crash_ms: list[float]  # with min(instances, CRASH_IDLE_BESIDES) idle instances besides
    start_s: float  # a new control plane's start() with `instances` stored
    # One full (generation 2) garbage collection with every instance: every thread waits that long, so a crash
    # whose StatusChanged is due meanwhile waits too. Python runs one after each 25 % growth of long-lived objects.
    gc_full_ms: float = 0.0
    crash_full_ms: list[float] = dataclasses.field(default_factory=list)  # with every instance idle besides
    crash_besides: int = 0  # idle instances beside the crashing one in crash_ms
    gc_besides_ms: float = 0.0  # one full collection with crash_besides instances, after the heap was settled
    small_cpu_us: float = 0.0  # the process's CPU time per update at SMALL instances
    cpu_us: float = 0.0  # and at `instances`
    small_full_gcs: int = 0  # full collections during the timed rounds at SMALL
    full_gcs: int = 0  # and at `instances`
    # _paired: the rates at SMALL (a second control plane, beside this one) and at `instances`, round after round.
    paired: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    @property
    def paired_ratios(self) -> list[float]:
        return [full / small for small, full in self.paired]

    @property
    def kib_per_instance(self) -> float:
        return (self.rss_mib - self.rss_base_mib) * 1024 / self.instances

    @property
    def throughput_ratio(self) -> float:
        """The median of the paired rounds' ratios (``_paired``); the ratio of the two medians without them."""
        return median(self.paired_ratios) if self.paired_ratios else self.updates_per_s / self.small_updates_per_s

    def at(self, instances: int) -> dict[str, float]:
        """RSS, threads and start time extrapolated per instance to ``instances``."""
        scale = instances / self.instances
        return {
            "rss_mib": self.rss_base_mib + self.kib_per_instance * instances / 1024,
            "instance_threads": self.instance_threads * scale if self.runtime == "threads" else self.instance_threads,
            "start_s": self.start_s * scale,
        }


@dataclass(frozen=True)
class Check:
    label: str
    pooled: str
    threads: str
    target: str
    passed: bool


@dataclass(frozen=True)
class ScaleResult:
    pooled: SideResult
    threads: SideResult
    target_instances: int

    @property
    def checks(self) -> list[Check]:
        p, t, n = self.pooled, self.threads, self.target_instances
        tx = t.at(n)
        crash = p99(p.crash_ms)
        return [
            Check(f"RSS at {n:,} instances", f"{p.at(n)['rss_mib']:.0f} MiB", f"{tx['rss_mib']:.0f} MiB (extrap.)",
                  f"<= {TARGET_RSS_MIB:.0f} MiB", p.at(n)["rss_mib"] <= TARGET_RSS_MIB),
            Check("threads for instance actors", f"{p.instance_threads}", f"{tx['instance_threads']:,.0f} (extrap.)",
                  f"<= {TARGET_THREADS}", p.instance_threads <= TARGET_THREADS),
            Check(f"push throughput at full size / at {SMALL}, paired", f"{p.throughput_ratio:.2f}",
                  f"{t.throughput_ratio:.2f} (at {t.instances:,})", f">= {TARGET_THROUGHPUT_RATIO:.2f}",
                  p.throughput_ratio >= TARGET_THROUGHPUT_RATIO),
            Check(f"crash -> StatusChanged p99, {p.crash_besides:,} idle besides", f"{crash:.2f} ms",
                  f"{p99(t.crash_ms):.2f} ms ({t.crash_besides:,} besides)",
                  f"<= {TARGET_CRASH_P99_MS:g} ms, {CRASH_IDLE_BESIDES:,} besides",
                  crash <= TARGET_CRASH_P99_MS and p.crash_besides >= CRASH_IDLE_BESIDES),
            Check(f"start with {n:,} stored instances", f"{p.at(n)['start_s']:.1f} s",
                  f"{tx['start_s']:.1f} s (extrap.)", f"<= {TARGET_START_S:g} s", p.at(n)["start_s"] <= TARGET_START_S),
        ]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "scale",
            "target_instances": self.target_instances,
            "checks": [asdict(c) for c in self.checks],
            "passed": self.passed,
            "pooled": asdict(self.pooled) | {"kib_per_instance": self.pooled.kib_per_instance},
            "threads": asdict(self.threads) | {"kib_per_instance": self.threads.kib_per_instance,
                                               "extrapolated": self.threads.at(self.target_instances)},
        }


# -- one layout, in its own process -----------------------------------------------------------------


def _rss_mib() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


def _instance_threads(runtime: str) -> int:
    prefix = "instance-pool" if runtime == "pool" else "InstanceActor-"
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def _report(index: int, status: Status) -> StatusReport:
    return StatusReport(instance_id=InstanceId(f"c{index:06d}"), status=status, source="docker-daemon",
                        observed_at=time.time(), platform=Platform.DOCKER)


def _create(cp: ControlPlane, first: int, end: int) -> None:
    for start in range(first, end, BATCH):
        outcomes = cp.submit(tuple(_report(i, Status.RUNNING) for i in range(start, min(end, start + BATCH))))
        assert isinstance(outcomes, tuple), outcomes


def _throughput(cp: ControlPlane, instances: int, updates: int,
                pushed: dict[int, Status]) -> tuple[float, float, int]:
    """The median of ROUNDS rates, and of their CPU time per update in microseconds (the whole process's: less
    swayed than the rate by what else the shared machine runs), after an untimed warm-up round of a quarter; and
    the full garbage collections during the timed rounds."""
    _round(cp, instances, max(CLIENTS, updates // 4), pushed)
    full_gcs = gc.get_stats()[2]["collections"]
    rounds = [_round(cp, instances, updates, pushed) for _ in range(ROUNDS)]
    full_gcs = gc.get_stats()[2]["collections"] - full_gcs
    return median([rate for rate, _ in rounds]), median([cpu for _, cpu in rounds]), full_gcs


def _round(cp: ControlPlane, instances: int, updates: int, pushed: dict[int, Status]) -> tuple[float, float]:
    """Updates/s of CLIENTS threads each submitting single reports to its own share of the instances, and the
    process's CPU microseconds per update.

    ``pushed``: per instance index, the status last pushed (each client reads and writes only its own indexes)."""
    errors: list[BaseException] = []

    def client(c: int) -> None:
        mine = range(c, instances, CLIENTS)
        try:
            for k in range(updates // CLIENTS):
                index = mine[(k * 7919) % len(mine)]  # spread over the instances, not one hot one
                # Each report changes its instance's status, whatever the earlier rounds left it at.
                status = Status.UNHEALTHY if pushed.get(index, Status.RUNNING) is Status.RUNNING else Status.RUNNING
                pushed[index] = status
                cp.submit((_report(index, status),))
        except BaseException as error:  # reported by the caller, after the join
            errors.append(error)

    threads = [threading.Thread(target=client, args=(c,), name=f"bench-client-{c}") for c in range(CLIENTS)]
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if errors:
        raise errors[0]
    done = (updates // CLIENTS) * CLIENTS
    return done / elapsed, cpu * 1e6 / done


def _crashes(cp: ControlPlane, kills: int) -> tuple[list[float], list[Runtime]]:
    recorder = _Recorder()
    # Only the crash instance's changes: the subscription stays, and must not cost the throughput rounds after it.
    cp.subscribe(recorder, SubscriptionFilter(instance_ids=frozenset({CRASH_ID})))
    cp.register(InstanceRecord(
        instance_id=CRASH_ID, platform=Platform.PROCESS,
        process=ProcessSpec(command=("sleep", "3600"), stop_timeout=2.0),
        restart_policy=RestartPolicy(mode=RestartMode.ON_FAILURE, reset_after=SETTLE_S / 2, max_restarts=1000),
    ))
    runtimes: list[Runtime] = []
    samples: list[float] = []
    start = 0
    for _ in range(kills):
        running_ns, event = recorder.wait_for(
            "Running", lambda e: e.instance_id == CRASH_ID and e.new_status is Status.RUNNING
            and _pid_of(e) is not None, start=start, deadline_s=DEADLINE_S)
        record = cp.get_instance(CRASH_ID)
        if record.runtime is not None:
            runtimes.append(record.runtime)
        pid = _pid_of(event) or "0"
        time.sleep(max(0.0, (running_ns + int(SETTLE_S * 1e9) - time.monotonic_ns()) / 1e9))  # pacing, see SETTLE_S
        start = len(recorder)
        t0 = time.monotonic_ns()
        os.kill(int(pid), signal.SIGKILL)
        failed_ns, _ = recorder.wait_for(f"Failed for pid {pid}", _failed(pid), start=start, deadline_s=DEADLINE_S)
        samples.append((failed_ns - t0) / 1e6)
    cp.deregister(CRASH_ID)  # stops its child; the timed start later must not spawn one
    return samples, runtimes


def measure_side(runtime: str, instances: int, updates: int, kills: int, workdir: pathlib.Path,
                 say: Callable[[str], None], *, freeze: bool = True) -> SideResult:
    settings = SystemSettings(
        data_dir=workdir, sweep_interval=60.0,
        # Listing or loading 50,000 records on a busy 2-core machine can take longer than the default 5 s.
        ask_timeout=ASK_TIMEOUT_S,
        supervision=SupervisionSettings(auto_create_cap=instances + 1, ask_timeout=ASK_TIMEOUT_S),
        actors=ActorSettings(runtime="pool" if runtime == "pool" else "threads"),
    )
    cp = ControlPlane(settings)
    runtimes: list[Runtime] = []
    try:
        cp.start()
        rss_base = _rss_mib()
        _create(cp, 0, SMALL)
        say(f"{runtime}: {updates} single updates at {SMALL} instances ...")
        pushed: dict[int, Status] = {}
        small, small_cpu_us, small_gcs = _throughput(cp, SMALL, updates, pushed)
        besides = min(instances, CRASH_IDLE_BESIDES)
        say(f"{runtime}: creating {instances:,} instances ...")
        t0 = time.perf_counter()
        _create(cp, SMALL, besides)
        create_s = time.perf_counter() - t0
        # What run.py does once its control plane has started with them stored (--no-freeze: the code before it).
        frozen = settle_after_start() if freeze else 0
        t0 = time.perf_counter()
        gc.collect()  # what a full collection now costs every thread, a crash's StatusChanged included
        gc_besides_ms = (time.perf_counter() - t0) * 1000
        say(f"{runtime}: {kills} local crashes with {besides:,} idle besides ({frozen:,} objects frozen) ...")
        crash_ms, runtimes = _crashes(cp, kills)
        t0 = time.perf_counter()
        _create(cp, besides, instances)
        create_s += time.perf_counter() - t0
        say(f"{runtime}: created in {create_s:.1f} s")
        rss, threads = _rss_mib(), _instance_threads(runtime)
        t0 = time.perf_counter()
        gc.collect()
        gc_full_ms = (time.perf_counter() - t0) * 1000
        if freeze:
            # As run.py leaves a control plane that started with them all stored. Not what the throughput ratio
            # hinges on: side runs counted no full collection in the timed rounds at 50,000, frozen or not.
            settle_after_start()
        say(f"{runtime}: {updates} single updates at {instances:,} instances ...")
        full, cpu_us, full_gcs = _throughput(cp, instances, updates, pushed)
        say(f"{runtime}: rounds at {SMALL} (a second control plane) and at {instances:,}, in turn ...")
        paired = _paired(settings, workdir, cp, instances, updates, pushed)
        say(f"{runtime}: {kills} local crashes with {instances:,} idle besides ...")
        crash_full_ms, more = _crashes(cp, kills)
        runtimes += more
    finally:
        try:
            # Not stop_processes, which lists every record: the crash instance was deregistered (its child
            # stopped), and _kill_leftovers covers a run that failed before that.
            cp.stop(timeout=30.0)
        finally:
            _kill_leftovers(runtimes)
    say(f"{runtime}: start with {instances + 1:,} stored instances ...")
    again = ControlPlane(dataclasses.replace(
        settings, supervision=SupervisionSettings(auto_create=False, ask_timeout=ASK_TIMEOUT_S)))
    t0 = time.perf_counter()
    try:
        again.start()
        start_s = time.perf_counter() - t0
        say(f"{runtime}: started in {start_s:.1f} s")
    finally:
        again.stop(timeout=30.0)  # no process to stop: the crash instance was deregistered
    return SideResult(runtime=runtime, instances=instances, rss_base_mib=rss_base, rss_mib=rss,
                      instance_threads=threads, create_s=create_s, small_updates_per_s=small, updates_per_s=full,
                      crash_ms=crash_ms, start_s=start_s, gc_full_ms=gc_full_ms, crash_full_ms=crash_full_ms,
                      crash_besides=besides, gc_besides_ms=gc_besides_ms, small_cpu_us=small_cpu_us, cpu_us=cpu_us,
                      small_full_gcs=small_gcs, full_gcs=full_gcs, paired=paired)


def _paired(settings: SystemSettings, workdir: pathlib.Path, cp: ControlPlane, instances: int, updates: int,
            pushed: dict[int, Status]) -> list[tuple[float, float]]:
    """Per pair of rounds, the rate at SMALL and the rate at ``instances`` just after it.

    The two rates of the main figure are taken a minute apart, and on the shared machine the rate at SMALL alone
    swung 4,600-7,900 updates/s between runs: their ratio measured the other processes' load as much as the
    instances. Here a second control plane with SMALL instances runs in the same process (beside the idle big one,
    its heap frozen as run.py freezes it) and the rounds alternate, so both rates of a pair meet the same load."""
    small_cp = ControlPlane(dataclasses.replace(settings, data_dir=workdir / "small"))
    try:
        small_cp.start()
        _create(small_cp, 0, SMALL)
        small_pushed: dict[int, Status] = {}
        _round(small_cp, SMALL, max(CLIENTS, updates // 4), small_pushed)  # warm-up
        pairs = []
        for _ in range(ROUNDS):
            small, _ = _round(small_cp, SMALL, updates, small_pushed)
            full, _ = _round(cp, instances, updates, pushed)
            pairs.append((small, full))
        return pairs
    finally:
        small_cp.stop(timeout=30.0)


def _run_side(runtime: str, instances: int, updates: int, kills: int, say: Callable[[str], None],
              freeze: bool = True) -> SideResult:
    """Measure one layout in a child process (a fresh heap); its progress goes to our stderr."""
    command = [sys.executable, "-m", "bench.scale", "--side", runtime, "--instances", str(instances),
               "--updates", str(updates), "--kills", str(kills)] + ([] if freeze else ["--no-freeze"])
    say(f"== {runtime} layout, {instances:,} instances (child process)")
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True, check=True,
                          timeout=CHILD_TIMEOUT_S, cwd=pathlib.Path(__file__).resolve().parent.parent)
    return SideResult(**json.loads(done.stdout))


def run(*, pooled: int = FULL_POOLED, threads: int = FULL_THREADS, updates: int = FULL_UPDATES,
        kills: int = FULL_KILLS, target: int = FULL_POOLED, say: Callable[[str], None] | None = None,
        freeze: bool = True) -> ScaleResult:
    if min(pooled, threads) <= SMALL or updates < CLIENTS or kills < 1:
        raise ValueError(f"need more than {SMALL} instances a side, {CLIENTS}+ updates and a kill")
    progress = say or (lambda _: None)
    return ScaleResult(
        pooled=_run_side("pool", pooled, updates, kills, progress, freeze),
        threads=_run_side("threads", threads, updates, kills, progress, freeze),
        target_instances=target,
    )


def render(result: ScaleResult) -> str:
    p, t = result.pooled, result.threads
    lines = [(f"scale: pooled instance actors at {p.instances:,} vs a thread each at {t.instances:,} "
              f"(extrapolated per instance to {result.target_instances:,}); each layout in its own process")]
    rows = [("metric", "pooled", "threads (peer)", "target (pooled)", "result")]
    rows += [(c.label, c.pooled, c.threads, c.target, "PASS" if c.passed else "MISS") for c in result.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(cells)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for side in (p, t):
        lines.append(
            f"{side.runtime:>7}: {side.kib_per_instance:.1f} KiB/instance (RSS {side.rss_base_mib:.0f} -> "
            f"{side.rss_mib:.0f} MiB), created in {side.create_s:.1f} s, updates/s {side.small_updates_per_s:,.0f} at "
            f"{SMALL} -> {side.updates_per_s:,.0f} at {side.instances:,}, crash median {median(side.crash_ms):.2f} ms, "
            f"start {side.start_s:.1f} s, a full GC {side.gc_full_ms:.0f} ms")
        lines.append(
            f"{'':>7}  CPU per update {side.small_cpu_us:.0f} us at {SMALL} -> {side.cpu_us:.0f} us at "
            f"{side.instances:,} (full GCs in the rounds: {side.small_full_gcs} -> {side.full_gcs}); "
            f"a full GC at {side.crash_besides:,} {side.gc_besides_ms:.1f} ms; "
            f"crash with {side.instances:,} idle besides: "
            f"median {median(side.crash_full_ms):.2f} ms, "
            f"p99 {p99(side.crash_full_ms):.2f} ms, max {max(side.crash_full_ms):.2f} ms")
        if side.paired_ratios:
            lines.append(f"{'':>7}  paired rounds, updates/s at {SMALL} / at {side.instances:,}, ratio: "
                         + ", ".join(f"{small:,.0f}/{full:,.0f} {full / small:.2f}" for small, full in side.paired)
                         + f" (unpaired: {side.updates_per_s / side.small_updates_per_s:.2f})")
    ratio = t.kib_per_instance / p.kib_per_instance if p.kib_per_instance > 0 else float("nan")
    lines.append(f"memory per instance: threads / pooled = {ratio:.1f}x")
    lines.append("overall: " + ("PASS" if result.passed else "MISS"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a target is missed in a full run (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_POOLED:,} pooled, {QUICK_THREADS} threaded")
    ap.add_argument("--pooled", type=int, default=None, help=f"pooled instances (default {FULL_POOLED:,})")
    ap.add_argument("--threads", type=int, default=None, help=f"thread-per-actor instances (default {FULL_THREADS:,})")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    ap.add_argument("--no-freeze", dest="freeze", action="store_false",
                    help="leave the heap unfrozen before the crashes (to compare with draas_actors.heap's freeze)")
    ap.add_argument("--side", choices=("pool", "threads"), help=argparse.SUPPRESS)  # a child measuring one layout
    ap.add_argument("--instances", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--updates", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kills", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    updates = args.updates or (QUICK_UPDATES if args.quick else FULL_UPDATES)
    kills = args.kills or (QUICK_KILLS if args.quick else FULL_KILLS)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.side:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
            side = measure_side(args.side, args.instances, updates, kills, pathlib.Path(workdir), say,
                                freeze=args.freeze)
        print(json.dumps(asdict(side)))
        return 0
    result = run(
        pooled=args.pooled or (QUICK_POOLED if args.quick else FULL_POOLED),
        threads=args.threads or (QUICK_THREADS if args.quick else FULL_THREADS),
        updates=updates, kills=kills, target=FULL_POOLED, say=None if args.json else say, freeze=args.freeze,
    )
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
