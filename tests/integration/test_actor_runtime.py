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
