"""The push path without a single queue: pushes reach instance actors through the directory, not the supervisor;
the supervisor never waits on another actor; a control plane stops only its own actors."""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pykka
import pytest
import requests

from draas_actors.actors.instance import InstanceActor
from draas_actors.actors.store import StoreActor
from draas_actors.actors.supervisor import SupervisionSettings, SupervisorActor
from draas_actors.errors import Conflict
from draas_actors.messages import LoadRecord, RegisterInstances, StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord
from draas_actors.security import AuthSettings, SecuritySettings, daemon_identity
from tests.helpers import ProcessJanitor, RunningControlPlane, holds_for, running_control_plane, wait_until
from tests.security_fixtures import credential

# A push that does not need the supervisor should take milliseconds; this leaves room for a loaded 2-core machine
# while staying far below the 5 s ask timeout that a push stuck behind the supervisor would wait.
PROMPT = 1.5


def report(instance_id: str, status: str) -> dict[str, str]:
    return {"instanceId": instance_id, "status": status, "source": "DockerDaemon"}


def timed_push(plane: RunningControlPlane, body: Any) -> tuple[requests.Response, float]:
    began = time.monotonic()
    response = plane.push(body)
    return response, time.monotonic() - began


@dataclass(frozen=True)
class Hold:
    """Keeps the supervisor busy until ``release`` is set (bounded by a timeout); ``holding`` is set once it is."""

    release: threading.Event
    holding: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def holdable_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    original = SupervisorActor.on_receive

    def on_receive(self: SupervisorActor, message: Any) -> Any:
        if isinstance(message, Hold):
            message.holding.set()
            message.release.wait(10.0)
            return None
        return original(self, message)

    monkeypatch.setattr(SupervisorActor, "on_receive", on_receive)


def test_pushes_to_known_instances_do_not_wait_for_a_busy_supervisor(
    holdable_supervisor: None, plane: RunningControlPlane
) -> None:
    for name in ("web-1", "web-2"):
        assert plane.push(report(name, "Running")).status_code == 202
    supervisor = plane.cp.refs.supervisor
    assert supervisor is not None
    release = threading.Event()
    supervisor.tell(Hold(release))
    try:
        for name in ("web-1", "web-2"):
            response, took = timed_push(plane, report(name, "Stopped"))
            assert response.status_code == 202, response.text
            assert took < PROMPT, f"a push to {name} took {took:.2f}s while the supervisor was busy"
            assert plane.instance(name)["status"] == "Stopped"
    finally:
        release.set()


def test_a_batch_that_creates_an_instance_keeps_its_reports_in_order(plane: RunningControlPlane) -> None:
    assert plane.push(report("known", "Running")).status_code == 202
    # Each with its own observedAt: reports of one source at the same instant would be taken for repeats.
    now = time.time()
    batch = [
        {**report(name, status), "observedAt": now + index / 10}
        for index, (name, status) in enumerate(
            [("new", "Running"), ("known", "Stopped"), ("new", "Stopped"), ("new", "Running")]
        )
    ]

    response = plane.push(batch)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 4
    assert plane.transitions("new") == [("Unknown", "Running"), ("Running", "Stopped"), ("Stopped", "Running")]
    assert plane.instance("known")["status"] == "Stopped"


def crash(plane: RunningControlPlane, instance_id: str) -> pykka.ActorRef[Any]:
    """As in test_supervision: a report with no status makes the actor's tell handler raise."""
    entry = plane.cp.directory.get(instance_id)
    assert entry is not None
    entry.ref.tell(
        StatusReport(
            instance_id=InstanceId(instance_id),
            status=None,  # type: ignore[arg-type]  # no transition leads to it, and its .value raises
            source="crash-test",
            observed_at=time.time(),
        )
    )
    wait_until(lambda: not entry.ref.is_alive(), message="the instance actor crashed")
    return entry.ref


def hold_record_loads(monkeypatch: pytest.MonkeyPatch, instance_id: str) -> tuple[list[LoadRecord], threading.Event]:
    """The supervisor's loads of ``instance_id``'s record are kept (not answered) until the event is set, without
    blocking the store, which every other push needs."""
    held: list[LoadRecord] = []
    loaded = threading.Event()
    original = StoreActor.on_receive

    def on_receive(self: StoreActor, message: Any) -> Any:
        if (
            isinstance(message, LoadRecord) and message.reply_to is not None and message.instance_id == instance_id
            and not loaded.is_set()
        ):
            held.append(message)
            return None
        return original(self, message)

    monkeypatch.setattr(StoreActor, "on_receive", on_receive)
    return held, loaded


