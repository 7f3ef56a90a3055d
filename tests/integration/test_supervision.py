"""Supervision with real actors and processes: crashed actors come back from stored state, a crash loop is
escalated, a restarted process monitor re-watches every PID, and bad subscribers cannot hurt the bus.

How an instance actor is made to crash: it is told a ``StatusReport`` whose ``metadata`` is a tuple, not a
mapping. ``_on_report`` calls ``metadata.get`` before changing anything, so the handler raises an
``AttributeError`` inside a ``tell`` -- exactly the path of a real bug -- with no monkeypatching and without
touching the stored state. (A message the actor does not know would only be logged by pykka, not crash it.)
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, cast

import pykka
import pytest
import requests

from draas_actors.actors.supervisor import SupervisionSettings
from draas_actors.messages import (
    GetInstance,
    LookupInstance,
    StatusChanged,
    StatusReport,
    SubscriptionFilter,
    WatchProcess,
)
from draas_actors.model import InstanceId
from draas_actors.records import InstanceRecord
from draas_actors.system import ControlPlane
from tests.helpers import (
    ProcessJanitor,
    RunningControlPlane,
    is_running,
    running_control_plane,
    wait_until,
)

Ref = pykka.ActorRef[Any]


def register_sleeper(plane: RunningControlPlane, instance_id: str = "svc") -> int:
    command = ["sleep", f"{60 + random.random():.6f}"]
    view = plane.register({"instanceId": instance_id, "platform": "process", "process": {"command": command}})
    return int(view["runtime"]["pid"])


def instance_ref(cp: ControlPlane, instance_id: str) -> Ref | None:
    assert cp.refs.supervisor is not None
    return cast("Ref | None", cp.refs.supervisor.ask(LookupInstance(InstanceId(instance_id)), timeout=5))


def crash_instance_actor(cp: ControlPlane, instance_id: str) -> Ref:
    """Crash the instance's actor (see the module docstring) and return the dead ref."""
    ref = instance_ref(cp, instance_id)
    assert ref is not None
    record = cast(InstanceRecord, ref.ask(GetInstance(), timeout=5))
    poison = StatusReport(
        instance_id=InstanceId(instance_id),
        status=record.status,  # no transition to check, so the handler reaches metadata.get
        source="crash-test",
        observed_at=time.time(),
        metadata=(),  # type: ignore[arg-type]
    )
    ref.tell(poison)
    wait_until(lambda: not ref.is_alive(), message="the instance actor crashed")
    return ref


def live_replacement(current: Ref | None, dead: Ref) -> Ref | None:
    return current if current is not None and current is not dead and current.is_alive() else None


def replacement(cp: ControlPlane, instance_id: str, dead: Ref) -> Ref:
    ref = wait_until(
        lambda: live_replacement(instance_ref(cp, instance_id), dead),
        message="the supervisor replaced the instance actor",
    )
    assert ref is not None
    return ref


def readyz(plane: RunningControlPlane) -> requests.Response:
    return requests.get(plane.base_url + "/readyz", timeout=5)


def test_a_crashed_instance_actor_is_restarted_from_its_stored_state(plane: RunningControlPlane) -> None:
    pid = register_sleeper(plane)
    before = plane.instance("svc")

    dead = crash_instance_actor(plane.cp, "svc")
    replacement(plane.cp, "svc", dead)

    # Its Resume has been handled once it answers, so the PID is registered with the monitor again.
    resumed = plane.wait_for("svc", lambda v: v["metadata"].get("reason") == "re-adopted")
    assert resumed["status"] == "Running"
    assert resumed["runtime"]["pid"] == pid
    assert resumed["runtime"]["child"] is True
    assert resumed["restartCount"] == before["restartCount"] == 0
    assert plane.transitions("svc") == [("Pending", "Running")]
    assert readyz(plane).status_code == 200

    os.kill(pid, signal.SIGKILL)
    after = plane.wait_for("svc", lambda v: v["restartCount"] == 1 and v["status"] == "Running")
    assert after["lastExitCode"] == -9
    assert after["runtime"]["pid"] != pid


