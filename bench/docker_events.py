"""Docker event -> control plane latency, and start-up resync time: our DockerDaemon against the design's naive one.

    python -m bench.docker_events [--kills N] [--containers N] [--quick] [--json]

Each side gets its own fresh control plane (ControlPlane + falcon app + waitress on 127.0.0.1) and its own
labelled containers (``network_mode="none"``, the test image), and runs alone:

1. start-up: ``containers`` labelled containers exist (``kills`` of them running ``sleep 600``, the rest only
   created); the daemon starts; the figure is daemon start -> the last instance's first ``StatusChanged`` at an
   in-process subscriber of the control plane;
2. die -> StatusChanged: each running container's PID 1 is SIGKILLed from the host (so the engine emits ``die``
   with exit code 137 and no ``kill`` event), one at a time; the figure is the engine's ``die`` ``timeNano``
   (read from our own subscription to the engine's events) -> ``StatusChanged`` ->Failed at the subscriber.

Both ends are wall-clock times on this machine (the engine's clock is the same clock). The peer follows the
upstream design literally: ``docker events --format '{{json .}}'`` as a subprocess, a fresh ``requests.post``
per event, and at start ``docker.from_env().containers.list(all=True)`` (one inspect per container) with one POST
per container. Percentiles are nearest-rank: with fewer than 100 kills p99 is the worst kill.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import docker
import docker.errors
import requests

from daemons.docker_daemon import DaemonSettings, DockerDaemon
from daemons.push_client import PushClient, PushSettings
from draas_actors.messages import StatusChanged
from draas_actors.model import Status
from draas_actors.security import LimitSettings

from .compare import Metric, table
from .plane import DaemonPlane, daemon_control_plane

TEST_IMAGE = "draas-test-busybox:latest"
FULL_KILLS = 60
FULL_CONTAINERS = 200
QUICK_KILLS = 5
QUICK_CONTAINERS = 20
DEADLINE_S = 15.0
TARGET_DIE_P99_MS = 20.0
TARGET_STARTUP_MS = 1000.0
BENCH_LABEL = "draas.bench"
PARALLEL = 8  # engine requests in flight while setting up and cleaning up

log = logging.getLogger(__name__)
Say = Callable[[str], None]


@dataclass(frozen=True)
class SideResult:
    die_to_status_ms: list[float]  # engine die timeNano -> StatusChanged ->Failed at the subscriber
    startup_ms: float  # daemon start -> every container's first StatusChanged at the subscriber
    containers: int


@dataclass(frozen=True)
class DockerEventsResult:
    kills: int
    containers: int
    ours: SideResult
    naive: SideResult

    @property
    def metrics(self) -> list[Metric]:
        return [
            Metric("(1) engine die -> StatusChanged Failed", self.ours.die_to_status_ms,
                   self.naive.die_to_status_ms, "naive", "p99", TARGET_DIE_P99_MS),
            Metric(f"(2) daemon start -> all {self.containers} statuses", [self.ours.startup_ms],
                   [self.naive.startup_ms], "naive", "median", TARGET_STARTUP_MS),
        ]

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "docker_events",
            "kills": self.kills,
            "containers": self.containers,
            "metrics": [m.summary() for m in self.metrics],
            "passed": self.passed,
            "samples_ms": {"ours": asdict(self.ours), "naive": asdict(self.naive)},
        }


# -- the peer: the upstream design's daemon, taken literally -----------------------------------------


class NaiveDockerDaemon:
    """``docker events`` piped through ``json.loads`` into one fresh ``requests.post`` per event."""

    STATUS: ClassVar[dict[str, str]] = {
        "create": "Pending", "start": "Running", "restart": "Running", "destroy": "Removed",
    }

    def __init__(self, url: str, api_key: str, labels: list[str]) -> None:
        self.url, self.headers, self.labels = url + "/api/status/updates", {"X-API-Key": api_key}, labels
        self.proc: subprocess.Popen[str] | None = None
        self.stopping = threading.Event()

    def post(self, instance_id: str, status: str, metadata: dict[str, Any]) -> None:
        body: dict[str, Any] = {"instanceId": instance_id, "status": status, "source": "NaiveDockerDaemon",
                "metadata": metadata, "platform": "docker"}
        requests.post(self.url, json=body, headers=self.headers, timeout=5)

    def sync(self) -> None:
        client = docker.from_env()
        try:
            for c in client.containers.list(all=True, filters={"label": self.labels}):
                code = c.attrs["State"]["ExitCode"]
                status = {"running": "Running", "created": "Pending"}.get(
                    c.status, "Stopped" if code == 0 else "Failed")
                self.post(c.labels["draas.instanceId"], status, {"containerId": c.id, "exitCode": code})
        finally:
            client.close()

    def run(self) -> None:
        self.sync()
        filters = [arg for label in self.labels for arg in ("--filter", f"label={label}")]
        self.proc = subprocess.Popen(["docker", "events", *filters, "--format", "{{json .}}"],
                                     stdout=subprocess.PIPE, text=True)
        if self.stopping.is_set():
            self.proc.terminate()
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            attrs = event.get("Actor", {}).get("Attributes", {})
            action, instance_id = event.get("Action", ""), attrs.get("draas.instanceId")
            status = self.STATUS.get(action)
            if action == "die":
                status = "Stopped" if attrs.get("exitCode") == "0" else "Failed"
            if status and instance_id:
                self.post(instance_id, status, {"containerId": event["id"], "eventAction": action,
                                                "exitCode": attrs.get("exitCode", "")})

    def stop(self) -> None:
        self.stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # our own child, by its Popen


# -- measuring -----------------------------------------------------------------------------------------


class _Recorder:
    """A bus subscriber stamping every StatusChanged with time.time() on arrival."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[tuple[float, StatusChanged]] = []

    def __call__(self, event: StatusChanged) -> None:
        now = time.time()
        with self._cond:
            self.events.append((now, event))
            self._cond.notify_all()

    def wait(self, what: str, match: Callable[[list[tuple[float, StatusChanged]]], Any],
             deadline_s: float = DEADLINE_S) -> Any:
        """The first truthy ``match(events)``; TimeoutError after deadline_s."""
        with self._cond:
            found = self._cond.wait_for(lambda: match(self.events), deadline_s)
        if not found:
            raise TimeoutError(f"no {what} within {deadline_s} s")
        return found


