"""Every route through ``falcon.testing``, over a real ControlPlane whose processes are fakes.

The fake hands out runtimes for *this test process's own PID*. Why: the real process monitor opens a pidfd for
every watched PID and sweeps them with psutil; our own PID stays alive for the whole test, so its pidfd never
becomes readable and the sweep always finds the same create time. No exit is ever reported by the monitor; tests
that need one tell the instance actor a ``ProcessExited``, as the monitor would. The fake never sends a real
signal, so the PID is never at risk.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from signal import Signals
from typing import Any, TypeVar, cast

import psutil
import pytest
from falcon import testing

from draas_actors.actors.store import Retention
from draas_actors.actors.supervisor import SupervisionSettings
from draas_actors.api.app import create_app
from draas_actors.errors import InvalidInput
from draas_actors.messages import GetInstance, ProcessExited
from draas_actors.platforms.process import ProcessPlatform
from draas_actors.records import InstanceRecord, ProcessSpec, Runtime
from draas_actors.system import ControlPlane, SystemSettings
from tests.helpers import wait_until

DAEMON_KEY = "daemon-key-0123456789abcdef"
OPERATOR_KEY = "operator-key-0123456789abcdef"
ERROR_KEYS = {"error", "detail", "field"}
T = TypeVar("T")


class FakeProcesses(ProcessPlatform):
    """Records what the control plane asked for and spawns nothing (see the module docstring)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.pid = os.getpid()
        self.create_time = psutil.Process(self.pid).create_time()
        self.calls_lock = threading.Lock()
        self.spawned: list[str] = []
        self.signals: list[tuple[int, Signals]] = []
        self.terminated: list[tuple[int, float]] = []

    def spawn(self, instance_id: str, spec: ProcessSpec) -> Runtime:
        with self.calls_lock:
            self.spawned.append(instance_id)
        return Runtime(pid=self.pid, create_time=self.create_time, started_at=time.time(), child=True, own_group=True)

    def adopt(self, pid: int) -> Runtime:
        if pid != self.pid:
            raise InvalidInput(f"no process with PID {pid}", field="process.pid")
        return Runtime(pid=pid, create_time=self.create_time, started_at=self.create_time, child=False)

    def is_child(self, pid: int) -> bool:
        return False

    def is_same_process(self, runtime: Runtime) -> bool:
        return (runtime.pid, runtime.create_time) == (self.pid, self.create_time)

    def signal(self, runtime: Runtime, signum: Signals) -> bool:
        with self.calls_lock:
            self.signals.append((runtime.pid, signum))
        return True

    def reap(self, pid: int) -> int | None:
        return None

    def terminate_later(self, runtime: Runtime, timeout: float) -> None:
        with self.calls_lock:
            self.terminated.append((runtime.pid, timeout))

    def signals_sent(self) -> list[Signals]:
        with self.calls_lock:
            return [signum for _, signum in self.signals]


@dataclass
class Api:
    cp: ControlPlane
    client: testing.TestClient
    fake: FakeProcesses

    def get(self, path: str, key: str | None = OPERATOR_KEY, **kwargs: Any) -> testing.Result:
        return self.client.simulate_get(path, headers=_auth(key), **kwargs)

    def post(self, path: str, key: str | None = OPERATOR_KEY, **kwargs: Any) -> testing.Result:
        return self.client.simulate_post(path, headers=_auth(key), **kwargs)

    def put(self, path: str, body: Any, key: str | None = OPERATOR_KEY) -> testing.Result:
        return self.client.simulate_put(path, headers=_auth(key), json=body)

    def delete(self, path: str, key: str | None = OPERATOR_KEY, **kwargs: Any) -> testing.Result:
        return self.client.simulate_delete(path, headers=_auth(key), **kwargs)

    def push(self, body: Any) -> testing.Result:
        return self.post("/api/status/updates", key=DAEMON_KEY, json=body)

    def status_of(self, instance_id: str) -> str:
        result = self.get(f"/api/status/{instance_id}/status")
        assert result.status_code == 200, result.text
        return str(result.json["status"])

    def wait_status(self, instance_id: str, status: str) -> None:
        wait_until(lambda: self.status_of(instance_id) == status, message=f"{instance_id} to be {status}")

    def instance(self, instance_id: str) -> dict[str, Any]:
        result = self.get(f"/api/instances/{instance_id}")
        assert result.status_code == 200, result.text
        return dict(result.json)

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        result = self.post("/api/instances", json=body)
        assert result.status_code == 201, result.text
        return dict(result.json)

    def register_process(self, instance_id: str, **policy: Any) -> dict[str, Any]:
        return self.register(
            {
                "instanceId": instance_id,
                "platform": "process",
                "process": {"command": ["sleep", "600"], "stopTimeout": 30},
                "restartPolicy": policy,
            }
        )

    def simulate_exit(self, instance_id: str, exit_code: int | None) -> None:
        """What the process monitor tells an instance actor when its process ends."""
        entry = self.cp.directory.get(instance_id)
        assert entry is not None
        ref = entry.ref
        record = cast(InstanceRecord, ref.ask(GetInstance(), timeout=5))
        assert record.runtime is not None
        ref.tell(ProcessExited(record.instance_id, record.runtime.pid, exit_code, time.time(), "simulated exit"))

    def changes(self, after: int = 0, limit: int = 1000) -> testing.Result:
        return self.get("/api/status/changes", params={"after": after, "limit": limit})