def test_an_instance_whose_restart_waits_for_its_record_delays_no_other_instance(
    monkeypatch: pytest.MonkeyPatch, plane: RunningControlPlane
) -> None:
    held, loaded = hold_record_loads(monkeypatch, "slow")
    for name in ("slow", "fast-1", "fast-2"):
        assert plane.push(report(name, "Running")).status_code == 202
    dead = crash(plane, "slow")
    wait_until(lambda: held, message="the supervisor asked the store for the record of the crashed actor")

    for name in ("fast-1", "fast-2"):
        response, took = timed_push(plane, report(name, "Stopped"))
        assert response.status_code == 202, response.text
        assert took < PROMPT, f"a push to {name} took {took:.2f}s while another actor's restart was pending"
    assert plane.cp.health().instances == 3  # the supervisor answers: it is not waiting for the record

    # A push for "slow" is queued for its replacement, and answered once the replacement has applied it.
    answers: list[requests.Response] = []
    pusher = threading.Thread(target=lambda: answers.append(plane.push(report("slow", "Stopped"))))
    pusher.start()
    try:
        holds_for(lambda: not answers, 0.3, message="the push for the restarting instance waits for its replacement")
        loaded.set()
        store = plane.cp.refs.store
        assert store is not None
        store.tell(held[0])
    finally:
        pusher.join(10.0)
    assert answers and answers[0].status_code == 202, answers[0].text if answers else "no answer"
    entry = plane.cp.directory.get("slow")
    assert entry is not None and entry.ref is not dead and entry.ref.is_alive()
    assert plane.instance("slow")["status"] == "Stopped"


def test_an_instance_deregistered_while_its_actor_waits_for_a_replacement_is_gone_for_good(
    monkeypatch: pytest.MonkeyPatch, plane: RunningControlPlane
) -> None:
    held, loaded = hold_record_loads(monkeypatch, "slow")
    assert plane.push(report("slow", "Running")).status_code == 202
    crash(plane, "slow")
    wait_until(lambda: held, message="the supervisor asked the store for the record of the crashed actor")

    response = requests.delete(plane.base_url + "/api/instances/slow", headers=plane.operator_headers, timeout=5)

    assert response.status_code == 204, response.text
    loaded.set()
    store = plane.cp.refs.store
    assert store is not None
    store.tell(held[0])  # the answer comes too late: nothing is restarted
    assert plane.cp.health().instances == 0  # the supervisor has handled the late answer
    assert plane.get("/api/instances/slow").status_code == 404
    assert plane.get("/api/instances").json()["instances"] == []


def test_registering_a_batch_with_an_existing_id_registers_none_of_it(plane: RunningControlPlane) -> None:
    assert plane.push(report("taken", "Running")).status_code == 202
    supervisor = plane.cp.refs.supervisor
    assert supervisor is not None
    now = time.time()
    never = RestartPolicy(mode=RestartMode.NEVER)
    fresh, taken = (  # observed Docker instances, as auto-create makes them
        InstanceRecord(
            instance_id=InstanceId(name), platform=Platform.DOCKER, restart_policy=never, status=Status.UNKNOWN,
            created_at=now, status_since=now,
        )
        for name in ("fresh", "taken")
    )

    with pytest.raises(Conflict):
        supervisor.ask(RegisterInstances((fresh, taken), start=False), timeout=5)

    assert "fresh" not in plane.cp.directory
    assert plane.get("/api/instances/fresh").status_code == 404


