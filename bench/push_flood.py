"""Push flood: a good daemon's push latency alone, then while a rogue identity floods the push route.

    python -m bench.push_flood [--updates N] [--flood-seconds S] [--rogues P] [--connections C] [--rogue-batch B]
                               [--quick] [--json]

One control plane (ControlPlane + falcon app + waitress on 127.0.0.1, 8 threads as in production) with two daemon
identities: ``good`` (scope ``good-*``, its own rate of 5,000/s so the benchmark measures the flood, not its own
limit) and ``rogue`` (scope ``rogue-*``, the default limit: 200 updates/s, burst 400).

0. untimed: the good daemon's 40 instances are created (by a first update each) and 40 more updates warm up;
1. alone: the good daemon (its own process) pushes ``updates`` updates, one request at a time on one keep-alive
   connection as the push client does, alternating Stopped/Running over 20 instances; each request's latency is
   recorded (a 429 would be waited out per its Retry-After, and the wait counted in the latency);
2. flood: ``rogues`` separate processes with ``connections`` keep-alive connections each push single updates (or,
   with ``--rogue-batch B``, batches of B updates) as fast as they can for ``flood_seconds``, ignoring 429s; once
   every rogue has had its first answer the good daemon pushes another ``updates`` updates (its other 20
   instances), timed the same way.

Applied means: every update of the good daemon was answered 202 and made a ``StatusChanged`` at an in-process
subscriber (the updates alternate, so each one is a change), and each instance ends in the status it was last
sent. Target: the good daemon's p99 under the flood is at most twice its p99 alone. Percentiles are nearest-rank.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import requests

from draas_actors.api.app import create_app
from draas_actors.messages import StatusChanged
from draas_actors.model import Status
from draas_actors.security import (
    AuthSettings,
    Credential,
    SecuritySettings,
    daemon_identity,
    hash_key,
)
from draas_actors.system import ControlPlane

from .compare import ms
from .flood_clients import INSTANCES, KEY_VARIABLE, PUSH_PATH, Pushed
from .plane import served_control_plane
from .stats import median, p99

FULL_UPDATES = 1000
FULL_FLOOD_S = 10.0
QUICK_UPDATES = 200
QUICK_FLOOD_S = 3.0
ROGUES = 2
CONNECTIONS = 4
TARGET_RATIO = 2.0
GOOD_RATE = 5000.0
DEADLINE_S = 15.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class RogueCounts:
    sent: int
    accepted: int  # 202
    limited: int  # 429
    other: int  # any other status
    errors: int  # connection errors


@dataclass(frozen=True)
class PushFloodResult:
    updates: int
    flood_seconds: float
    rogues: int
    connections: int
    rogue_batch: int  # 0: single updates
    alone_ms: list[float]
    flood_ms: list[float]
    good_accepted: int  # of 2 x updates: answered 202
    good_applied: int  # of 2 x updates: seen as a StatusChanged, and every instance ends in its last status
    good_retried: int  # 429s the good daemon waited out (expected: 0)
    flood_covered: bool  # the rogues were still pushing when the good daemon's last update was answered
    rogue: RogueCounts

    @property
    def ratio(self) -> float:
        return p99(self.flood_ms) / p99(self.alone_ms)

    @property
    def all_applied(self) -> bool:
        return self.good_accepted == self.good_applied == 2 * self.updates

    @property
    def passed(self) -> bool:
        return self.all_applied and self.flood_covered and self.rogue.limited > 0 and self.ratio <= TARGET_RATIO

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "push_flood",
            "updates": self.updates,
            "flood_seconds": self.flood_seconds,
            "rogue_processes": self.rogues,
            "rogue_connections": self.rogues * self.connections,
            "rogue_batch": self.rogue_batch,
            "alone": {"median_ms": median(self.alone_ms), "p99_ms": p99(self.alone_ms)},
            "flood": {"median_ms": median(self.flood_ms), "p99_ms": p99(self.flood_ms)},
            "p99_ratio": self.ratio,
            "target": f"p99 ratio <= {TARGET_RATIO:g}",
            "good": {"sent": 2 * self.updates, "accepted": self.good_accepted, "applied": self.good_applied,
                     "retried_429": self.good_retried, "flood_covered": self.flood_covered},
            "rogue": asdict(self.rogue),
            "passed": self.passed,
            "samples_ms": {"alone": self.alone_ms, "flood": self.flood_ms},
        }


def _spawn(key: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.flood_clients", *args], stdout=subprocess.PIPE, text=True,
        env={**os.environ, KEY_VARIABLE: key}, cwd=str(pathlib.Path(__file__).resolve().parents[1]),
    )


@contextlib.contextmanager
def _children(procs: list[subprocess.Popen[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    """On the way out any child still running is killed by its Popen (our own child, by PID)."""
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            if proc.stdout is not None:
                proc.stdout.close()


def _await_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # the rogue prints "ready" within DEADLINE_S or gives up
    if line != "ready":
        raise RuntimeError(f"a rogue did not start pushing (said {line!r}, exit {proc.poll()})")


def _last_json(proc: subprocess.Popen[str], timeout: float) -> Any:
    out, _ = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"a pusher failed (exit {proc.returncode})")
    return json.loads(lines[-1])


# -- the good daemon and the control plane -------------------------------------------------------------


class _Changes:
    """Counts StatusChanged per instance at an in-process subscriber."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count: Counter[str] = Counter()

    def __call__(self, event: StatusChanged) -> None:
        with self._cond:
            self.count[event.instance_id] += 1
            self._cond.notify_all()

    def wait_for(self, expected: dict[str, int], deadline_s: float = DEADLINE_S) -> bool:
        with self._cond:
            if not self._cond.wait_for(lambda: all(self.count[i] >= n for i, n in expected.items()), deadline_s):
                return False
            return all(self.count[i] == n for i, n in expected.items())


