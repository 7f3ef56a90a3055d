"""Control-plane start with many stored instances: how long ``ControlPlane.start`` takes, per instance, and the stop.

    python -m bench.plane_start [--instances N] [--quick] [--json]

0. untimed: a control plane with no instances is started on a fresh data directory, ``instances`` records are
   saved straight into its store (observed Docker instances, Running, restart policy Never: resuming them touches
   no engine), and it is stopped;
1. start: a new control plane is started on that data directory; timed from ``start()`` until it returns (every
   stored instance has its actor and its ``Resume`` queued), then until each actor has handled its ``Resume``
   (its record is current: one ``GetInstance`` per actor, asked all at once);
2. stop: ``stop()`` of that control plane, timed.

One run measures one layout: the code as it is (thread-per-actor unless the pooled runtime is in), so it prints the
figure and the cost per instance rather than a before/after. Target (issue 11): start with 50,000 stored instances
within 10 s; the run passes when its own start, however many instances it has, is within that.

Where the time goes with a thread per actor (cProfile of the supervisor's RegisterInstances, 5,000 stored, on a
loaded 2-core machine): 2.0 of its 3.2 s is ``Thread.start`` waiting for each new actor thread to get the GIL while
the actors already started handle their ``Resume``; pykka's uuid4 per actor 0.25 s. Batches of 1,000 save the
supervisor round trip per instance, which is small beside that. Stopping no longer goes through pykka's registry,
whose unregister scans a list: 50,000 refs unregistered in random order cost 19 s there (20,000: 2.2 s).
With 10,000 stored, three runs alternating the code before and after that change (2 cores shared with other
work, load 5-24): every actor resumed in 11.1/16.8/24.9 s before and 10.4/14.8/19.0 s after (within the noise);
stop() 4.4/4.5/6.3 s before and 2.7/2.8/3.1 s after. This benchmark alone, same machine: 8.1 s, 0.81 ms an instance.

On the pool (the default runtime), 50,000 stored: a cProfile of every thread showed the store busy saving the
50,000 records it had just loaded (each actor's Resume saved its unchanged record). Resume now says whether the
record is the stored one, and such a resume saves nothing. Three runs alternating before and after
(``--instances 50000``, load 1.3-4.3): every actor resumed in 9.00/8.32/7.83 s before and 5.25/4.98/5.33 s after;
start() returned in 7.35/4.26/4.57 s and 3.97/3.77/3.96 s; stop() 3.82/3.15/3.32 s and 2.11/2.17/2.38 s. What is
left (profiled): the supervisor making 50,000 actors (pykka's ``Actor.__init__``, a uuid4 and a ``threading.Event``
each, and the workload), and the store decoding 50,000 records (``record_from_json``, with each restart policy's
validation), each on its own thread.
"""
from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pykka

from draas_actors.messages import Flush, GetInstance, SaveRecord
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord
from draas_actors.system import ControlPlane, SystemSettings

FULL_INSTANCES = 50_000  # the size, on the pool (the default); a thread each stops near 22,000 threads
QUICK_INSTANCES = 200
TARGET_S = 10.0
ASK_S = 120.0  # for one ask that waits behind a whole start-up's work

Say = Callable[[str], None]


@dataclass(frozen=True)
class PlaneStartResult:
    instances: int
    start_s: float  # start() returned
    resumed_s: float  # every actor has handled its Resume
    stop_s: float
    threads: int  # in the process once started

    @property
    def per_instance_ms(self) -> float:
        return 1000 * self.resumed_s / max(1, self.instances)

    @property
    def passed(self) -> bool:
        return self.resumed_s <= TARGET_S

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "per_instance_ms": self.per_instance_ms, "target_s": TARGET_S, "passed": self.passed}


def _settings(data_dir: pathlib.Path) -> SystemSettings:
    return SystemSettings(data_dir=data_dir, sweep_interval=60.0, ask_timeout=ASK_S)


def _seed(data_dir: pathlib.Path, instances: int) -> None:
    cp = ControlPlane(_settings(data_dir))
    cp.start(fresh_store=True)
    try:
        store = cp.refs.store
        assert store is not None
        now = time.time()
        for index in range(instances):
            store.tell(SaveRecord(InstanceRecord(
                instance_id=InstanceId(f"stored-{index:06d}"), platform=Platform.DOCKER, status=Status.RUNNING,
                restart_policy=RestartPolicy(mode=RestartMode.NEVER), status_since=now, created_at=now,
                updated_at=now, workload_id=f"container-{index:06d}",
            )))
        store.ask(Flush(), timeout=ASK_S)
    finally:
        cp.stop(timeout=ASK_S)


def _await_resumed(cp: ControlPlane) -> None:
    """Every actor answers an ask only after the messages told before it: its Resume among them."""
    futures = [entry.ref.ask(GetInstance(), block=False) for entry in cp.directory.snapshot().values()]
    for future in futures:
        future.get(timeout=ASK_S)


def run(*, instances: int = FULL_INSTANCES, say: Say | None = None) -> PlaneStartResult:
    progress = say or (lambda _: None)
    logging.getLogger("draas_actors").setLevel(logging.WARNING)  # no INFO line per resumed instance
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        data_dir = pathlib.Path(tmp)
        progress(f"seeding {instances} stored instances ...")
        _seed(data_dir, instances)
        progress("starting ...")
        cp = ControlPlane(_settings(data_dir))
        began = time.monotonic()
        try:
            cp.start()
            start_s = time.monotonic() - began
            _await_resumed(cp)
            resumed_s = time.monotonic() - began
            threads = threading.active_count()
            assert len(cp.directory) == instances, f"{len(cp.directory)} of {instances} instances started"
        finally:
            stopping = time.monotonic()
            cp.stop(timeout=ASK_S)
            stop_s = time.monotonic() - stopping
    leftovers = [ref for ref in pykka.ActorRegistry.get_all() if ref.is_alive()]
    assert not leftovers, f"{len(leftovers)} actors still running after stop()"
    return PlaneStartResult(instances, start_s, resumed_s, stop_s, threads)


def render(result: PlaneStartResult) -> str:
    return "\n".join([
        f"control-plane start with {result.instances:,} stored instances (one layout: the code as it is)",
        f"  start() returned     {result.start_s:8.2f} s",
        (f"  every actor resumed  {result.resumed_s:8.2f} s   {result.per_instance_ms:.3f} ms per instance"
         f"   (target <= {TARGET_S:g} s for 50,000)"),
        f"  stop()               {result.stop_s:8.2f} s",
        f"  threads once started {result.threads:8,}",
        "overall: " + ("PASS" if result.passed else "MISS"),
    ])


def main(argv: list[str] | None = None) -> int:
    """CLI; exit status 1 when a full run misses its target (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.plane_start", description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=None, help=f"stored instances (default {FULL_INSTANCES})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_INSTANCES} stored instances")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    instances = args.instances or (QUICK_INSTANCES if args.quick else FULL_INSTANCES)
    result = run(instances=instances, say=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