class _DieWatcher:
    """Our own subscription to the engine's ``die`` events for the bench's containers: container id -> timeNano."""

    def __init__(self, client: docker.DockerClient, label: str) -> None:
        self._cond = threading.Condition()
        self.die_ns: dict[str, int] = {}
        self._stream = client.api.events(filters={"type": "container", "event": "die", "label": [label]},
                                         decode=True)
        self._thread = threading.Thread(target=self._read, name="bench-die-watcher", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream raises in many ways when closed under it
            for event in self._stream:
                with self._cond:
                    self.die_ns.setdefault(event["Actor"]["ID"], int(event["timeNano"]))
                    self._cond.notify_all()

    def wait(self, container_id: str, deadline_s: float = DEADLINE_S) -> int:
        with self._cond:
            if not self._cond.wait_for(lambda: container_id in self.die_ns, deadline_s):
                raise TimeoutError(f"no die event for {container_id[:12]} within {deadline_s} s")
            return self.die_ns[container_id]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(5.0)


class _Containers:
    """Creates the side's labelled containers and removes exactly those (by id) at the end."""

    def __init__(self, client: docker.DockerClient, side_label: str, prefix: str) -> None:
        self.client, self.side_label, self.prefix = client, side_label, prefix
        self.ids: list[str] = []
        self._lock = threading.Lock()

    def labels(self) -> list[str]:
        return ["draas.managed=true", f"{BENCH_LABEL}={self.side_label}"]

    def create(self, name: str, command: list[str]) -> str:
        container = self.client.api.create_container(
            TEST_IMAGE, command, labels={"draas.managed": "true", BENCH_LABEL: self.side_label,
                                         "draas.instanceId": f"{self.prefix}-{name}"},
            host_config=self.client.api.create_host_config(network_mode="none"),
        )
        with self._lock:
            self.ids.append(container["Id"])
        return str(container["Id"])

    def instance_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def remove_all(self) -> None:
        def remove(container_id: str) -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True, v=True)
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(remove, list(self.ids)))
        # Anything that carries this side's label and escaped the id list (it cannot, but a leak is costly).
        for row in self.client.api.containers(all=True, filters={"label": [f"{BENCH_LABEL}={self.side_label}"]}):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(row["Id"], force=True, v=True)


