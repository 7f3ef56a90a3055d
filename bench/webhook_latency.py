"""Webhook latency: a local process crash to the webhook at a receiver, and nine endpoints beside a dead tenth.

    python -m bench.webhook_latency [--kills N] [--changes N] [--quick] [--json]

One in-process control plane (its own store, as in production) and receivers on 127.0.0.1 (``bench.receiver``).

1. crash -> webhook: one process instance (``sleep 3600``, restart policy on-failure) is SIGKILLed ``kills`` times
   by PID; a webhook filtered to that instance's moves into Failed is timed from the signal to the receiver having
   read the request's body (both ``CLOCK_MONOTONIC``, one process). Target: p99 <= 50 ms.
2. fan-out: nine webhooks on nine receivers that answer at once get changes (sequential pushes, each committed
   before the next); each delivery is timed from the push to its receiver. ``changes`` changes are timed alone and
   ``changes`` beside a tenth webhook whose receiver never answers, in alternating blocks (alone, beside, alone,
   ...: the tenth is created for each "beside" block and deleted after it), so that the load of a shared machine
   drifts over both alike. Target: the nine's p99 beside the dead one is at most 1.5x their p99 alone.

Percentiles are nearest-rank, so with fewer than 100 samples p99 is the worst one.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import pathlib
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from draas_actors.messages import StatusChanged, StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord, ProcessSpec
from draas_actors.system import ControlPlane, SystemSettings

from .compare import ms
from .receiver import Receiver, receiving
from .stats import median, p99

FULL_KILLS = 50
QUICK_KILLS = 5
FULL_CHANGES = 200
QUICK_CHANGES = 20
HEALTHY = 9
SETTLE_S = 0.3  # the child runs longer than resetAfter before each kill: every kill is restarted at once
DEADLINE_S = 10.0
TARGET_CRASH_P99_MS = 50.0
TARGET_RATIO = 1.5
CRASHING = InstanceId("bench-webhook-sleep")
FANOUT = InstanceId("bench-webhook-fanout")
FULL_BLOCKS = 5
QUICK_BLOCKS = 2

Say = Callable[[str], None]


@dataclass(frozen=True)
class WebhookLatencyResult:
    kills: int
    changes: int
    crash_ms: list[float]  # SIGKILL -> webhook received
    alone_ms: list[float]  # push -> each of the nine receivers, without the dead endpoint
    beside_dead_ms: list[float]  # the same, with a tenth webhook that never answers
    all_delivered: bool  # every change reached every healthy receiver, once, in order
    detected_ms: list[float] = field(default_factory=list)  # SIGKILL -> the bus published Failed (not a target)

    @property
    def ratio(self) -> float:
        return p99(self.beside_dead_ms) / p99(self.alone_ms)

    @property
    def passed(self) -> bool:
        return self.all_delivered and p99(self.crash_ms) <= TARGET_CRASH_P99_MS and self.ratio <= TARGET_RATIO

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "webhook_latency",
            "kills": self.kills,
            "changes": self.changes,
            "crash_to_webhook": {"median_ms": median(self.crash_ms), "p99_ms": p99(self.crash_ms),
                                 "target": f"p99 <= {TARGET_CRASH_P99_MS:g} ms"},
            "crash_to_status_changed": {"median_ms": median(self.detected_ms or [0.0]),
                                        "p99_ms": p99(self.detected_ms or [0.0])},
            "nine_alone": {"median_ms": median(self.alone_ms), "p99_ms": p99(self.alone_ms)},
            "nine_beside_dead": {"median_ms": median(self.beside_dead_ms), "p99_ms": p99(self.beside_dead_ms)},
            "p99_ratio": self.ratio,
            "target": f"p99 ratio <= {TARGET_RATIO:g}",
            "all_delivered": self.all_delivered,
            "passed": self.passed,
            "samples_ms": {"crash": self.crash_ms, "detected": self.detected_ms, "alone": self.alone_ms,
                           "beside_dead": self.beside_dead_ms},
        }


@contextmanager
def _control_plane(data_dir: pathlib.Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(SystemSettings(data_dir=data_dir, sweep_interval=60.0))
    try:
        cp.start()
        yield cp
    finally:
        cp.stop(stop_processes=True, timeout=5.0)


def _wait(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {DEADLINE_S} s")
        time.sleep(0.002)


def _running_pid(cp: ControlPlane, other_than: int) -> int | None:
    record = cp.get_instance(CRASHING)
    if record.status is Status.RUNNING and record.runtime is not None and record.runtime.pid != other_than:
        return record.runtime.pid
    return None


class _Detected:
    """A bus subscriber noting when each Failed change of the crashing instance was published (before its commit):
    what the control plane took to see the crash, apart from what the webhook took after."""

    def __init__(self) -> None:
        self.at: list[float] = []

    def __call__(self, change: StatusChanged) -> None:
        if change.instance_id == CRASHING and change.new_status is Status.FAILED:
            self.at.append(time.monotonic())


def measure_crashes(cp: ControlPlane, kills: int) -> tuple[list[float], list[float]]:
    """SIGKILL the instance's process ``kills`` times; each time, the time until its Failed webhook arrives, and
    until the bus published its change."""
    latencies: list[float] = []
    detected: list[float] = []
    seen = _Detected()
    cp.subscribe(seen)
    with receiving() as receiver:
        cp.webhooks.create({"url": receiver.url, "filter": {"instanceIds": [CRASHING], "statuses": ["Failed"]}})
        cp.register(InstanceRecord(
            instance_id=CRASHING, platform=Platform.PROCESS,
            process=ProcessSpec(command=("sleep", "3600"), stop_timeout=2.0),
            restart_policy=RestartPolicy(mode=RestartMode.ON_FAILURE, reset_after=0.2, max_restarts=1000),
        ))
        pid = _wait("Running process", lambda: _running_pid(cp, 0))
        try:
            for kill in range(kills):
                time.sleep(SETTLE_S)  # pacing, not synchronisation: longer than resetAfter
                t0 = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                got = receiver.wait_for(kill + 1, DEADLINE_S)
                if len(got) <= kill:
                    raise TimeoutError(f"no webhook for kill {kill + 1} within {DEADLINE_S} s")
                latencies.append((got[kill].at - t0) * 1000)
                if len(seen.at) > kill:
                    detected.append((seen.at[kill] - t0) * 1000)
                pid = _wait("replacement process", functools.partial(_running_pid, cp, pid))
        finally:
            cp.deregister(CRASHING, stop_workload=True)
    return latencies, detected


def _push(cp: ControlPlane, seq: int) -> float:
    """One committed change (alternating Running/Stopped); returns when it was pushed."""
    t0 = time.monotonic()
    report = StatusReport(
        instance_id=FANOUT, status=Status.RUNNING if seq % 2 else Status.STOPPED,
        source="bench", observed_at=time.time(), metadata={"seq": str(seq)}, platform=Platform.DOCKER,
    )
    cp.submit((report,))
    return t0


def _timed(cp: ControlPlane, receivers: list[Receiver], first_seq: int, changes: int) -> list[float]:
    """Push ``changes`` changes one at a time; each receiver's latency for each."""
    latencies: list[float] = []
    done = [len(r.received) for r in receivers]
    for seq in range(first_seq, first_seq + changes):
        t0 = _push(cp, seq)
        for index, receiver in enumerate(receivers):
            got = receiver.wait_for(done[index] + 1, DEADLINE_S)
            if len(got) <= done[index]:
                raise TimeoutError(f"receiver {index} got no change {seq} within {DEADLINE_S} s")
            latencies.append((got[done[index]].at - t0) * 1000)
            done[index] += 1
    return latencies


