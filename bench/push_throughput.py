"""Push throughput: how many status updates per second the control plane takes, beside the bare app as the ceiling.

    python -m bench.push_throughput [--seconds S] [--connections C] [--clients P] [--batch B] [--quick] [--json]

Three phases, each ``seconds`` long, in one run and one process (waitress with 8 threads, as in production):

1. bare: a falcon app on the same waitress server whose one route reads the body and answers 202 (no auth, no
   validation, no actors, no store): the ceiling of this HTTP stack on this machine;
2. single: the real app (``create_app``) and control plane: each request one update, through authentication,
   the rate limit (set out of the way), validation, the actors and the durable store (a 202 waits for the commit);
3. batch: the same, each request an array of ``batch`` updates.

Load comes from ``clients`` separate processes (bench/throughput_clients.py, so they do not share our GIL), with
``connections`` keep-alive connections in all, to 127.0.0.1. Every update is a change (the statuses alternate).
CPU time and context switches are this process's (every server and actor thread, from getrusage) over the timed
window, divided by the updates answered 202 in it. Targets: 2,500 single updates/s and 25,000 batched.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import falcon

from draas_actors.api.app import create_app
from draas_actors.api.server import HttpServer
from draas_actors.cli import ChangeLog
from draas_actors.messages import StatusChanged
from draas_actors.security import (
    AuthSettings,
    Credential,
    SecuritySettings,
    daemon_identity,
    hash_key,
)
from draas_actors.system import ControlPlane

from . import thread_cpu
from .plane import answers, served_control_plane
from .throughput_clients import KEY_VARIABLE, READY_WITHIN_S

FULL_SECONDS = 10.0
QUICK_SECONDS = 1.0
CONNECTIONS = 16
CLIENTS = 2
BATCH = 100
BATCH_CONNECTIONS = 4
THREADS = 8  # waitress worker threads, as run.py's default
SINGLE_TARGET = 2500.0
BATCH_TARGET = 25000.0
UNLIMITED = 10_000_000  # the pushing identity's rate, burst and request rate: this measures the path, not the limit

Say = Callable[[str], None]


@dataclass(frozen=True)
class Phase:
    name: str
    connections: int
    batch: int  # 0: single updates
    requests: int  # answered 202 in the window
    errors: int  # anything else: refusals, other statuses, connection errors (expected: 0)
    seconds: float
    cpu_s: float  # this process, user + system
    switches: int  # this process, voluntary + involuntary
    threads: tuple[thread_cpu.Share, ...] = ()  # per thread group, per update (with --per-thread)

    @property
    def updates(self) -> int:
        return self.requests * max(1, self.batch)

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_update(self) -> float:
        return 1000 * self.cpu_s / self.updates if self.updates else float("inf")

    @property
    def switches_per_update(self) -> float:
        return self.switches / self.updates if self.updates else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "threads": [asdict(t) for t in self.threads], "updates": self.updates,
                "updates_per_s": self.per_second, "cpu_ms_per_update": self.cpu_ms_per_update,
                "switches_per_update": self.switches_per_update}


@dataclass(frozen=True)
class ThroughputResult:
    bare: Phase
    single: Phase
    batch: Phase

    @property
    def ratio(self) -> float:
        """Single updates/s as a fraction of the bare app's requests/s."""
        return self.single.per_second / self.bare.per_second if self.bare.per_second else 0.0

    @property
    def clean(self) -> bool:
        return all(p.requests > 0 and p.errors == 0 for p in (self.bare, self.single, self.batch))

    @property
    def passed(self) -> bool:
        return self.clean and self.single.per_second >= SINGLE_TARGET and self.batch.per_second >= BATCH_TARGET

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "push_throughput",
            "bare": self.bare.to_json(), "single": self.single.to_json(), "batch": self.batch.to_json(),
            "single_to_bare": self.ratio,
            "target": f"single >= {SINGLE_TARGET:,.0f}/s, batch >= {BATCH_TARGET:,.0f}/s",
            "passed": self.passed,
        }


# -- load from other processes -------------------------------------------------------------------------------


