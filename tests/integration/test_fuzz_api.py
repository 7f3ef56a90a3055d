"""Fuzzing every operation of the API from the OpenAPI document it serves, over real HTTP, with valid keys.

schemathesis reads ``GET /api/openapi.json`` from a live control plane and hypothesis generates requests for each
operation, in two modes: valid requests (positive) and requests that break the document (negative, which must get a
4xx). Every response must not be a 5xx and must match what the document promises (status code, content type, body
schema). Afterwards no actor may have died, no thread may have raised, the supervisor must not have escalated, and
``/readyz`` must answer ready.

What the fuzzer may not do is touch anything outside the test: Docker and Kubernetes point at nothing, webhooks
may point only at 127.0.0.1, a fuzzed
command runs behind a Python sleeper (its words become that sleeper's arguments) and a fuzzed PID to adopt becomes
the test's own sleeper. Both transformations keep a valid request valid and an invalid one invalid.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from draas_actors.api.routes import ROUTES
from draas_actors.api.stream import STREAM_PATH
from draas_actors.platforms.kubernetes import KubernetesSettings
from draas_actors.security import (
    ADMIN,
    PUBLIC,
    PUSH,
    AuthSettings,
    Credential,
    SecuritySettings,
    daemon_identity,
    hash_key,
    new_key,
    operator_identity,
)
from draas_actors.webhooks import WebhookSettings
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane, wait_until

pytestmark = pytest.mark.fuzz

# Examples per operation and mode: enough to reach past the validators into the actors, small enough that both
# modes together stay well under a minute on two cores. DRAAS_FUZZ_EXAMPLES=1000 for a deeper run by hand.
EXAMPLES = int(os.environ.get("DRAAS_FUZZ_EXAMPLES", "100"))
MARKER = "draas-fuzz-sleeper"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)", MARKER]
AUTH_HEADERS = ("x-api-key", "authorization")
PID_MAX = 2**22  # Linux's highest possible pid_max: a PID above it can never exist
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Existing instances the fuzzer's path parameters and pushes are steered to, so that operations get past 404: one
# of each platform, registered afresh (new ids) for every operation, as a fuzzed DELETE may have removed them.
KNOWN: dict[str, dict[str, Any]] = {
    "process": {"platform": "process", "process": {"command": SLEEPER, "stopTimeout": 2}},
    "docker": {"platform": "docker"},
    "kubernetes": {"platform": "kubernetes"},
}
# Loggers whose errors mean an actor died or something failed that nobody expected.
DEATH_LOGGERS = ("pykka", "draas_actors.actors.supervisor", "draas_actors.actors.watched", "draas_actors.api",
                 "draas_actors.platforms.actions")


@dataclass
class Keys:
    daemon: str = field(default_factory=new_key)
    admin: str = field(default_factory=new_key)


def _security(keys: Keys) -> SecuritySettings:
    # Generous rates: a 429 would hide whatever the request would have found.
    return SecuritySettings(
        auth=AuthSettings(
            credentials=(
                Credential(
                    identity=daemon_identity("fuzz-daemon", rate=1_000_000.0, burst=1_000_000),
                    key_hashes=(hash_key(keys.daemon),),
                ),
                Credential(identity=operator_identity("fuzz-admin", ADMIN), key_hashes=(hash_key(keys.admin),)),
            )
        )
    )


class Failures(logging.Handler):
    """Collects error records from the loggers that report dead actors and unexpected failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(DEATH_LOGGERS):
            self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def failures() -> Iterator[Failures]:
    handler = Failures()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Exceptions that ended any thread (a timer, the scheduler, an action worker) during the test."""
    errors: list[str] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        errors.append(f"thread {name}: {args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", hook)
    return errors


@pytest.fixture(autouse=True)
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis keeps caches beside its example database: in the test's tmp dir, not in the repository."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """The only process a fuzzed registration may adopt."""
    process = subprocess.Popen(SLEEPER, stdin=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def fuzz_plane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, janitor: ProcessJanitor
) -> Iterator[tuple[RunningControlPlane, Keys]]:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")  # no engine: every action fails
    keys = Keys()
    with running_control_plane(
        tmp_path / "data",
        security=_security(keys),
        janitor=janitor,
        kubernetes=KubernetesSettings(kubeconfig=str(tmp_path / "no-kubeconfig"), request_timeout=1.0),
        # Fuzzed webhooks may point only at this machine: no delivery or test event leaves it.
        webhooks=WebhookSettings(allowed_hosts=("127.0.0.1",), timeout=1.0, connect_timeout=0.5),
    ) as plane:
        try:
            yield plane, keys
        finally:
            # Deregistered instances' processes are nobody's any more: find them by their marker, kill by PID.
            for child in psutil.Process().children(recursive=True):
                try:
                    if MARKER in child.cmdline():
                        janitor.track(child.pid)
                except psutil.Error:
                    pass


def _headers(case: Case[Any], keys: Keys) -> dict[str, str]:
    """The key the operation's own security requirement asks for: the daemon's on the push route, else admin's."""
    role = case.operation.definition.raw["x-required-role"]
    if role == PUBLIC:
        return {}
    if role == PUSH:
        return {"X-API-Key": keys.daemon}
    return {"Authorization": f"Bearer {keys.admin}"}


