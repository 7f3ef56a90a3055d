"""The control plane runs its instance actors on the actor pool (or a thread each, when configured so)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Literal

import pykka

from draas_actors.actors.pool import ActorSettings, PooledActor
from draas_actors.messages import StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.system import ControlPlane, SystemSettings

INSTANCES = 300


def pushed_plane(tmp_path: Path, runtime: Literal["pool", "threads"]) -> tuple[ControlPlane, int]:
    """A started control plane with INSTANCES observed instances, and the thread count before they came."""
    cp = ControlPlane(SystemSettings(data_dir=tmp_path, store_path=":memory:",
                                     actors=ActorSettings(runtime=runtime, pool_threads=4, pool_max_threads=8)))
    cp.start()
    before = threading.active_count()
    now = time.time()
    reports = tuple(
        StatusReport(instance_id=InstanceId(f"c{i}"), status=Status.RUNNING, source="docker-daemon",
                     observed_at=now, platform=Platform.DOCKER)
        for i in range(INSTANCES)
    )
    outcomes = cp.submit(reports)
    assert isinstance(outcomes, tuple) and len(outcomes) == INSTANCES
    return cp, before


def instance_ref(cp: ControlPlane, instance_id: str) -> pykka.ActorRef[Any]:
    entry = cp.directory.get(InstanceId(instance_id))
    assert entry is not None
    ref = entry.ref
    assert isinstance(ref, pykka.ActorRef)
    return ref


def test_instance_actors_share_the_pools_threads_which_stop_with_the_control_plane(tmp_path: Path) -> None:
    cp, before = pushed_plane(tmp_path, "pool")
    try:
        assert issubclass(instance_ref(cp, "c7").actor_class, PooledActor)
        # The pool's workers (more than 4 only if the watchdog saw all 4 stuck on a loaded machine) and its watchdog.
        assert threading.active_count() - before <= 8 + 1
        assert cp.get_instance("c299").status is Status.RUNNING
    finally:
        cp.stop(timeout=5)
    assert cp.runtime.pool is not None and cp.runtime.pool.workers == 0


def test_instance_actors_can_still_have_a_thread_each(tmp_path: Path) -> None:
    cp, before = pushed_plane(tmp_path, "threads")
    try:
        assert not issubclass(instance_ref(cp, "c7").actor_class, PooledActor)
        assert threading.active_count() - before >= INSTANCES
    finally:
        cp.stop(timeout=5)


def test_a_pushed_report_runs_on_the_pushing_thread_when_its_actor_is_idle_but_an_exit_goes_to_the_pool(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from draas_actors.actors.instance import InstanceActor

    handled: list[tuple[Status, str]] = []
    real = InstanceActor.on_receive

    def recording(self: InstanceActor, message: Any) -> Any:
        if isinstance(message, StatusReport):
            handled.append((message.status, threading.current_thread().name))
        return real(self, message)

    monkeypatch.setattr(InstanceActor, "on_receive", recording)
    cp, _ = pushed_plane(tmp_path, "pool")
    try:
        ref = instance_ref(cp, "c7")
        deadline = time.monotonic() + 5.0
        while ref.actor_inbox._state != 2:  # type: ignore[attr-defined]  # idle: the first push is done with it
            assert time.monotonic() < deadline, "the actor never went idle"
            time.sleep(0.005)
        now = time.time()
        common: dict[str, Any] = dict(instance_id=InstanceId("c7"), source="docker-daemon", platform=Platform.DOCKER)
        cp.submit((StatusReport(status=Status.STOPPED, observed_at=now + 1, **common),))
        assert handled[-1] == (Status.STOPPED, threading.current_thread().name)
        cp.submit((StatusReport(status=Status.RUNNING, observed_at=now + 2, **common),))
        cp.submit((StatusReport(status=Status.FAILED, observed_at=now + 3, exit_code=1, **common),))
        status, thread = handled[-1]
        assert status is Status.FAILED and thread.startswith("instance-pool")
        assert cp.get_instance("c7").last_exit_code == 1
    finally:
        cp.stop(timeout=5)