def test_an_instance_actor_that_keeps_crashing_is_escalated(tmp_path: Path, janitor: ProcessJanitor) -> None:
    supervision = SupervisionSettings(max_restarts=2, window=60.0)
    with running_control_plane(tmp_path / "data", supervision=supervision, janitor=janitor) as plane:
        pid = register_sleeper(plane)
        for _ in range(2):
            dead = crash_instance_actor(plane.cp, "svc")
            replacement(plane.cp, "svc", dead)
            plane.wait_for("svc", lambda v: v["metadata"].get("reason") == "re-adopted")

        crash_instance_actor(plane.cp, "svc")

        wait_until(lambda: instance_ref(plane.cp, "svc") is None, message="the supervisor gave up on the actor")
        listed = wait_until(
            lambda: [v for v in plane.get("/api/instances").json()["instances"] if v["status"] == "Failed"]
        )
        assert [v["instanceId"] for v in listed] == ["svc"]
        assert "crashed 2 times" in listed[0]["lastReason"]
        response = readyz(plane)
        assert response.status_code == 503
        assert response.json()["escalated"] == ["instance:svc"]
        failed = wait_until(lambda: [c for c in plane.changes("svc") if c["newStatus"] == "Failed"])
        assert (failed[0]["oldStatus"], failed[0]["source"]) == ("Running", "supervisor")

        # Stopping with its processes still ends this one, which no actor watches any more, without waiting on it.
        started = time.monotonic()
        plane.cp.stop(stop_processes=True, timeout=5.0)
        assert time.monotonic() - started < 2.0
        wait_until(lambda: not is_running(pid), message="the escalated instance's process was stopped")


@pytest.mark.parametrize("how", ["stopped", "crashed"])
def test_a_restarted_process_monitor_watches_every_process_again(
    tmp_path: Path, janitor: ProcessJanitor, how: str
) -> None:
    supervision = SupervisionSettings(check_interval=0.05)  # a clean stop is found by the periodic check
    with running_control_plane(tmp_path / "data", supervision=supervision, janitor=janitor) as plane:
        cp = plane.cp
        pid = register_sleeper(plane)
        old = cp.refs.monitor
        assert old is not None

        if how == "stopped":
            old.stop(timeout=5)
        else:
            # pidfd_open(0) fails with EINVAL: an exception in a tell handler, like any bug would raise.
            old.tell(WatchProcess(InstanceId("nobody"), 0, 0.0, old))
        new = wait_until(lambda: live_replacement(cp.refs.monitor, old), message="the supervisor restarted the monitor")
        assert new is not None
        cp.health()  # the supervisor has finished that restart, so every instance was told to re-watch
        plane.instance("svc")  # and this instance has handled it: its WatchProcess is in the new monitor's inbox
        assert not old.is_alive() and new.is_alive()

        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        after = plane.wait_for("svc", lambda v: v["restartCount"] == 1 and v["status"] == "Running")
        assert time.monotonic() - killed_at < 2.0  # the sweep is a minute away: this came through a pidfd
        assert after["lastExitCode"] == -9
        assert readyz(plane).status_code == 200


def test_a_slow_and_a_failing_subscriber_neither_delay_a_fast_one_nor_stop_the_bus(
    plane: RunningControlPlane,
) -> None:
    count = 20
    only_web = SubscriptionFilter(instance_ids=frozenset({"web"}))
    release = threading.Event()
    slow_calls: list[StatusChanged] = []
    failing_calls: list[StatusChanged] = []
    received: list[tuple[StatusChanged, float]] = []

    def slow(event: StatusChanged) -> None:
        slow_calls.append(event)
        release.wait(10)  # stuck until the test ends

    def failing(event: StatusChanged) -> None:
        failing_calls.append(event)
        raise RuntimeError("a subscriber bug")

    def fast(event: StatusChanged) -> None:
        received.append((event, time.monotonic()))

    cp = plane.cp
    cp.subscribe(slow, only_web)
    cp.subscribe(failing, only_web)
    cp.subscribe(fast, only_web)
    try:
        sent_at: list[float] = []
        expected: list[str] = []
        for i in range(count):
            status = "Running" if i % 2 == 0 else "Unhealthy"
            sent_at.append(time.monotonic())
            assert plane.push({"instanceId": "web", "status": status, "source": "DockerDaemon"}).status_code == 202
            expected.append(status)

        wait_until(lambda: len(received) == count, message=f"the fast subscriber got {count} events")
        assert [e.new_status.value for e, _ in received] == expected
        latencies = [at - sent for (_, at), sent in zip(received, sent_at, strict=False)]
        assert max(latencies) < 0.5, latencies
        assert len(slow_calls) == 1  # it really is stuck on its first event
        wait_until(lambda: len(failing_calls) == count, message="the failing subscriber is called for every event")
        assert cp.refs.bus is not None and cp.refs.bus.is_alive()
        assert readyz(plane).status_code == 200
    finally:
        release.set()
