"""Stream push: a daemon's push latency with no stream open, then with 200 live SSE streams reading every change.

    python -m bench.stream_push [--updates N] [--streams S] [--rounds R] [--quick] [--json]

One control plane (ControlPlane + falcon app + waitress on 127.0.0.1, 8 threads as in production; room for the
streams: [stream] maxStreams and the server's connection limits raised above ``streams``), with a daemon identity
``good`` (its own rate of 5,000/s, so the benchmark measures the streams, not its limit) and a read key.

0. untimed: the daemon's instances are created (by a first update each; 20 per side and round, so that every
   timed push is a change) and 40 more updates warm up;
then ``rounds`` times (default 2, so that both sides see the same drift of a shared machine), ``updates / rounds``
pushes a side:
1. alone: the daemon (its own process, bench/flood_clients.py) pushes single updates, one request at a time on one
   keep-alive connection as the push client does; each request's latency is recorded;
2. streams: ``streams`` SSE readers (one more process, bench/stream_readers.py: a socket each, on one thread) open
   ``GET /api/status/stream`` and read every change; once every stream is open the daemon pushes as many updates,
   timed the same way; then every reader must see the last change, in cursor order, and the readers leave.

Target: the daemon's p99 with the streams open is at most 1.5x its p99 alone. Percentiles are nearest-rank.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from draas_actors.api.app import create_app
from draas_actors.api.server import ServerLimits
from draas_actors.messages import StatusChanged
from draas_actors.security import (
    READ,
    AuthSettings,
    Credential,
    SecuritySettings,
    daemon_identity,
    hash_key,
    operator_identity,
)
from draas_actors.streams import StreamSettings

from .compare import ms
from .flood_clients import INSTANCES, Pushed
from .plane import served_control_plane
from .push_flood import _children, _create, _last_json, _spawn
from .stats import median, p99
from .stream_readers import KEY_VARIABLE as READ_KEY_VARIABLE

FULL_UPDATES = 1000
QUICK_UPDATES = 150
STREAMS = 200
ROUNDS = 2  # alone, with streams, alone, with streams: the two sides see the same drift of a shared machine
TARGET_RATIO = 1.5
GOOD_RATE = 5000.0
DEADLINE_S = 60.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class ReadersReport:
    readers: int
    caught_up: int  # readers that saw the last change
    in_order: bool  # every reader's ids rose
    ended: int  # streams the server ended (expected: 0)
    events_min: int  # a reader's events (in every round: that round's pushes with the streams open)
    events_max: int


@dataclass(frozen=True)
class StreamPushResult:
    updates: int  # a side, over all rounds
    streams: int
    rounds: int
    poll_seconds: float
    alone_ms: list[float]
    streams_ms: list[float]
    accepted: int  # of 2 x updates: answered 202
    cpu_ms: tuple[float, float]  # the control plane's process CPU per push (all its threads): alone, with streams
    open_streams: int  # draas_open_streams while the daemon pushed
    readers: ReadersReport

    @property
    def ratio(self) -> float:
        return p99(self.streams_ms) / p99(self.alone_ms)

    @property
    def delivered(self) -> bool:
        r = self.readers
        return r.caught_up == r.readers == self.streams and r.in_order and r.ended == 0

    @property
    def passed(self) -> bool:
        return (self.accepted == 2 * self.updates and self.open_streams == self.streams and self.delivered
                and self.ratio <= TARGET_RATIO)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "stream_push",
            "updates": self.updates,
            "streams": self.streams,
            "rounds": self.rounds,
            "poll_seconds": self.poll_seconds,
            "alone": {"median_ms": median(self.alone_ms), "p99_ms": p99(self.alone_ms)},
            "with_streams": {"median_ms": median(self.streams_ms), "p99_ms": p99(self.streams_ms)},
            "p99_ratio": self.ratio,
            "target": f"p99 ratio <= {TARGET_RATIO:g}",
            "accepted": self.accepted,
            "cpu_ms_per_push": {"alone": self.cpu_ms[0], "with_streams": self.cpu_ms[1]},
            "open_streams": self.open_streams,
            "readers": self.readers.__dict__,
            "passed": self.passed,
            "samples_ms": {"alone": self.alone_ms, "with_streams": self.streams_ms},
        }


def _ignore(_: StatusChanged) -> None:
    """served_control_plane's subscriber: this benchmark counts changes at its SSE readers instead."""


@contextlib.contextmanager
def _readers(port: int, key: str, streams: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.stream_readers", str(port), str(streams)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, env={**os.environ, READ_KEY_VARIABLE: key},
        cwd=str(pathlib.Path(__file__).resolve().parents[1]),
    )
    with _children([proc]):
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"the SSE readers did not open their streams (said {line!r})")
            yield proc
        finally:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()


def _push(port: int, key: str, updates: int, prefix: str) -> Pushed:
    with _children([_spawn(key, "good", str(port), str(updates), prefix)]) as (proc,):
        return Pushed(**_last_json(proc, DEADLINE_S + updates * 0.1))