def _auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"X-API-Key": key}


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Starts a control plane per call (settings as keyword arguments) and stops them all afterwards."""
    started: list[ControlPlane] = []

    def start(**system: Any) -> Api:
        fake = FakeProcesses(tmp_path / "logs")
        cp = ControlPlane(SystemSettings(data_dir=tmp_path, store_path=":memory:", **system), processes=fake)
        started.append(cp)
        cp.start()
        app = create_app(cp, daemon_keys=(DAEMON_KEY,), operator_keys=(OPERATOR_KEY,))
        return Api(cp, testing.TestClient(app), fake)

    try:
        yield start
    finally:
        for cp in started:
            cp.stop(timeout=5)


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    return start_api()


def _is_error_body(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == ERROR_KEYS


# -- authentication -----------------------------------------------------------------------------------


def test_a_request_without_a_key_gets_401_with_a_json_error_body(api: Api) -> None:
    result = api.get("/api/instances", key=None)
    assert result.status_code == 401
    assert result.headers["content-type"].startswith("application/json")
    assert _is_error_body(result.json)
    assert "Bearer" in result.headers.get("www-authenticate", "")


def test_a_wrong_key_gets_401(api: Api) -> None:
    result = api.get("/api/instances", key="not-the-right-key-at-all")
    assert result.status_code == 401
    assert _is_error_body(result.json)


def test_a_daemon_key_on_an_operator_route_is_authenticated_but_forbidden(api: Api) -> None:
    assert api.get("/api/instances", key=DAEMON_KEY).status_code == 403
    assert api.post("/api/instances/x/stop", key=DAEMON_KEY).status_code == 403


def test_an_operator_key_cannot_push_status(api: Api) -> None:
    body = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}
    result = api.post("/api/status/updates", key=OPERATOR_KEY, json=body)
    assert result.status_code == 403
    assert _is_error_body(result.json)


def test_a_key_is_accepted_as_x_api_key_or_as_a_bearer_token(api: Api) -> None:
    assert api.client.simulate_get("/api/instances", headers={"X-API-Key": OPERATOR_KEY}).status_code == 200
    bearer = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    assert api.client.simulate_get("/api/instances", headers=bearer).status_code == 200
    basic = {"Authorization": f"Basic {OPERATOR_KEY}"}
    assert api.client.simulate_get("/api/instances", headers=basic).status_code == 401


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api/openapi.json"])
def test_public_routes_need_no_key(api: Api, path: str) -> None:
    assert api.get(path, key=None).status_code == 200


def test_healthz_says_alive_and_names_the_store_that_answers(api: Api) -> None:
    assert len(api.cp.store_id) >= 16
    assert api.get("/healthz", key=None).json == {"status": "alive", "storeId": api.cp.store_id}


def test_readyz_lists_the_core_actors_and_the_store(api: Api) -> None:
    result = api.get("/readyz", key=None)
    assert result.status_code == 200
    assert result.json["status"] == "ready"
    assert result.json["actors"] == {"store": True, "bus": True, "monitor": True, "supervisor": True}
    assert result.json["storeWritable"] is True
    assert result.json["escalated"] == []


def test_an_unknown_route_and_a_wrong_method_answer_in_the_json_error_shape(api: Api) -> None:
    missing = api.get("/api/nothing-here")
    assert missing.status_code == 404
    assert _is_error_body(missing.json)
    wrong_method = api.delete("/api/status/changes")
    assert wrong_method.status_code == 405
    assert _is_error_body(wrong_method.json)


# -- pushing status -----------------------------------------------------------------------------------


def test_a_single_update_is_accepted_and_becomes_the_instance_status(api: Api) -> None:
    result = api.push({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"})
    assert result.status_code == 202
    assert result.json == {
        "status": "accepted", "instanceId": "web-1", "outcome": "applied", "storeId": api.cp.store_id,
    }
    api.wait_status("web-1", "Running")
    status = api.get("/api/status/web-1/status").json
    assert status["platform"] == "docker"  # guessed from the source, as the upstream design names daemons


def test_the_status_of_an_unknown_instance_is_404(api: Api) -> None:
    result = api.get("/api/status/nobody/status")
    assert result.status_code == 404
    assert _is_error_body(result.json)
    assert result.json["field"] == "instanceId"


def test_a_batch_with_one_bad_item_accepts_the_good_one(api: Api) -> None:
    result = api.push(
        [
            {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"},
            {"instanceId": "web-2", "status": "Exploded", "source": "DockerDaemon"},
        ]
    )
    assert result.status_code == 202
    assert (result.json["accepted"], result.json["rejected"]) == (1, 1)
    results = result.json["results"]
    assert results[0] == {"index": 0, "status": "accepted", "outcome": "applied"}
    assert results[1]["status"] == "rejected"
    assert results[1]["field"] == "[1].status"
    api.wait_status("web-1", "Running")
    assert api.get("/api/status/web-2/status").status_code == 404  # the bad item created nothing


def test_a_batch_with_only_bad_items_is_422(api: Api) -> None:
    result = api.push([{"instanceId": "a", "status": "Nope", "source": "s"}, {"status": "Running", "source": "s"}])
    assert result.status_code == 422
    assert (result.json["accepted"], result.json["rejected"]) == (0, 2)
    assert [r["field"] for r in result.json["results"]] == ["[0].status", "[1].instanceId"]


def test_an_empty_batch_is_422(api: Api) -> None:
    result = api.push([])
    assert result.status_code == 422
    assert _is_error_body(result.json)


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe{}"])
def test_a_body_that_is_not_json_is_400(api: Api, body: bytes) -> None:
    result = api.post("/api/status/updates", key=DAEMON_KEY, body=body, content_type="application/json")
    assert result.status_code == 400
    assert _is_error_body(result.json)
    assert result.json["field"] == "body"


def test_a_json_body_that_is_not_an_object_is_400(api: Api) -> None:
    assert api.push("Running").status_code == 400


def test_an_unknown_status_is_422_naming_status_and_changes_nothing(api: Api) -> None:
    assert api.push({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}).status_code == 202
    api.wait_status("web-1", "Running")
    result = api.push({"instanceId": "web-1", "status": "Exploded", "source": "DockerDaemon"})
    assert result.status_code == 422
    assert _is_error_body(result.json)
    assert result.json["field"] == "status"
    assert api.status_of("web-1") == "Running"


def test_a_missing_status_is_422_naming_it(api: Api) -> None:
    result = api.push({"instanceId": "web-1", "source": "DockerDaemon"})
    assert result.status_code == 422
    assert result.json["field"] == "status"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "Running", "source": "DockerDaemon"}, "instanceId"),
        ({"instanceId": "  ", "status": "Running", "source": "DockerDaemon"}, "instanceId"),
        ({"InstanceId": None, "Status": 1, "Source": "DockerDaemon"}, "instanceId"),
        ({"instanceId": "web-1", "status": "Running"}, "source"),
        ({"instanceId": "web-1", "status": "Running", "source": ""}, "source"),
        ({"InstanceId": "web-1", "Status": 1, "Source": " "}, "source"),
    ],
)
def test_a_missing_or_blank_instance_id_or_source_is_400_naming_it_as_upstream(
    api: Api, body: dict[str, Any], field: str
) -> None:
    result = api.push(body)
    assert result.status_code == 400
    assert _is_error_body(result.json)
    assert result.json["field"] == field


def test_an_upstream_shaped_push_is_accepted_with_a_warning_per_unknown_property(api: Api) -> None:
    body = {"InstanceId": "web-1", "Status": 1, "Source": "DockerDaemon", "Metadata": None, "Foo": "bar"}
    result = api.push(body)
    assert result.status_code == 202
    assert result.json == {
        "status": "accepted", "instanceId": "web-1", "outcome": "applied", "storeId": api.cp.store_id,
        "warnings": ["unknown property 'Foo' ignored"],
    }
    api.wait_status("web-1", "Running")
    stopped = api.push({"INSTANCEID": "web-1", "STATUS": "stopped", "SOURCE": "DockerDaemon"})
    assert "warnings" not in stopped.json  # no warnings: no "warnings"
    api.wait_status("web-1", "Stopped")


def test_a_batch_answer_says_which_items_were_applied_and_which_were_ignored_and_why(api: Api) -> None:
    now = time.time()
    result = api.push([
        {"instanceId": "web-1", "status": "Stopped", "source": "DockerDaemon", "observedAt": now - 10},
        {"instanceId": "web-1", "status": "Stopping", "source": "DockerDaemon", "observedAt": now - 9},
        {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "observedAt": now - 20},
        {"instanceId": "web-2", "status": "Running", "source": "DockerDaemon", "observedAt": now - 10},
    ])
    assert result.status_code == 202
    assert [(r["status"], r["outcome"]) for r in result.json["results"]] == [
        ("accepted", "applied"), ("accepted", "invalidTransition"), ("accepted", "stale"), ("accepted", "applied"),
    ]
    assert (result.json["accepted"], result.json["applied"], result.json["ignored"], result.json["rejected"]) == (
        4, 2, 2, 0)
    single = api.push({"instanceId": "web-2", "status": "Running", "source": "DockerDaemon", "observedAt": now - 30})
    assert single.status_code == 202 and single.json["outcome"] == "stale"


def test_a_batch_lists_the_warnings_of_each_item(api: Api) -> None:
    result = api.push([
        {"instanceId": "web-1", "status": 1, "source": "DockerDaemon", "colour": "blue"},
        {"instanceId": "web-2", "status": "running", "source": "DockerDaemon"},
        {"instanceId": "web-3", "status": 9, "source": "DockerDaemon", "size": 3},
    ])
    assert result.status_code == 202
    items = result.json["results"]
    assert items[0] == {
        "index": 0, "status": "accepted", "outcome": "applied", "warnings": ["unknown property 'colour' ignored"],
    }
    assert items[1] == {"index": 1, "status": "accepted", "outcome": "applied"}
    assert items[2]["status"] == "rejected" and items[2]["field"] == "[2].status"
    assert items[2]["warnings"] == ["unknown property 'size' ignored"]


@pytest.mark.parametrize(
    "path",
    ["/api/Status/updates", "/API/STATUS/UPDATES", "/api/status/Updates"],
)
def test_the_push_route_matches_in_any_case_as_asp_net_routes_it(api: Api, path: str) -> None:
    result = api.post(path, key=DAEMON_KEY, json={"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"})
    assert result.status_code == 202


def test_status_routes_match_in_any_case_but_instance_ids_keep_theirs(api: Api) -> None:
    assert api.push({"instanceId": "Web-1", "status": "Running", "source": "DockerDaemon"}).status_code == 202
    api.wait_status("Web-1", "Running")
    assert api.get("/API/Status/Web-1/STATUS").json["instanceId"] == "Web-1"
    assert api.get("/api/status/web-1/status").status_code == 404  # another id
    assert isinstance(api.get("/API/STATUS/Recent-Changes").json, list)
    assert api.get("/api/Status/Changes").status_code == 200
    assert api.get("/API/INSTANCES").status_code == 404  # only upstream's controller is case-insensitive


def test_a_daemon_key_may_read_an_instance_s_status_and_nothing_else(api: Api) -> None:
    assert api.push({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}).status_code == 202
    api.wait_status("web-1", "Running")
    result = api.get("/api/status/web-1/status", key=DAEMON_KEY)
    assert result.status_code == 200
    assert result.json["status"] == "Running"
    assert api.get("/api/status/changes", key=DAEMON_KEY).status_code == 403
    assert api.get("/api/status/recent-changes", key=DAEMON_KEY).status_code == 403


def test_the_status_has_upstream_s_runtime_info_fields(api: Api) -> None:
    docker = {"instanceId": "web-1", "source": "DockerDaemon", "metadata": {"containerId": "3f2a9c"}}
    assert api.push({**docker, "status": "Running"}).status_code == 202
    api.wait_status("web-1", "Running")
    running = api.get("/api/status/web-1/status").json
    assert running["startedAt"] == running["statusSince"] and running["startedAt"] is not None
    assert (running["stoppedAt"], running["errorMessage"], running["processId"]) == (None, None, None)
    assert (running["containerId"], running["podName"], running["namespace"]) == ("3f2a9c", None, None)
    assert running["runtimeMetadata"] == {"containerId": "3f2a9c"}
    assert api.push({**docker, "status": "Error", "metadata": {"reason": "OOMKilled"}}).status_code == 202
    api.wait_status("web-1", "Failed")
    failed = api.get("/api/status/web-1/status").json
    assert failed["stoppedAt"] == failed["statusSince"] and failed["startedAt"] is None
    assert failed["errorMessage"] == "OOMKilled"
    assert failed["containerId"] == "3f2a9c"  # the container last reported

    pod = {"instanceId": "api", "status": 1, "source": "AKSDaemon", "metadata": {"podName": "api-5d9c",
                                                                               "namespace": "drasi"}}
    assert api.push(pod).status_code == 202
    api.wait_status("api", "Running")
    view = api.get("/api/status/api/status").json
    assert (view["podName"], view["namespace"], view["containerId"]) == ("api-5d9c", "drasi", None)


def test_the_status_of_a_process_names_its_pid_as_upstream_s_process_id(api: Api) -> None:
    registered = api.post("/api/instances", json={"instanceId": "p1", "platform": "process",
                                                  "process": {"command": ["sleep", "30"]}})
    assert registered.status_code == 201, registered.text
    api.wait_status("p1", "Running")
    view = api.get("/api/status/p1/status").json
    pid = api.instance("p1")["runtime"]["pid"]
    assert view["processId"] == str(pid)
    assert view["startedAt"] == api.instance("p1")["runtime"]["startedAt"]


def test_an_unknown_instance_is_404_when_auto_create_is_off(start_api: Callable[..., Api]) -> None:
    api = start_api(supervision=SupervisionSettings(auto_create=False))
    result = api.push({"instanceId": "ghost", "status": "Running", "source": "DockerDaemon"})
    assert result.status_code == 404
    assert _is_error_body(result.json)
    assert result.json["field"] == "instanceId"
    assert api.get("/api/status/ghost/status").status_code == 404


def test_in_a_batch_an_unknown_instance_is_a_rejected_item_when_auto_create_is_off(
    start_api: Callable[..., Api],
) -> None:
    api = start_api(supervision=SupervisionSettings(auto_create=False))
    api.register({"instanceId": "known", "platform": "docker"})
    result = api.push(
        [
            {"instanceId": "known", "status": "Running", "source": "DockerDaemon"},
            {"instanceId": "ghost", "status": "Running", "source": "DockerDaemon"},
        ]
    )
    assert result.status_code == 202
    assert (result.json["accepted"], result.json["rejected"]) == (1, 1)
    assert result.json["results"][1]["field"] == "[1].instanceId"


def test_an_unknown_instance_whose_platform_cannot_be_guessed_is_422(api: Api) -> None:
    result = api.push({"instanceId": "mystery", "status": "Running", "source": "someone"})
    assert result.status_code == 422
    assert result.json["field"] == "platform"
    ok = api.push({"instanceId": "mystery", "status": "Running", "source": "someone", "platform": "kubernetes"})
    assert ok.status_code == 202


def test_a_stale_report_from_the_same_source_is_dropped_and_counted(api: Api) -> None:
    t = 1_700_000_000
    pushed = api.push({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "observedAt": t})
    assert pushed.status_code == 202
    api.wait_status("web-1", "Running")
    old = {"instanceId": "web-1", "status": "Failed", "source": "DockerDaemon", "observedAt": t - 10}
    assert api.push(old).status_code == 202  # accepted for delivery; the instance decides it is stale
    wait_until(lambda: api.instance("web-1")["staleReportsDropped"] == 1, message="the stale report to be counted")
    assert api.status_of("web-1") == "Running"
    # Staleness is per source: another source's older clock is not compared with this one's.
    other = {"instanceId": "web-1", "status": "Unhealthy", "source": "HealthProbe", "observedAt": t - 20}
    assert api.push(other).status_code == 202
    api.wait_status("web-1", "Unhealthy")
    assert api.instance("web-1")["staleReportsDropped"] == 1


# -- the change log -----------------------------------------------------------------------------------


def _push_sequence(api: Api, instance_id: str, statuses: list[str]) -> None:
    for status in statuses:
        assert api.push({"instanceId": instance_id, "status": status, "source": "DockerDaemon"}).status_code == 202


def _wait_changes(api: Api, count: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        changes: list[dict[str, Any]] = api.changes().json["changes"]
        return changes if len(changes) >= count else None

    return wait_until(enough, message=f"{count} changes in the log")


def test_recent_changes_filter_by_time_and_status(api: Api) -> None:
    before = time.time() - 1
    _push_sequence(api, "web-1", ["Running", "Failed", "Running"])
    _wait_changes(api, 3)
    every = api.get("/api/status/recent-changes", params={"since": before}).json
    assert [c["newStatus"] for c in every] == ["Running", "Failed", "Running"]
    running = api.get("/api/status/recent-changes", params={"since": before, "statusFilter": "Running"}).json
    assert [c["newStatus"] for c in running] == ["Running", "Running"]
    both = api.get("/api/status/recent-changes", params={"since": before, "statusFilter": "Failed, Error"}).json
    assert [c["newStatus"] for c in both] == ["Failed"]
    any_case = api.get("/api/status/recent-changes", params={"since": before, "statusFilter": "ERROR,running"}).json
    assert [c["newStatus"] for c in any_case] == ["Running", "Failed", "Running"]
    future = api.get("/api/status/recent-changes", params={"since": "2999-01-01T00:00:00Z"}).json
    assert future == []


def test_recent_changes_are_upstream_s_bare_array_of_status_change_records(api: Api) -> None:
    _push_sequence(api, "web-1", ["Running"])
    _wait_changes(api, 1)
    (change,) = api.get("/api/status/recent-changes").json
    assert set(change) == {"instanceId", "oldStatus", "newStatus", "source", "timestamp", "metadata"}
    assert (change["instanceId"], change["oldStatus"], change["newStatus"]) == ("web-1", "Unknown", "Running")
    assert change["source"] == "DockerDaemon" and change["metadata"] == {}
    assert change["timestamp"].endswith("Z")  # ISO 8601, UTC


def test_recent_changes_default_to_upstream_s_last_five_minutes(api: Api) -> None:
    _push_sequence(api, "web-1", ["Running"])
    _wait_changes(api, 1)
    in_window = create_app(api.cp, operator_keys=(OPERATOR_KEY,), clock=lambda: time.time() + 290)
    later = create_app(api.cp, operator_keys=(OPERATOR_KEY,), clock=lambda: time.time() + 310)
    assert len(testing.TestClient(in_window).simulate_get("/api/status/recent-changes", headers=_auth(OPERATOR_KEY))
               .json) == 1
    assert testing.TestClient(later).simulate_get("/api/status/recent-changes", headers=_auth(OPERATOR_KEY)).json == []


def test_configuration_changed_is_a_change_recent_changes_finds_and_leaves_the_status_alone(api: Api) -> None:
    docker = {"instanceId": "web-1", "source": "DockerDaemon"}
    assert api.push({**docker, "status": "Running", "metadata": {"containerId": "c1"}}).status_code == 202
    api.wait_status("web-1", "Running")
    since = api.get("/api/status/web-1/status").json["statusSince"]
    assert api.push({**docker, "status": 4, "metadata": {"config": "v2"}}).status_code == 202
    assert api.push({**docker, "status": "configurationchanged"}).status_code == 202
    feed = _wait_changes(api, 3)
    configured = [c for c in feed if c["kind"] == "configuration"]
    assert [(c["oldStatus"], c["newStatus"], c["metadata"]) for c in configured] == [
        ("Running", "Running", {"config": "v2"}), ("Running", "Running", {})]
    found = api.get("/api/status/recent-changes", params={"statusFilter": "ConfigurationChanged"}).json
    assert [(c["oldStatus"], c["newStatus"], c["metadata"]) for c in found] == [
        ("Running", "ConfigurationChanged", {"config": "v2"}), ("Running", "ConfigurationChanged", {})]
    mixed = api.get("/api/status/recent-changes", params={"statusFilter": "running,CONFIGURATIONCHANGED"}).json
    assert [c["newStatus"] for c in mixed] == ["Running", "ConfigurationChanged", "ConfigurationChanged"]
    running = api.get("/api/status/recent-changes", params={"statusFilter": "Running"}).json
    assert [c["newStatus"] for c in running] == ["Running"]
    status = api.get("/api/status/web-1/status").json
    assert (status["status"], status["statusSince"], status["metadata"]) == ("Running", since, {"containerId": "c1"})


def test_a_configuration_change_reaches_subscribers_by_kind_and_not_as_a_status(api: Api) -> None:
    from draas_actors.messages import StatusChanged, SubscriptionFilter
    from draas_actors.model import ChangeKind, Status

    seen: dict[str, list[StatusChanged]] = {"all": [], "running": [], "configuration": []}
    api.cp.subscribe(seen["all"].append)
    api.cp.subscribe(seen["running"].append, SubscriptionFilter(statuses=frozenset({Status.RUNNING})))
    api.cp.subscribe(seen["configuration"].append,
                     SubscriptionFilter(kinds=frozenset({ChangeKind.CONFIGURATION})))
    _push_sequence(api, "web-1", ["Running", "ConfigurationChanged"])
    wait_until(lambda: len(seen["all"]) == 2 and len(seen["configuration"]) == 1 and len(seen["running"]) == 1,
               message="both changes delivered")
    assert [e.kind for e in seen["all"]] == [ChangeKind.STATUS, ChangeKind.CONFIGURATION]
    assert [e.kind for e in seen["running"]] == [ChangeKind.STATUS]
    (configuration,) = seen["configuration"]
    assert (configuration.old_status, configuration.new_status) == (Status.RUNNING, Status.RUNNING)


def test_recent_changes_name_a_bad_parameter(api: Api) -> None:
    bad_filter = api.get("/api/status/recent-changes", params={"statusFilter": "Running,Exploded"})
    assert bad_filter.status_code == 422
    assert bad_filter.json["field"] == "statusFilter"
    bad_since = api.get("/api/status/recent-changes", params={"since": "last tuesday"})
    assert bad_since.status_code == 422
    assert bad_since.json["field"] == "since"
    bad_limit = api.get("/api/status/recent-changes", params={"limit": "0"})
    assert bad_limit.status_code == 422
    assert bad_limit.json["field"] == "limit"


def test_the_change_feed_pages_by_cursor(api: Api) -> None:
    _push_sequence(api, "web-1", ["Running", "Unhealthy", "Running", "Stopped"])
    _wait_changes(api, 4)
    first = api.changes(after=0, limit=2).json
    assert [c["cursor"] for c in first["changes"]] == [1, 2]
    assert first["nextCursor"] == 2
    assert set(first["changes"][0]) == {
        "cursor", "kind", "instanceId", "platform", "oldStatus", "newStatus", "source", "timestamp", "metadata",
        "traceparent",
    }
    assert first["changes"][0]["kind"] == "status"
    assert first["changes"][0]["traceparent"] is None  # pushed without one
    assert (first["changes"][0]["oldStatus"], first["changes"][0]["newStatus"]) == ("Unknown", "Running")
    second = api.changes(after=first["nextCursor"], limit=2).json
    assert [c["newStatus"] for c in second["changes"]] == ["Running", "Stopped"]
    assert second["nextCursor"] == 4
    empty = api.changes(after=second["nextCursor"], limit=2).json
    assert empty == {"changes": [], "nextCursor": 4, "storeId": api.cp.store_id}


def test_every_page_of_the_change_feed_names_its_store_and_another_store_is_a_conflict(api: Api) -> None:
    _push_sequence(api, "web-1", ["Running", "Stopped"])
    _wait_changes(api, 2)
    page = api.changes(after=0, limit=1).json
    assert page["storeId"] == api.cp.store_id and len(page["storeId"]) >= 16
    same = api.get("/api/status/changes", params={"after": "1", "storeId": page["storeId"]})
    assert same.status_code == 200 and [c["cursor"] for c in same.json["changes"]] == [2]
    other = api.get("/api/status/changes", params={"after": "1", "storeId": "0" * 32})
    assert other.status_code == 409 and other.json["field"] == "storeId"


def test_a_cursor_past_the_head_of_the_change_log_is_a_conflict_not_an_empty_page(api: Api) -> None:
    _push_sequence(api, "web-1", ["Running", "Stopped"])
    _wait_changes(api, 2)
    at_head = api.get("/api/status/changes", params={"after": "2"})
    assert at_head.status_code == 200 and at_head.json["changes"] == []
    past = api.get("/api/status/changes", params={"after": "99999"})
    assert past.status_code == 409 and past.json["field"] == "after"
    assert "head" in past.json["detail"]


@pytest.mark.parametrize(("params", "field"), [({"after": "-1"}, "after"), ({"after": "x"}, "after"),
                                                ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit")])
def test_the_change_feed_names_a_bad_parameter(api: Api, params: dict[str, str], field: str) -> None:
    result = api.get("/api/status/changes", params=params)
    assert result.status_code == 422
    assert result.json["field"] == field


def test_a_cursor_older_than_retention_is_410_with_how_to_resync(start_api: Callable[..., Api]) -> None:
    # The store prunes on a timer; a short interval makes retention visible within the test.
    api = start_api(retention=Retention(max_changes=2, prune_interval=0.05))
    _push_sequence(api, "web-1", ["Running", "Unhealthy", "Running", "Stopped"])
    wait_until(lambda: api.changes(after=1).status_code == 410, message="changes through cursor 2 to be pruned")
    expired = api.changes(after=0)
    assert expired.status_code == 410
    assert _is_error_body(expired.json)
    assert expired.json["field"] == "after"
    assert "resync" in expired.json["detail"]
    assert "GET /api/instances" in expired.json["detail"]
    kept = api.changes(after=2)
    assert kept.status_code == 200
    assert [c["cursor"] for c in kept.json["changes"]] == [3, 4]


# -- instances ----------------------------------------------------------------------------------------


def test_registering_a_process_instance_is_201_with_its_location_and_view(api: Api) -> None:
    result = api.post(
        "/api/instances",
        json={
            "instanceId": "worker",
            "platform": "process",
            "process": {"command": ["sleep", "600"], "env": {"TOKEN": "s3cret-value"}},
            "restartPolicy": {"mode": "always", "maxRestarts": 3},
        },
    )
    assert result.status_code == 201
    assert result.headers["location"] == "/api/instances/worker"
    view = result.json
    assert view["instanceId"] == "worker"
    assert view["platform"] == "process"
    assert view["status"] == "Running"  # registration starts a process instance
    assert view["runtime"]["pid"] == api.fake.pid
    assert (view["restartCount"], view["lastExitCode"], view["nextRestartAt"]) == (0, None, None)
    assert view["restartPolicy"]["mode"] == "always"
    assert view["restartPolicy"]["maxRestarts"] == 3
    assert view["process"]["envKeys"] == ["TOKEN"]
    assert "s3cret-value" not in result.text
    assert api.fake.spawned == ["worker"]


def test_registering_a_docker_instance_starts_nothing(api: Api) -> None:
    view = api.register({"instanceId": "web-1", "platform": "docker"})
    assert view["status"] == "Pending"
    assert view["runtime"] is None
    assert api.fake.spawned == []


def test_registering_by_pid_adopts_the_process(api: Api) -> None:
    view = api.register({"instanceId": "adopted", "platform": "process", "process": {"pid": api.fake.pid}})
    assert view["status"] == "Running"
    assert view["runtime"]["pid"] == api.fake.pid
    assert view["runtime"]["child"] is False
    assert api.fake.spawned == []


def test_registering_a_duplicate_is_409(api: Api) -> None:
    api.register({"instanceId": "web-1", "platform": "docker"})
    result = api.post("/api/instances", json={"instanceId": "web-1", "platform": "kubernetes"})
    assert result.status_code == 409
    assert _is_error_body(result.json)
    assert result.json["field"] == "instanceId"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "docker"}, "instanceId"),
        ({"instanceId": "x", "platform": "vm"}, "platform"),
        ({"instanceId": "x", "platform": "process"}, "process"),
        ({"instanceId": "x", "platform": "process", "process": {}}, "process.command"),
        ({"instanceId": "x", "platform": "docker", "restartPolicy": {"jitter": 1.5}}, "restartPolicy.jitter"),
        ({"instanceId": "x", "platform": "docker", "restartPolicy": {"initialBackoff": 9, "maxBackoff": 1}},
         "restartPolicy.maxBackoff"),
    ],
)
def test_a_bad_registration_is_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    result = api.post("/api/instances", json=body)
    assert result.status_code == 422
    assert _is_error_body(result.json)
    assert result.json["field"] == field
    assert api.get("/api/instances").json["instances"] == []


def test_a_registration_that_is_not_a_json_object_is_400(api: Api) -> None:
    assert api.post("/api/instances", json=["web-1"]).status_code == 400
    assert api.post("/api/instances", body="{", content_type="application/json").status_code == 400


def test_instances_are_listed_and_filtered_by_platform_and_status(api: Api) -> None:
    api.register({"instanceId": "d1", "platform": "docker"})
    api.register_process("p1")

    def ids(**params: str) -> list[str]:
        result = api.get("/api/instances", params=params)
        assert result.status_code == 200, result.text
        return [i["instanceId"] for i in result.json["instances"]]

    wait_until(lambda: ids() == ["d1", "p1"] and ids(status="Running") == ["p1"], message="both instances stored")
    assert ids(platform="process") == ["p1"]
    assert ids(platform="docker") == ["d1"]
    assert ids(platform="kubernetes") == []
    assert ids(status="Pending") == ["d1"]
    assert ids(status="Created") == ["d1"]  # the upstream alias for Pending
    assert ids(platform="docker", status="Running") == []


@pytest.mark.parametrize(("params", "field"), [({"platform": "vm"}, "platform"), ({"status": "Exploded"}, "status")])
def test_a_bad_instance_filter_is_422_naming_it(api: Api, params: dict[str, str], field: str) -> None:
    result = api.get("/api/instances", params=params)
    assert result.status_code == 422
    assert _is_error_body(result.json)
    assert result.json["field"] == field


def test_an_instance_is_read_and_an_unknown_one_is_404(api: Api) -> None:
    api.register({"instanceId": "web-1", "platform": "docker"})
    assert api.instance("web-1")["platform"] == "docker"
    missing = api.get("/api/instances/nobody")
    assert missing.status_code == 404
    assert _is_error_body(missing.json)


def test_deleting_an_instance_stops_its_process_and_forgets_it(api: Api) -> None:
    api.register_process("p1")
    result = api.delete("/api/instances/p1")
    assert result.status_code == 204
    assert api.get("/api/instances/p1").status_code == 404
    wait_until(lambda: api.fake.terminated == [(api.fake.pid, 30.0)], message="the process to be terminated")
    wait_until(lambda: api.get("/api/instances").json["instances"] == [], message="the record to be deleted")


def test_deleting_with_stop_false_leaves_the_process_running(api: Api) -> None:
    api.register_process("p1")
    api.register({"instanceId": "marker", "platform": "docker"})
    assert api.delete("/api/instances/p1", params={"stop": "false"}).status_code == 204
    wait_until(
        lambda: [i["instanceId"] for i in api.get("/api/instances").json["instances"]] == ["marker"],
        message="the record to be deleted",
    )
    assert api.fake.terminated == []


def test_deleting_an_unknown_instance_is_404(api: Api) -> None:
    result = api.delete("/api/instances/nobody")
    assert result.status_code == 404
    assert _is_error_body(result.json)


# -- operator actions ---------------------------------------------------------------------------------


def test_stop_is_202_stopping_then_sigterm_and_sigkill_after_the_stop_timeout(api: Api) -> None:
    api.register(
        {"instanceId": "p1", "platform": "process", "process": {"command": ["sleep", "600"], "stopTimeout": 0.1}}
    )
    result = api.post("/api/instances/p1/stop")
    assert result.status_code == 202
    assert result.json["status"] == "Stopping"
    assert result.json["operatorStopped"] is True
    assert api.fake.signals_sent()[0] is signal.SIGTERM
    # The fake process never exits, so the stop timeout escalates to SIGKILL.
    wait_until(lambda: signal.SIGKILL in api.fake.signals_sent(), message="SIGKILL after the stop timeout")
    api.simulate_exit("p1", -9)
    api.wait_status("p1", "Stopped")
    view = api.instance("p1")
    assert view["runtime"] is None
    assert view["lastReason"] == "stopped by operator"
    assert api.fake.spawned == ["p1"]  # an operator's stop is not undone by the policy


def test_start_after_a_stop_is_202_running(api: Api) -> None:
    api.register_process("p1", mode="always")
    api.post("/api/instances/p1/stop")
    api.simulate_exit("p1", 0)
    api.wait_status("p1", "Stopped")
    result = api.post("/api/instances/p1/start")
    assert result.status_code == 202
    assert result.json["status"] == "Running"
    assert result.json["operatorStopped"] is False
    assert api.fake.spawned == ["p1", "p1"]


def test_start_on_a_running_instance_changes_nothing(api: Api) -> None:
    api.register_process("p1")
    result = api.post("/api/instances/p1/start")
    assert result.status_code == 202
    assert result.json["status"] == "Running"
    assert api.fake.spawned == ["p1"]


def test_restart_stops_then_starts_the_process_again(api: Api) -> None:
    api.register_process("p1")
    result = api.post("/api/instances/p1/restart")
    assert result.status_code == 202
    assert result.json["status"] == "Stopping"
    assert result.json["operatorStopped"] is False
    assert api.fake.signals_sent() == [signal.SIGTERM]
    api.simulate_exit("p1", -15)
    wait_until(lambda: api.instance("p1")["restartCount"] == 1, message="the restart")
    assert api.status_of("p1") == "Running"
    assert api.fake.spawned == ["p1", "p1"]


def test_a_crash_is_restarted_at_once_and_the_instance_explains_it(api: Api) -> None:
    api.register_process("p1", mode="on-failure")
    api.simulate_exit("p1", 3)
    wait_until(lambda: api.instance("p1")["restartCount"] == 1, message="the policy's restart")
    view = api.instance("p1")
    assert view["status"] == "Running"
    assert view["lastExitCode"] == 3
    assert view["nextRestartAt"] is None
    assert api.fake.spawned == ["p1", "p1"]
    statuses = [c["newStatus"] for c in _wait_changes(api, 4)]
    assert statuses == ["Running", "Failed", "Restarting", "Running"]


def test_a_spent_restart_budget_leaves_the_instance_failed(api: Api) -> None:
    api.register_process("p1", maxRestarts=0)
    api.simulate_exit("p1", 1)
    api.wait_status("p1", "Failed")
    wait_until(lambda: api.instance("p1")["lastReason"] == "restart budget exhausted", message="the give-up reason")
    assert api.fake.spawned == ["p1"]


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
def test_an_operator_action_on_an_unknown_instance_is_404(api: Api, action: str) -> None:
    assert api.post(f"/api/instances/nobody/{action}").status_code == 404


@pytest.mark.parametrize(("action", "field"), [("start", "platform"), ("stop", "platform"), ("restart", "podName")])
def test_an_operator_action_on_a_kubernetes_instance_without_a_pod_is_409(api: Api, action: str, field: str) -> None:
    api.register({"instanceId": "pod-1", "platform": "kubernetes"})
    result = api.post(f"/api/instances/pod-1/{action}")
    assert result.status_code == 409
    assert _is_error_body(result.json)
    assert result.json["field"] == field


@pytest.mark.parametrize("action", ["start", "restart"])
def test_starting_a_docker_instance_before_any_container_was_reported_is_409(api: Api, action: str) -> None:
    api.register({"instanceId": "web-1", "platform": "docker"})
    result = api.post(f"/api/instances/web-1/{action}")
    assert result.status_code == 409
    assert _is_error_body(result.json)
    assert result.json["field"] == "containerId"


def test_an_instance_created_by_a_push_is_observe_only_until_given_a_policy(api: Api) -> None:
    assert api.push({"instanceId": "web-2", "status": "Running", "source": "DockerDaemon"}).status_code == 202
    api.wait_status("web-2", "Running")
    assert api.get("/api/instances/web-2").json["restartPolicy"]["mode"] == "never"
    result = api.put("/api/instances/web-2/restart-policy", {"mode": "on-failure", "maxRestarts": 3})
    assert result.status_code == 200, result.json
    assert result.json["restartPolicy"]["mode"] == "on-failure"
    assert result.json["restartPolicy"]["maxRestarts"] == 3
    bad = api.put("/api/instances/web-2/restart-policy", {"mode": "sometimes"})
    assert bad.status_code == 422
    assert bad.json["field"] == "mode"


def test_start_of_an_adopted_process_without_a_command_is_409(api: Api) -> None:
    api.register({"instanceId": "adopted", "platform": "process", "process": {"pid": api.fake.pid}})
    api.post("/api/instances/adopted/stop")
    api.simulate_exit("adopted", None)
    api.wait_status("adopted", "Stopped")
    result = api.post("/api/instances/adopted/start")
    assert result.status_code == 409
    assert result.json["field"] == "process"