def _first_status_of_all(instance_ids: set[str]) -> Callable[[list[tuple[float, StatusChanged]]], float | None]:
    def match(events: list[tuple[float, StatusChanged]]) -> float | None:
        seen: set[str] = set()
        for stamp, event in events:
            if event.instance_id in instance_ids:
                seen.add(event.instance_id)
                if len(seen) == len(instance_ids):
                    return stamp
        return None
    return match


def _status_of(instance_id: str, status: Status, start: int = 0) -> Callable[[list[tuple[float, StatusChanged]]], Any]:
    def match(events: list[tuple[float, StatusChanged]]) -> tuple[float, StatusChanged] | None:
        for stamp, event in events[start:]:
            if event.instance_id == instance_id and event.new_status is status:
                return stamp, event
        return None
    return match


def measure_side(
    side: str, client: docker.DockerClient, *, kills: int, containers: int, run_id: str, workdir: pathlib.Path,
    say: Say,
) -> SideResult:
    """Set up ``containers`` containers (``kills`` running), start the side's daemon, measure (2) then (1)."""
    if not 1 <= kills <= containers:
        raise ValueError("need 1 <= kills <= containers")
    side_label = f"{run_id}-{side}"
    boxes = _Containers(client, side_label, f"bench-{run_id}-{side}")
    watcher: _DieWatcher | None = None
    stop: Callable[[], None] | None = None
    thread: threading.Thread | None = None
    failures: list[BaseException] = []
    try:
        say(f"{side}: creating {containers} containers ({kills} running) ...")
        names = [f"c{i}" for i in range(containers)]
        with ThreadPoolExecutor(PARALLEL) as pool:
            ids = list(pool.map(lambda n: boxes.create(n, ["sleep", "600"]), names))
            list(pool.map(client.api.start, ids[:kills]))
        watcher = _DieWatcher(client, f"{BENCH_LABEL}={side_label}")
        # The peer posts one request per container at start-up, faster than a daemon identity's default request
        # limit (10 at once, then 400/s); a deployment of it would need requestRate raised the same way. Both
        # sides get it: the benchmark measures latency, not the limit.
        with daemon_control_plane(workdir / side, _Recorder(), LimitSettings(push_request_burst=100_000)) as plane:
            if side == "ours":
                daemon = DockerDaemon(
                    DaemonSettings(control_plane_url=plane.base_url, api_key=plane.daemon_key,
                                   label_filter=tuple(boxes.labels()), spool_path=workdir / f"{side}.spool"),
                    push=PushClient(PushSettings(url=plane.base_url, api_key=plane.daemon_key,
                                                 spool_path=workdir / f"{side}.spool")),
                )
                body, stop = daemon.run, daemon.stop
            else:
                naive = NaiveDockerDaemon(plane.base_url, plane.daemon_key, boxes.labels())
                body, stop = naive.run, naive.stop

            def guarded() -> None:
                try:
                    body()
                except BaseException as error:
                    failures.append(error)

            thread = threading.Thread(target=guarded, name=f"bench-{side}-daemon", daemon=True)
            say(f"{side}: daemon start -> {containers} statuses ...")
            t0 = time.time()
            thread.start()
            try:
                return _measure(side, client, plane, boxes, ids, names, kills, t0, watcher, failures, say)
            finally:
                # Before the control plane goes, so that the daemon's last pushes are not refused.
                stop()
                thread.join(10.0)
    finally:
        try:
            if thread is not None and thread.is_alive():
                log.warning("the %s daemon did not stop within 10 s", side)
            if watcher is not None:
                watcher.close()
        finally:
            boxes.remove_all()