def _spawn(port: int, keys: list[str], seconds: float, connections: int, tag: str, batch: int) -> subprocess.Popen[
        str]:
    instances = max(1, batch) if batch else 16
    return subprocess.Popen(
        [sys.executable, "-m", "bench.throughput_clients", str(port), str(seconds), str(connections), tag,
         str(batch), str(instances)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, KEY_VARIABLE: ",".join(keys)},
        cwd=str(pathlib.Path(__file__).resolve().parents[1]),
    )


def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_nvcsw + ru.ru_nivcsw


def load(name: str, port: int, keys: list[str], *, seconds: float, connections: int, clients: int,
         batch: int, per_thread: bool = False) -> Phase:
    """Run the load generators against ``port``: warm up, then ``seconds`` timed; our CPU over the window.

    Connection ``c`` (of all the processes') pushes with ``keys[c % len(keys)]``."""
    procs: list[subprocess.Popen[str]] = []
    try:
        first = 0
        for i, share in enumerate(_split(connections, clients)):
            mine = [keys[(first + c) % len(keys)] for c in range(share)]
            first += share
            procs.append(_spawn(port, mine, seconds, share, f"{name}{i}", batch))
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()  # "ready" within READY_WITHIN_S, or the child gave up
            if line != "ready":
                raise RuntimeError(f"a load generator did not start (said {line!r}, exit {proc.poll()})")
        cpu0, sw0 = _usage()
        before = thread_cpu.snapshot() if per_thread else None
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        counts = []
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 2 * READY_WITHIN_S)
            lines = out.strip().splitlines()
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"a load generator failed (exit {proc.returncode})")
            counts.append(json.loads(lines[-1]))
        cpu1, sw1 = _usage()
        after = thread_cpu.snapshot() if per_thread else None
    finally:
        for proc in procs:  # our own children, by their Popen
            if proc.poll() is None:
                proc.kill()
                proc.wait(5.0)
    requests = sum(c["accepted"] for c in counts)
    shares = () if before is None or after is None else tuple(
        thread_cpu.per_unit(before, after, requests * max(1, batch)))
    return Phase(
        name=name, connections=connections, batch=batch, threads=shares,
        requests=requests,
        errors=sum(c["limited"] + c["other"] + c["errors"] for c in counts),
        seconds=max(c["elapsed_us"] for c in counts) / 1e6,
        cpu_s=cpu1 - cpu0, switches=sw1 - sw0,
    )


# -- the two servers ------------------------------------------------------------------------------------------


class _Accept:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.bounded_stream.read()
        resp.status = falcon.HTTP_202
        resp.media = {"accepted": 1}


@contextlib.contextmanager
def bare_server() -> Iterator[int]:
    """The ceiling: falcon on the same waitress server, one route that reads the body and answers 202."""
    app = falcon.App()
    app.add_route("/api/status/updates", _Accept())
    app.add_route("/healthz", _Healthz())
    server = HttpServer(app, host="127.0.0.1", port=0, threads=THREADS).start()
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while not answers(f"http://127.0.0.1:{server.port}/healthz"):
            if time.monotonic() > deadline:
                raise TimeoutError("the bare server does not answer /healthz")
            time.sleep(0.02)
        yield server.port
    finally:
        server.stop()


class _Healthz:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


@contextlib.contextmanager
def control_plane(data_dir: pathlib.Path, daemons: int, subscriber: Callable[[StatusChanged], None] | None = None,
                  ) -> Iterator[tuple[ControlPlane, int, list[str]]]:
    """A served control plane that knows ``daemons`` daemon identities (any instance, no practical rate limit),
    with run.py's change log (at INFO, to a file in ``data_dir``) unless another ``subscriber`` is given."""
    keys = [secrets.token_urlsafe(32) for _ in range(daemons)]
    security = SecuritySettings(auth=AuthSettings(credentials=tuple(
        Credential(identity=daemon_identity(f"bench-{i}", rate=UNLIMITED, burst=UNLIMITED, request_rate=UNLIMITED,
                                            request_burst=UNLIMITED), key_hashes=(hash_key(key),))
        for i, key in enumerate(keys))))
    with _logged_to(data_dir / "draas.log"), served_control_plane(
            data_dir, lambda cp: create_app(cp, security=security), subscriber or ChangeLog(), threads=THREADS
    ) as plane:
        yield plane.cp, plane.port, keys