def measure_fan_out(
    cp: ControlPlane, healthy: list[Receiver], dead: Receiver, changes: int, blocks: int
) -> tuple[list[float], list[float]]:
    """The healthy receivers' latencies alone and beside the dead one, ``changes`` each, in alternating blocks."""
    alone: list[float] = []
    beside: list[float] = []
    size = max(1, changes // blocks)
    seq = 0
    for _ in range(blocks):
        alone += _timed(cp, healthy, seq, size)
        seq += size
        webhook, _secret = cp.webhooks.create({"url": dead.url, "filter": {"instanceIds": [FANOUT]}})
        beside += _timed(cp, healthy, seq, size)
        seq += size
        cp.webhooks.delete(webhook.webhook_id)  # its attempt in flight is cut off
    return alone, beside


def _in_order(receivers: list[Receiver], total: int) -> bool:
    expected = list(range(total))
    for receiver in receivers:
        seqs = [json.loads(r.body)["data"]["metadata"]["seq"] for r in receiver.received]
        if [int(s) for s in seqs] != expected:
            return False
    return True


def run(
    *, kills: int = FULL_KILLS, changes: int = FULL_CHANGES, blocks: int = FULL_BLOCKS, say: Say | None = None
) -> WebhookLatencyResult:
    say = say or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="draas-bench-webhooks-") as tmp, ExitStack() as stack:
        cp = stack.enter_context(_control_plane(pathlib.Path(tmp)))
        say(f"crash -> webhook: {kills} kills")
        crash_ms, detected_ms = measure_crashes(cp, kills)
        healthy = [stack.enter_context(receiving()) for _ in range(HEALTHY)]
        for receiver in healthy:
            cp.webhooks.create({"url": receiver.url, "filter": {"instanceIds": [FANOUT]}})
        dead = stack.enter_context(receiving(hold=True))
        say(f"fan-out: {changes} changes to {HEALTHY} endpoints alone and {changes} beside a dead tenth, "
            f"in {blocks} blocks each")
        alone_ms, beside_ms = measure_fan_out(cp, healthy, dead, changes, blocks)
        time.sleep(0.05)  # late duplicates would show in the order check
        delivered = _in_order(healthy, len(alone_ms + beside_ms) // HEALTHY) and len(dead.received) >= 1
    return WebhookLatencyResult(kills, changes, crash_ms, alone_ms, beside_ms, delivered, detected_ms)


def render(result: WebhookLatencyResult) -> str:
    crash, alone, beside = result.crash_ms, result.alone_ms, result.beside_dead_ms
    lines = [
        (f"webhook latency: {result.kills} process crashes; {result.changes} changes to {HEALTHY} endpoints alone, "
         f"and {result.changes} beside a dead tenth, in alternating blocks; p99 is nearest-rank"),
        f"  crash -> webhook          median {ms(median(crash)):>9}   p99 {ms(p99(crash)):>9}"
        f"   (target p99 <= {TARGET_CRASH_P99_MS:g} ms)",
        f"  (crash -> StatusChanged   median {ms(median(result.detected_ms or [0.0])):>9}   "
        f"p99 {ms(p99(result.detected_ms or [0.0])):>9}: the part before the webhook)",
        f"  nine endpoints alone      median {ms(median(alone)):>9}   p99 {ms(p99(alone)):>9}",
        f"  nine beside a dead one    median {ms(median(beside)):>9}   p99 {ms(p99(beside)):>9}",
        f"  p99 ratio                 {result.ratio:.2f}x   (target <= {TARGET_RATIO:g}x)",
        f"  every change reached every healthy endpoint once, in order: {result.all_delivered}",
        "overall: " + ("PASS" if result.passed else "MISS"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a full run misses its target (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.webhook_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=None, help=f"process crashes (default {FULL_KILLS})")
    ap.add_argument("--changes", type=int, default=None, help=f"changes per fan-out phase (default {FULL_CHANGES})")
    ap.add_argument("--quick", action="store_true",
                    help=f"{QUICK_KILLS} kills, {QUICK_CHANGES} changes in {QUICK_BLOCKS} blocks")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    kills = args.kills or (QUICK_KILLS if args.quick else FULL_KILLS)
    changes = args.changes or (QUICK_CHANGES if args.quick else FULL_CHANGES)
    result = run(kills=kills, changes=changes, blocks=QUICK_BLOCKS if args.quick else FULL_BLOCKS,
                 say=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