def run(*, updates: int = FULL_UPDATES, streams: int = STREAMS, rounds: int = ROUNDS,
        poll_seconds: float = StreamSettings.poll_seconds, say: Say | None = None) -> StreamPushResult:
    """``rounds`` times: alone, then with ``streams`` open; on one control plane, ``updates`` pushes a side."""
    progress = say or (lambda _: None)
    good_key, read_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    security = SecuritySettings(auth=AuthSettings(credentials=(
        Credential(identity=daemon_identity("good", instances=("good-*",), rate=GOOD_RATE, burst=int(GOOD_RATE)),
                   key_hashes=(hash_key(good_key),)),
        Credential(identity=operator_identity("reader", READ), key_hashes=(hash_key(read_key),)),
    )))
    room = streams + 32
    limits = ServerLimits(connection_limit=room, connections_per_address=room)
    alone: list[Pushed] = []
    with_streams: list[Pushed] = []
    cpu_s = [0.0, 0.0]
    open_streams: list[int] = []
    reports: list[ReadersReport] = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, served_control_plane(
        pathlib.Path(tmp), lambda cp: create_app(cp, security=security), _ignore, threads=8, limits=limits,
        stream=StreamSettings(max_streams=room, poll_seconds=poll_seconds),
    ) as plane:
        # Each round's pushes go to instances of their own (each push a change): created here, untimed.
        _create(plane.port, good_key, tuple(f"good-{side}{r}" for r in range(rounds) for side in ("alone", "streams")))
        _push(plane.port, good_key, 2 * INSTANCES, "good-warmup")
        for r, share in enumerate(_shares(updates, rounds)):
            progress(f"round {r + 1} of {rounds}: {share} updates alone ...")
            cpu = time.process_time()
            alone.append(_push(plane.port, good_key, share, f"good-alone{r}"))
            cpu_s[0] += time.process_time() - cpu
            progress(f"round {r + 1} of {rounds}: {streams} SSE readers, and {share} updates ...")
            with _readers(plane.port, read_key, streams) as readers:
                open_streams.append(int(plane.cp.metrics.open_streams._value.get()))
                cpu = time.process_time()
                with_streams.append(_push(plane.port, good_key, share, f"good-streams{r}"))
                cpu_s[1] += time.process_time() - cpu
                assert readers.stdin is not None
                readers.stdin.write(f"{plane.cp.feed.head}\n")
                readers.stdin.flush()
                reports.append(ReadersReport(**_last_json(readers, DEADLINE_S)))
            wait_until_closed = time.monotonic() + DEADLINE_S
            while plane.cp.streams.open and time.monotonic() < wait_until_closed:  # the next round starts alone
                time.sleep(0.02)
    return StreamPushResult(
        updates=updates, streams=streams, rounds=rounds, poll_seconds=poll_seconds,
        alone_ms=[ms_ for pushed in alone for ms_ in pushed.latencies_ms],
        streams_ms=[ms_ for pushed in with_streams for ms_ in pushed.latencies_ms],
        accepted=sum(p.accepted for p in alone + with_streams),
        cpu_ms=(cpu_s[0] * 1000 / updates, cpu_s[1] * 1000 / updates), open_streams=min(open_streams),
        readers=ReadersReport(
            readers=streams, caught_up=min(r.caught_up for r in reports), in_order=all(r.in_order for r in reports),
            ended=sum(r.ended for r in reports), events_min=min(r.events_min for r in reports),
            events_max=max(r.events_max for r in reports),
        ),
    )


def _shares(updates: int, rounds: int) -> list[int]:
    """``updates`` split over ``rounds``, as evenly as whole numbers go."""
    return [updates // rounds + (1 if r < updates % rounds else 0) for r in range(rounds)]


def render(result: StreamPushResult) -> str:
    alone, streams, r = result.alone_ms, result.streams_ms, result.readers
    lines = [
        (f"stream push: {result.updates} sequential daemon pushes alone and {result.updates} with {result.streams} "
         f"SSE streams open (polling every {result.poll_seconds:g} s) and reading every change, in {result.rounds} "
         "rounds of each; p99 is nearest-rank"),
        f"  alone             median {ms(median(alone)):>9}   p99 {ms(p99(alone)):>9}",
        f"  with streams      median {ms(median(streams)):>9}   p99 {ms(p99(streams)):>9}",
        f"  p99 ratio         {result.ratio:.2f}x   (target <= {TARGET_RATIO:g}x)",
        (f"  pushes: {2 * result.updates} sent, {result.accepted} accepted; draas_open_streams "
         f"{result.open_streams} while pushing"),
        (f"  control plane CPU per push (all its threads): alone {ms(result.cpu_ms[0])}, with streams "
         f"{ms(result.cpu_ms[1])}"),
        (f"  readers: {r.caught_up} of {r.readers} saw the last change, in cursor order: {r.in_order}, "
         f"{r.events_min}..{r.events_max} events each, {r.ended} ended by the server"),
        "overall: " + ("PASS" if result.passed else "MISS"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a full run misses its target (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.stream_push", description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=None, help=f"pushes per phase (default {FULL_UPDATES})")
    ap.add_argument("--streams", type=int, default=STREAMS, help="open SSE streams while the daemon pushes")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of (alone, with streams)")
    ap.add_argument("--poll", type=float, default=StreamSettings.poll_seconds,
                    help="[stream] pollSeconds: how often each stream looks for new changes")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_UPDATES} pushes per phase")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    updates = args.updates or (QUICK_UPDATES if args.quick else FULL_UPDATES)
    result = run(updates=updates, streams=args.streams, rounds=args.rounds, poll_seconds=args.poll,
                 say=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