@dataclass(frozen=True)
class _Plane:
    cp: ControlPlane
    port: int
    good_key: str
    rogue_key: str
    changes: _Changes


@contextlib.contextmanager
def _control_plane(data_dir: pathlib.Path) -> Iterator[_Plane]:
    good_key, rogue_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    security = SecuritySettings(auth=AuthSettings(credentials=(
        Credential(identity=daemon_identity("good", instances=("good-*",), rate=GOOD_RATE, burst=int(GOOD_RATE)),
                   key_hashes=(hash_key(good_key),)),
        Credential(identity=daemon_identity("rogue", instances=("rogue-*",)), key_hashes=(hash_key(rogue_key),)),
    )))
    changes = _Changes()
    with served_control_plane(data_dir, lambda cp: create_app(cp, security=security), changes,
                              queue_size=1_000_000, threads=8) as plane:
        yield _Plane(plane.cp, plane.port, good_key, rogue_key, changes)


def _push_in_child(port: int, key: str, updates: int, prefix: str) -> Pushed:
    with _children([_spawn(key, "good", str(port), str(updates), prefix)]) as (proc,):
        return Pushed(**_last_json(proc, DEADLINE_S + updates * 0.1))


def _create(port: int, key: str, prefixes: tuple[str, ...]) -> None:
    """Each instance's first update creates it; that happens here, untimed, so the phases time updates only."""
    with requests.Session() as session:
        for prefix in prefixes:
            for k in range(INSTANCES):
                body = {"instanceId": f"{prefix}-{k}", "status": "Running", "source": "good", "platform": "docker"}
                response = session.post(f"http://127.0.0.1:{port}{PUSH_PATH}", json=body,
                                         headers={"X-API-Key": key}, timeout=10)
                response.raise_for_status()


def _applied(plane: _Plane, pushed: Pushed) -> int:
    """How many of the pushed updates were applied: all of an instance's, or none of them."""
    expected = {instance: 1 + sent for instance, sent in pushed.sent.items()}  # 1: the creation
    if not plane.changes.wait_for(expected):
        return sum(min(plane.changes.count[i] - 1, n) for i, n in pushed.sent.items())
    applied = 0
    for instance, status in pushed.last_status.items():
        if plane.cp.get_instance(instance).status is Status(status):
            applied += pushed.sent[instance]
    return applied


