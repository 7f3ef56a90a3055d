"""GET /metrics through falcon.testing over a real ControlPlane (fake processes): names, labels, values that move."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from prometheus_client.samples import Sample

from draas_actors.api.app import create_app
from draas_actors.metrics import Metrics
from draas_actors.security import SecuritySettings
from draas_actors.system import ControlPlane, SystemSettings
from tests.helpers import wait_until
from tests.metrics_support import samples_of, value
from tests.unit.test_api_routes import DAEMON_KEY, OPERATOR_KEY, Api, FakeProcesses

# What the brief asks for, at least (counters are exposed with _total).
REQUIRED = {
    "draas_instances", "draas_status_changes", "draas_restarts", "draas_restart_budgets_exhausted",
    "draas_pushed_updates", "draas_http_requests", "draas_http_request_duration_seconds", "draas_actor_deaths",
    "draas_actor_restarts", "draas_store_flush_duration_seconds", "draas_change_log_head_cursor",
}


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    started: list[ControlPlane] = []

    def start(security: SecuritySettings | None = None) -> Api:
        fake = FakeProcesses(tmp_path / f"logs{len(started)}")
        cp = ControlPlane(SystemSettings(data_dir=tmp_path, store_path=":memory:"), processes=fake)
        started.append(cp)
        cp.start()
        app = create_app(cp, security=security, daemon_keys=(DAEMON_KEY,), operator_keys=(OPERATOR_KEY,))
        return Api(cp, testing.TestClient(app), fake)

    yield start
    for cp in started:
        cp.stop()


def scrape(api: Api, key: str | None = None) -> list[Sample]:
    result = api.get("/metrics", key=key)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/plain")
    return samples_of(result.text)


def test_every_metric_is_named_draas_and_none_has_an_instance_id_label() -> None:
    metrics = Metrics()
    names = {family.name for family in metrics.registry.collect()}
    assert all(name.startswith("draas_") for name in names), names
    assert REQUIRED - {"draas_instances", "draas_change_log_head_cursor"} <= names
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert not {"instance_id", "instanceId", "instance"} & set(sample.labels)


def test_two_control_planes_count_apart(start_api: Callable[..., Api]) -> None:
    first, second = start_api(), start_api()
    assert first.cp.metrics.registry is not second.cp.metrics.registry
    first.push({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"})
    assert value(scrape(first), "draas_pushed_updates_total", outcome="accepted") == 1
    assert value(scrape(second), "draas_pushed_updates_total", outcome="accepted") == 0


def test_pushes_changes_and_requests_are_counted_and_the_instances_gauge_is_computed(
    start_api: Callable[..., Api],
) -> None:
    api = start_api()
    assert api.push({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}).status_code == 202
    # Running -> Running again: applied (nothing changes); an unknown status: rejected before routing (422).
    assert api.push([
        {"instanceId": "web-2", "status": "Running", "source": "DockerDaemon"},
        {"instanceId": "web-1", "status": "Stopped", "source": "DockerDaemon"},
    ]).status_code == 202
    samples = scrape(api)
    assert value(samples, "draas_pushed_updates_total", outcome="accepted") == 3
    assert value(samples, "draas_instances", platform="docker", status="Running") == 1
    assert value(samples, "draas_instances", platform="docker", status="Stopped") == 1
    assert value(samples, "draas_status_changes_total", platform="docker") >= 3
    assert value(samples, "draas_change_log_head_cursor") >= 3
    assert value(samples, "draas_http_requests_total", method="POST", route="/api/status/updates", code="202") == 2
    assert value(samples, "draas_http_request_duration_seconds_count", route="/api/status/updates") == 2
    assert value(samples, "draas_store_flush_duration_seconds_count") >= 1
    api.get("/api/instances/web-1")
    api.get("/no/such/path")
    samples = scrape(api)
    assert value(samples, "draas_http_requests_total", route="/api/instances/{instance_id}", code="200") == 1
    assert value(samples, "draas_http_requests_total", route="unmatched", code="404") == 1
    names = {s.name for s in samples}
    assert all(name.startswith("draas_") for name in names), names
    assert all(v not in {"web-1", "web-2"} for s in samples for v in s.labels.values())


def test_a_restart_by_the_policy_and_an_exhausted_budget_are_counted(start_api: Callable[..., Api]) -> None:
    api = start_api()
    api.register_process("svc", mode="on-failure", maxRestarts=1, window=3600, initialBackoff=0, jitter=0)
    api.simulate_exit("svc", 1)
    wait_until(lambda: value(scrape(api), "draas_restarts_total", platform="process", reason="crashed") == 1)
    wait_until(lambda: api.status_of("svc") == "Running")
    api.simulate_exit("svc", 1)
    wait_until(lambda: value(scrape(api), "draas_restart_budgets_exhausted_total", platform="process") == 1)


def test_metrics_are_public_by_default_and_need_a_read_key_when_the_setting_says_so(
    start_api: Callable[..., Api],
) -> None:
    public = start_api()
    assert public.get("/metrics", key=None).status_code == 200
    guarded = start_api(SecuritySettings(metrics_require_key=True))
    assert guarded.get("/metrics", key=None).status_code == 401
    assert guarded.get("/metrics", key=OPERATOR_KEY).status_code == 200
    document: Any = guarded.get("/api/openapi.json", key=None).json
    assert document["paths"]["/metrics"]["get"]["security"]


def test_series_known_in_advance_start_at_zero_before_anything_happens(start_api: Callable[..., Api]) -> None:
    samples = scrape(start_api())
    present = {(s.name, tuple(sorted(s.labels.items()))) for s in samples}
    for name, labels in [
        ("draas_restarts_total", {"platform": "process", "reason": "crashed"}),
        ("draas_restart_budgets_exhausted_total", {"platform": "kubernetes"}),
        ("draas_status_changes_total", {"platform": "docker", "status": "Failed"}),
        ("draas_pushed_updates_total", {"outcome": "out_of_scope"}),
        ("draas_actor_deaths_total", {"kind": "store"}),
        ("draas_actor_restarts_total", {"kind": "instance"}),
    ]:
        assert (name, tuple(sorted(labels.items()))) in present, (name, labels)
        assert value(samples, name, **labels) == 0


def test_updates_refused_on_their_face_are_counted_as_rejected(start_api: Callable[..., Api]) -> None:
    api = start_api()
    assert api.push({"instanceId": "web-1", "status": "Sleeping", "source": "DockerDaemon"}).status_code == 422
    assert api.push([
        {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}, "not an update", {"status": "Running"},
    ]).status_code == 202
    samples = scrape(api)
    assert value(samples, "draas_pushed_updates_total", outcome="rejected") == 3
    assert value(samples, "draas_pushed_updates_total", outcome="accepted") == 1


def test_the_instances_gauge_is_counted_in_the_store_without_decoding_a_record(
    start_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = start_api()
    assert api.push([
        {"instanceId": f"web-{i}", "status": "Running", "source": "DockerDaemon"} for i in range(3)
    ]).status_code == 202

    def no_decoding(text: str) -> None:
        raise AssertionError("a scrape decoded a record")

    # With 10,000 instances, decoding every record made one scrape take 300 ms (GROUP BY in the store: 7 ms).
    monkeypatch.setattr("draas_actors.actors.store.record_from_json", no_decoding)
    samples = scrape(api)
    assert value(samples, "draas_instances", platform="docker", status="Running") == 3


def test_a_source_that_fails_at_scrape_time_leaves_its_metric_out_and_the_others_in() -> None:
    metrics = Metrics()

    def failing() -> list[tuple[str, int]]:
        raise RuntimeError("dictionary changed size during iteration")

    metrics.compute(instance_counts=failing, head_cursor=lambda: 7)  # type: ignore[arg-type]
    metrics.compute_webhook_lag(failing)
    samples = samples_of(metrics.exposition().decode())
    names = {s.name for s in samples}
    assert "draas_instances" not in names and "draas_webhook_lag" not in names
    assert value(samples, "draas_change_log_head_cursor") == 7