def _safe_process(process: Any, adoptable: int) -> Any:
    """A fuzzed ``process`` that runs only our sleeper and adopts only our sleeper; its validity is unchanged."""
    if not isinstance(process, dict):
        return process
    safe = dict(process)
    command = safe.get("command")
    if isinstance(command, list) and command and all(isinstance(word, str) for word in command):
        safe["command"] = [*SLEEPER, *command]
    pid = safe.get("pid")
    # JSON Schema counts 400.0 as an integer: any number that could name a real process becomes our sleeper.
    if isinstance(pid, (int, float)) and not isinstance(pid, bool) and 1 <= pid <= PID_MAX and pid == int(pid):
        safe["pid"] = adoptable if type(pid) is int else float(adoptable)
    return safe


def _prepare(case: Case[Any], adoptable: int) -> Case[Any]:
    """Drop the credentials schemathesis made up from the security schemes (``_headers`` sends real ones) and make
    a registration safe to run."""
    for name in [name for name in case.headers or {} if name.lower() in AUTH_HEADERS]:
        del case.headers[name]
    if case.operation.label == "POST /api/instances" and isinstance(case.body, dict) and "process" in case.body:
        case.body = {**case.body, "process": _safe_process(case.body["process"], adoptable)}
    return case


def _steer_push(case: Case[Any], instance_id: str | None) -> Case[Any]:
    """A valid push about a known instance instead of a new one (a known id is as valid as a generated one)."""
    if instance_id is None:
        return case
    body = case.body
    if isinstance(body, dict):
        case.body = {**body, "instanceId": instance_id}
    elif isinstance(body, list) and body and isinstance(body[0], dict):
        case.body = [{**body[0], "instanceId": instance_id}, *body[1:]]
    return case


def _strategy(
    operation: Any, mode: GenerationMode, known_ids: list[str], adoptable: int
) -> st.SearchStrategy[Case[Any]]:
    strategy = operation.as_strategy(generation_mode=mode)
    if "{instance_id}" in operation.path:
        known = st.sampled_from(known_ids).flatmap(
            lambda known_id: operation.as_strategy(generation_mode=mode, path_parameters={"instance_id": known_id})
        )
        strategy = st.one_of(strategy, known)
    if operation.label == "POST /api/status/updates" and mode.is_positive:
        # Only valid pushes: in an invalid one the generated id may be the very thing that makes it invalid.
        strategy = st.tuples(strategy, st.sampled_from([None, *known_ids])).map(lambda pair: _steer_push(*pair))
    prepared: st.SearchStrategy[Case[Any]] = strategy.map(lambda case: _prepare(case, adoptable))
    return prepared


def _seed(plane: RunningControlPlane, keys: Keys, generation: int) -> list[str]:
    """Register one instance of each platform, with ids of their own, and return the ids."""
    ids = {platform: f"fuzz-{platform}-{generation}" for platform in KNOWN}
    for platform, body in KNOWN.items():
        response = requests.post(
            plane.base_url + "/api/instances", json={"instanceId": ids[platform], **body},
            headers={"X-API-Key": keys.admin}, timeout=HTTP_TIMEOUT,
        )
        assert response.status_code == 201, response.text
    # A container and a pod, so that fuzzed actions get as far as calling the (absent) engine and API server.
    push = requests.post(
        plane.base_url + "/api/status/updates",
        json=[
            {"instanceId": ids["docker"], "status": "Running", "source": "DockerDaemon", "platform": "docker",
             "metadata": {"containerId": "fuzz-container"}},
            {"instanceId": ids["kubernetes"], "status": "Running", "source": "KubernetesDaemon",
             "platform": "kubernetes", "metadata": {"podName": "fuzz-pod", "namespace": "default"}},
        ],
        headers={"X-API-Key": keys.daemon},
        timeout=HTTP_TIMEOUT,
    )
    assert push.status_code == 202 and push.json()["accepted"] == 2, push.text
    return sorted(ids.values())


def _follow_up(plane: RunningControlPlane, keys: Keys, response: schemathesis.Response) -> None:
    """A registration the fuzzer made is started, restarted, stopped and deleted: its fuzzed spec gets used."""
    instance_id = response.json()["instanceId"]
    path = f"/api/instances/{instance_id}"
    headers = {"X-API-Key": keys.admin}
    for method, suffix in (("POST", "/start"), ("POST", "/restart"), ("GET", ""), ("POST", "/stop"),
                           ("DELETE", "")):
        answer = requests.request(method, plane.base_url + path + suffix, headers=headers, timeout=HTTP_TIMEOUT)
        assert answer.status_code < 500, f"{method} {path}{suffix} after registering {response.request.body!r}: " \
                                         f"{answer.status_code} {answer.text}"