def run(*, updates: int = FULL_UPDATES, flood_seconds: float = FULL_FLOOD_S, rogues: int = ROGUES,
        connections: int = CONNECTIONS, rogue_batch: int = 0, say: Say | None = None) -> PushFloodResult:
    """Alone, then under the flood, on one control plane."""
    progress = say or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp, _quiet_queue_warnings(), \
            _control_plane(pathlib.Path(tmp)) as plane:
        _create(plane.port, plane.good_key, ("good-alone", "good-flood"))
        _push_in_child(plane.port, plane.good_key, 2 * INSTANCES, "good-warmup")
        progress(f"alone: {updates} updates ...")
        alone = _push_in_child(plane.port, plane.good_key, updates, "good-alone")
        what = f"batches of {rogue_batch}" if rogue_batch else "single updates"
        progress(f"flood: {rogues} rogue processes x {connections} connections of {what} for {flood_seconds:g} s, "
                 f"and {updates} good updates ...")
        with _children([]) as procs:
            for i in range(rogues):
                procs.append(_spawn(plane.rogue_key, "rogue", str(plane.port), str(flood_seconds),
                                    str(connections), str(i), str(rogue_batch)))
            for proc in procs:
                _await_ready(proc)
            flood = _push_in_child(plane.port, plane.good_key, updates, "good-flood")
            covered = all(proc.poll() is None for proc in procs)
            counts = [_last_json(proc, flood_seconds + DEADLINE_S) for proc in procs]
        applied = _applied(plane, alone) + _applied(plane, flood)
    rogue = RogueCounts(**{k: sum(c[k] for c in counts) for k in ("sent", "accepted", "limited", "other", "errors")})
    return PushFloodResult(
        updates=updates, flood_seconds=flood_seconds, rogues=rogues, connections=connections, rogue_batch=rogue_batch,
        alone_ms=alone.latencies_ms, flood_ms=flood.latencies_ms, good_accepted=alone.accepted + flood.accepted,
        good_applied=applied, good_retried=alone.retried + flood.retried, flood_covered=covered, rogue=rogue,
    )


@contextlib.contextmanager
def _quiet_queue_warnings() -> Iterator[None]:
    """waitress warns at every queued task, which a flood is made of; the result says what matters."""
    queue_log = logging.getLogger("waitress.queue")
    level = queue_log.level
    queue_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        queue_log.setLevel(level)


def render(result: PushFloodResult) -> str:
    alone, flood = result.alone_ms, result.flood_ms
    rogue = result.rogue
    what = f"batches of {result.rogue_batch}" if result.rogue_batch else "single updates"
    lines = [
        (f"push flood: {result.updates} sequential good updates alone, then under {result.rogues} rogue "
         f"processes x {result.connections} connections of {what} for {result.flood_seconds:g} s; "
         "p99 is nearest-rank"),
        f"  good alone        median {ms(median(alone)):>9}   p99 {ms(p99(alone)):>9}",
        f"  good under flood  median {ms(median(flood)):>9}   p99 {ms(p99(flood)):>9}",
        f"  p99 ratio         {result.ratio:.2f}x   (target <= {TARGET_RATIO:g}x)",
        (f"  good: {2 * result.updates} sent, {result.good_accepted} accepted, {result.good_applied} applied, "
         f"{result.good_retried} waited out a 429; flood covered the whole run: {result.flood_covered}"),
        (f"  rogue: {rogue.sent} requests answered ({rogue.sent / result.flood_seconds:,.0f}/s), "
         f"{rogue.limited} x 429, {rogue.accepted} accepted, {rogue.other} other, {rogue.errors} connection errors"),
        "overall: " + ("PASS" if result.passed else "MISS"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a full run misses its target (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.push_flood", description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=None, help=f"good updates per phase (default {FULL_UPDATES})")
    ap.add_argument("--flood-seconds", type=float, default=None, help=f"default {FULL_FLOOD_S:g}")
    ap.add_argument("--rogues", type=int, default=ROGUES, help="rogue processes")
    ap.add_argument("--connections", type=int, default=CONNECTIONS, help="keep-alive connections per rogue")
    ap.add_argument("--rogue-batch", type=int, default=0,
                    help="the rogue sends batches of this many updates (default: single updates)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_UPDATES} updates, {QUICK_FLOOD_S:g} s of flood")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    updates = args.updates or (QUICK_UPDATES if args.quick else FULL_UPDATES)
    seconds = args.flood_seconds or (QUICK_FLOOD_S if args.quick else FULL_FLOOD_S)
    result = run(updates=updates, flood_seconds=seconds, rogues=args.rogues, connections=args.connections,
                 rogue_batch=args.rogue_batch,
                 say=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