@contextlib.contextmanager
def _logged_to(path: pathlib.Path) -> Iterator[None]:
    """The "draas" logger at INFO into ``path``, as run.py logs (to stderr) by default."""
    logger = logging.getLogger("draas")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """waitress warns at every queued task, which is not what is measured."""
    loggers = [logging.getLogger("waitress.queue")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run(*, seconds: float = FULL_SECONDS, connections: int = CONNECTIONS, clients: int = CLIENTS,
        batch: int = BATCH, batch_connections: int = BATCH_CONNECTIONS, daemons: int | None = None,
        per_thread: bool = False, say: Say | None = None) -> ThroughputResult:
    """``daemons`` identities share the connections (default: one per connection, as each push client has one)."""
    progress = say or (lambda _: None)
    daemons = daemons or connections
    with _quiet():
        progress(f"bare app: {connections} connections for {seconds:g} s ...")
        with bare_server() as port:
            # The same number of distinct keys (unchecked here): waitress's fair queue serves callers by key.
            fake = [secrets.token_urlsafe(32) for _ in range(daemons)]
            bare = load("bare", port, fake, seconds=seconds, connections=connections, clients=clients, batch=0,
                        per_thread=per_thread)
        with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp, \
                control_plane(pathlib.Path(tmp), daemons) as (_, port, keys):
            progress(f"single updates: {connections} connections, {daemons} daemons, for {seconds:g} s ...")
            single = load("single", port, keys, seconds=seconds, connections=connections, clients=clients, batch=0,
                          per_thread=per_thread)
            progress(f"batches of {batch}: {batch_connections} connections for {seconds:g} s ...")
            batched = load("batch", port, keys, seconds=seconds, connections=batch_connections, clients=clients,
                           batch=batch, per_thread=per_thread)
    return ThroughputResult(bare, single, batched)


def render(result: ThroughputResult) -> str:
    def row(p: Phase, label: str) -> str:
        return (f"  {label:<22} {p.per_second:>9,.0f} updates/s   {p.cpu_ms_per_update:6.3f} ms CPU/update   "
                f"{p.switches_per_update:6.1f} switches/update   ({p.updates:,} in {p.seconds:.1f} s, "
                f"{p.errors} errors)")

    def rows(p: Phase, label: str) -> list[str]:
        return [row(p, label), *([thread_cpu.render(list(p.threads))] if p.threads else [])]

    b = result.batch
    return "\n".join([
        f"push throughput: keep-alive connections from separate processes, waitress {THREADS} threads",
        *rows(result.bare, f"bare app ({result.bare.connections} conn)"),
        *rows(result.single, f"single ({result.single.connections} conn)"),
        *rows(b, f"batch {b.batch} ({b.connections} conn)"),
        f"  single / bare         {result.ratio:.2f}",
        f"  targets               single >= {SINGLE_TARGET:,.0f}/s, batch >= {BATCH_TARGET:,.0f}/s",
        "overall: " + ("PASS" if result.passed else "MISS"),
    ])


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a full run misses a target (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.push_throughput", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=None, help=f"per phase (default {FULL_SECONDS:g})")
    ap.add_argument("--connections", type=int, default=CONNECTIONS, help="for the bare and single phases")
    ap.add_argument("--clients", type=int, default=CLIENTS, help="load generator processes")
    ap.add_argument("--batch", type=int, default=BATCH, help="updates per batch")
    ap.add_argument("--batch-connections", type=int, default=BATCH_CONNECTIONS)
    ap.add_argument("--daemons", type=int, default=None,
                    help="daemon identities sharing the connections (default: one per connection)")
    ap.add_argument("--per-thread", action="store_true",
                    help="also each thread group's CPU and context switches per update (from /proc)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per phase")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    result = run(seconds=seconds, connections=args.connections, clients=args.clients, batch=args.batch,
                 batch_connections=args.batch_connections, daemons=args.daemons, per_thread=args.per_thread,
                 say=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