@schemathesis.check
def negative_data_rejection_per_batch_item(ctx: Any, response: schemathesis.Response, case: Case[Any]) -> bool | None:
    """``negative_data_rejection``, except that a push batch is judged item by item, as documented: it is answered
    202 when any item is accepted, and each invalid item is rejected in its own result. (Which examples the fuzzer
    draws shifts with the document: once the webhook routes were added it drew such a batch.)"""
    if (
        case.operation.label == "POST /api/status/updates"
        and isinstance(case.body, list)
        and response.status_code == 202
        and response.json().get("rejected", 0) > 0
    ):
        return None
    result: bool | None = negative_data_rejection(ctx, response, case)
    return result


def _has_inputs(operation: Any) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


def _fuzz(plane: RunningControlPlane, keys: Keys, mode: GenerationMode, adoptable: int) -> Counter[str]:
    """Every operation of the live document, ``EXAMPLES`` each; fails naming every operation that failed."""
    schema = schemathesis.openapi.from_url(plane.base_url + "/api/openapi.json")
    checks = [*CHECKS, negative_data_rejection_per_batch_item] if mode.is_negative else CHECKS
    calls: Counter[str] = Counter()
    errors: dict[str, str] = {}
    for generation, result in enumerate(schema.get_all_operations()):
        assert isinstance(result, Ok), result
        operation = result.ok()
        if mode.is_negative and not _has_inputs(operation):
            calls[operation.label] = 0  # nothing to make invalid: /healthz and /readyz take no input
            continue
        if operation.path == STREAM_PATH:
            # A valid request opens a stream that never ends, and schemathesis reads a response to its end; the
            # stream's refusals and events are tested in test_stream_http.py.
            calls[operation.label] = 0
            continue
        known_ids = _seed(plane, keys, generation)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,  # the same requests on every run and in CI
            database=None,  # no example database in the repository
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        )
        @given(case=_strategy(operation, mode, known_ids, adoptable))
        def run(case: Case[Any]) -> None:
            calls[case.operation.label] += 1
            response = case.call_and_validate(
                base_url=plane.base_url, headers=_headers(case, keys), checks=checks, timeout=HTTP_TIMEOUT
            )
            if case.operation.label == "POST /api/instances" and response.status_code == 201:
                _follow_up(plane, keys, response)

        try:
            run()
        except (Exception, FailureGroup) as error:  # every operation's failures, reported together below
            notes = "\n".join(getattr(error, "__notes__", ()))
            errors[operation.label] = f"{type(error).__name__}: {error}\n{notes}"
    assert not errors, "\n\n".join(f"== {label} ==\n{text}" for label, text in errors.items())
    return calls


def _assert_everything_alive(plane: RunningControlPlane, failures: Failures, thread_errors: list[str]) -> None:
    ready, details = plane.cp.ready()
    assert ready, details
    assert details["escalated"] == []
    readyz = requests.get(plane.base_url + "/readyz", timeout=HTTP_TIMEOUT)
    assert readyz.status_code == 200, readyz.text
    # The store lists as many instances as the supervisor has actors (a dropped save would hide one from
    # GET /api/instances and lose it at the next start), and each actor answers. Asked through the facade, not over
    # HTTP: an id may hold a "/", which no URL path can carry to the {instance_id} routes.
    wait_until(
        lambda: plane.cp.health().instances == len(plane.cp.list_instances()),
        message="the store lists every instance the supervisor has an actor for",
    )
    records = plane.cp.list_instances()
    for record in records:
        assert plane.cp.get_instance(record.instance_id).instance_id == record.instance_id
    assert failures.records == []
    assert thread_errors == []


def _expected_operations() -> set[str]:
    return {f"{operation.method} {operation.path}" for operation in ROUTES}


# schemathesis's negative mode draws from the random module inside its strategies; hypothesis seeds that module for
# every example, so the run stays reproducible and the deprecation warning says nothing about this test.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_fuzzed_requests_to_every_operation_get_no_server_error_and_leave_every_actor_alive(
    fuzz_plane: tuple[RunningControlPlane, Keys],
    sleeper: subprocess.Popen[bytes],
    failures: Failures,
    thread_errors: list[str],
    mode: GenerationMode,
) -> None:
    plane, keys = fuzz_plane
    calls = _fuzz(plane, keys, mode, sleeper.pid)

    # schemathesis leaves out the operation that serves the document it was loaded from: that GET was the load.
    assert set(calls) == _expected_operations() - {"GET /api/openapi.json"}
    _assert_everything_alive(plane, failures, thread_errors)