def _measure(
    side: str, client: docker.DockerClient, plane: DaemonPlane[_Recorder], boxes: _Containers, ids: list[str],
    names: list[str],
    kills: int, t0: float, watcher: _DieWatcher, failures: list[BaseException], say: Say,
) -> SideResult:
    """(2) from the daemon's start at t0, then (1) over the first ``kills`` (running) containers."""
    containers = len(names)
    everyone = {boxes.instance_id(n) for n in names}
    last = plane.recorder.wait(f"{side}: first status of all {containers}", _first_status_of_all(everyone),
                               deadline_s=max(DEADLINE_S, containers * 0.2))
    startup_ms = (last - t0) * 1000
    # The event stream is open once a new container's creation comes through it. A daemon may still be
    # subscribing when the first probe is created (the naive one lists first, then starts `docker events`),
    # so a probe that is not seen within 2 s is followed by another.
    for attempt in range(1, 6):
        boxes.create(f"probe{attempt}", ["sleep", "600"])
        try:
            plane.recorder.wait(f"{side}: probe {attempt}'s Pending",
                                _status_of(boxes.instance_id(f"probe{attempt}"), Status.PENDING), deadline_s=2.0)
            break
        except TimeoutError:
            if attempt == 5:
                raise
    say(f"{side}: {kills} kills ...")
    die_ms: list[float] = []
    for i in range(kills):
        container_id, instance_id = ids[i], boxes.instance_id(names[i])
        start = len(plane.recorder.events)
        pid = int(client.api.inspect_container(container_id)["State"]["Pid"])
        os.kill(pid, signal.SIGKILL)  # PID 1 of the container, from the host: a die, no kill event
        stamp, _ = plane.recorder.wait(f"{side}: {instance_id} Failed",
                                       _status_of(instance_id, Status.FAILED, start))
        die_ms.append((stamp - watcher.wait(container_id) / 1e9) * 1000)
        if failures:
            raise RuntimeError(f"{side} daemon failed: {failures[0]!r}")
    return SideResult(die_to_status_ms=die_ms, startup_ms=startup_ms, containers=containers)


def run(*, kills: int = FULL_KILLS, containers: int = FULL_CONTAINERS, say: Say | None = None) -> DockerEventsResult:
    """Ours, then the naive peer, each with its own control plane and containers."""
    progress = say or (lambda _: None)
    client = docker.from_env(timeout=60)
    run_id = secrets.token_hex(4)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
            workdir = pathlib.Path(tmp)
            ours = measure_side("ours", client, kills=kills, containers=containers, run_id=run_id,
                                workdir=workdir, say=progress)
            naive = measure_side("naive", client, kills=kills, containers=containers, run_id=run_id,
                                 workdir=workdir, say=progress)
    finally:
        client.close()
    return DockerEventsResult(kills=kills, containers=containers, ours=ours, naive=naive)


def render(result: DockerEventsResult) -> str:
    lines = table(
        f"docker events: {result.kills} kills (host SIGKILL of PID 1) and {result.containers} containers "
        f"at start-up per side; naive = the design's `docker events` + one requests.post per event; "
        f"(2) is one start-up per side; p99 is nearest-rank",
        result.metrics,
        ratio_digits=1,
    )
    lines.append("overall: " + ("PASS" if result.passed else "MISS"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 when a full run misses a target (a quick run is a smoke test: always 0)."""
    ap = argparse.ArgumentParser(prog="python -m bench.docker_events", description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=None, help=f"kills per side (default {FULL_KILLS})")
    ap.add_argument("--containers", type=int, default=None,
                    help=f"containers at start-up per side (default {FULL_CONTAINERS})")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_KILLS} kills, {QUICK_CONTAINERS} containers")
    ap.add_argument("--json", action="store_true", help="print the result as JSON instead of the table")
    args = ap.parse_args(argv)
    kills = args.kills or (QUICK_KILLS if args.quick else FULL_KILLS)
    count = args.containers or (QUICK_CONTAINERS if args.quick else FULL_CONTAINERS)
    result = run(kills=kills, containers=count,
                 say=None if args.json else (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result))
    return 0 if result.passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