@pytest.fixture
def two_planes(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[tuple[RunningControlPlane, RunningControlPlane]]:
    with running_control_plane(tmp_path / "a", janitor=janitor) as a, running_control_plane(
        tmp_path / "b", janitor=janitor
    ) as b:
        yield a, b


def test_stopping_one_control_plane_leaves_another_in_the_same_process_working(
    two_planes: tuple[RunningControlPlane, RunningControlPlane],
) -> None:
    a, b = two_planes
    for plane in (a, b):
        assert plane.push(report("web-1", "Running")).status_code == 202
    a_instance = a.cp.directory.get("web-1")
    assert a_instance is not None

    a.server.stop()
    a.cp.stop(timeout=5.0)

    assert not a_instance.ref.is_alive()
    assert all(ref is None or not ref.is_alive() for ref in a.cp.refs.core().values())
    assert all(ref is not None and ref.is_alive() for ref in b.cp.refs.core().values())
    response = b.push(report("web-1", "Stopped"))
    assert response.status_code == 202, response.text
    assert b.instance("web-1")["status"] == "Stopped"
    assert b.cp.ready()[0]


def test_instance_actors_stay_out_of_pykkas_registry_and_stop_with_their_plane(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    with running_control_plane(tmp_path / "data", janitor=janitor) as plane:
        for index in range(3):
            assert plane.push(report(f"web-{index}", "Running")).status_code == 202
        refs = [entry.ref for entry in plane.cp.directory.snapshot().values()]
        assert len(refs) == 3
        # pykka's registry removes each stopped actor from a list: O(N^2) for N instance actors.
        assert pykka.ActorRegistry.get_by_class(InstanceActor) == []
    assert not any(ref.is_alive() for ref in refs)


def test_a_record_load_lost_on_the_way_is_asked_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      janitor: ProcessJanitor) -> None:
    dropped: list[LoadRecord] = []
    original = StoreActor.on_receive

    def on_receive(self: StoreActor, message: Any) -> Any:
        # The first load of "slow"'s record vanishes, as it would with a store that crashed on it.
        if isinstance(message, LoadRecord) and message.reply_to is not None and not dropped:
            dropped.append(message)
            return None
        return original(self, message)

    monkeypatch.setattr(StoreActor, "on_receive", on_receive)
    supervision = SupervisionSettings(ask_timeout=0.3, check_interval=0.1)
    with running_control_plane(tmp_path / "data", supervision=supervision, janitor=janitor) as plane:
        assert plane.push(report("slow", "Running")).status_code == 202
        dead = crash(plane, "slow")

        def replaced() -> bool:
            entry = plane.cp.directory.get("slow")
            return entry is not None and entry.ref is not dead and entry.ref.is_alive()

        wait_until(replaced, message="the supervisor asked for the record again and restarted the actor")
        assert len(dropped) == 1
        assert plane.push(report("slow", "Stopped")).status_code == 202
        assert plane.instance("slow")["status"] == "Stopped"


def test_a_push_checked_before_its_instance_was_created_on_another_platform_does_not_reach_it(
    holdable_supervisor: None, tmp_path: Path, janitor: ProcessJanitor
) -> None:
    """The scope check reads the directory before routing; if another push creates the instance in between, the
    supervisor checks again against the platform it was created with."""
    docker_key = secrets.token_hex(16)
    security = SecuritySettings(auth=AuthSettings(credentials=(
        credential(daemon_identity("docker-only", platforms=frozenset({Platform.DOCKER})), docker_key),
    )))
    # No liveness check in the supervisor's inbox during the test: the inbox holds exactly the two pushes.
    supervision = SupervisionSettings(check_interval=60.0)
    with running_control_plane(tmp_path / "data", security=security, supervision=supervision, janitor=janitor) as plane:
        supervisor = plane.cp.refs.supervisor
        assert supervisor is not None
        hold = Hold(threading.Event())
        supervisor.tell(hold)
        assert hold.holding.wait(5.0), "the supervisor took the Hold"
        answers: dict[str, requests.Response] = {}

        def push(name: str, key: str, body: dict[str, Any]) -> None:
            answers[name] = requests.post(
                plane.base_url + "/api/status/updates", json=body, headers={"X-API-Key": key}, timeout=10
            )

        pod = {"instanceId": "x", "status": "Running", "source": "KubernetesDaemon", "platform": "kubernetes"}
        container = {"instanceId": "x", "status": "Running", "source": "DockerDaemon", "platform": "docker"}
        pushers = [threading.Thread(target=push, args=("pod", plane.daemon_key, pod))]
        inbox = cast(queue.Queue[Any], supervisor.actor_inbox)  # a ThreadingActor's inbox
        try:
            pushers[0].start()
            # Both pushes pass their scope check ("x" is unknown) and wait in the supervisor's inbox, the pod first.
            wait_until(lambda: inbox.qsize() >= 1, message="the pod's push waits for the supervisor")
            pushers.append(threading.Thread(target=push, args=("container", docker_key, container)))
            pushers[1].start()
            wait_until(lambda: inbox.qsize() >= 2, message="the container's push waits too")
        finally:
            hold.release.set()
            for pusher in pushers:
                pusher.join(10.0)

        assert answers["pod"].status_code == 202, answers["pod"].text
        refused = answers["container"]
        assert (refused.status_code, refused.json()["field"]) == (422, "platform"), refused.text
        assert plane.instance("x")["platform"] == "kubernetes"
        assert plane.transitions("x") == [("Unknown", "Running")]
