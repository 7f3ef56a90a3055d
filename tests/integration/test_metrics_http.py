"""GET /metrics over real HTTP (waitress on 127.0.0.1): a push of every outcome, an instance actor's crash and
restart, a real process restarted by its policy until its budget is spent, then scrapes parsed with
prometheus_client's parser; and the key-protected setting."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.samples import Sample

from draas_actors.model import Platform
from draas_actors.security import READ, AuthSettings, SecuritySettings, daemon_identity, operator_identity
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane
from tests.integration.test_process_lifecycle import process_body, sleeper
from tests.integration.test_supervision import crash_instance_actor, replacement
from tests.metrics_support import label_values, scrape, scrape_until, value
from tests.security_fixtures import credential, fixed_key
from tests.unit.test_metrics import REQUIRED

PUSHED = ("web-1", "web-2", "web-3")
# Every instance id the test names: none may turn up as a label value.
INSTANCE_IDS = {*PUSHED, "svc", "db-1", "nobody-1"}
SCOPED, READER = fixed_key("scoped"), fixed_key("reader")
CREDENTIALS = AuthSettings(credentials=(
    credential(daemon_identity("docker-web", platforms=frozenset({Platform.DOCKER}), instances=("web-*",)), SCOPED),
    credential(operator_identity("reader", READ), READER),
))


@pytest.fixture
def plane(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor, security=SecuritySettings(auth=CREDENTIALS)) as up:
        yield up


def metrics_until(plane: RunningControlPlane, name: str, expected: float, **labels: str) -> list[Sample]:
    return scrape_until(plane.base_url + "/metrics", name, expected, 5.0, **labels)


def update(instance_id: str, status: str, observed_at: float, **fields: Any) -> dict[str, Any]:
    return {"instanceId": instance_id, "status": status, "source": "DockerDaemon", "observedAt": observed_at, **fields}


def push_one_of_each_outcome(plane: RunningControlPlane) -> None:
    """3 accepted + 1 accepted below, 1 stale, 1 refused transition, 2 rejected, 1 out of scope."""
    now = time.time()
    assert plane.push([update(i, "Running", now) for i in PUSHED]).status_code == 202
    # Older than what the same source already said about web-1: stale, its status kept.
    assert plane.push(update("web-1", "Stopped", now - 60)).json()["outcome"] == "stale"
    assert plane.instance("web-1")["status"] == "Running"
    # Stopped -> Stopping is not a transition the table allows: refused, its status kept.
    assert plane.push(update("web-3", "Stopped", now + 1)).json()["outcome"] == "applied"
    assert plane.push(update("web-3", "Stopping", now + 2)).json()["outcome"] == "invalidTransition"
    # Rejected: one item invalid on its face (an unknown status), one the control plane cannot place (no platform).
    rejected = plane.push([
        update("web-2", "Sleeping", now + 3),
        {"instanceId": "nobody-1", "status": "Running", "source": "someone", "observedAt": now + 3},
    ])
    assert rejected.status_code == 422, rejected.text
    assert rejected.json()["rejected"] == 2
    # A daemon scoped to Docker's web-* names another instance: out of scope, the push refused as a whole.
    out_of_scope = requests.post(
        plane.base_url + "/api/status/updates", json=update("db-1", "Running", now, platform="docker"),
        headers={"X-API-Key": SCOPED}, timeout=HTTP_TIMEOUT,
    )
    assert out_of_scope.status_code == 403, out_of_scope.text


def test_a_scrape_counts_every_push_outcome_requests_changes_and_the_store(plane: RunningControlPlane) -> None:
    push_one_of_each_outcome(plane)

    samples = scrape(plane.base_url + "/metrics")
    assert value(samples, "draas_pushed_updates_total", outcome="accepted") == 4
    assert value(samples, "draas_pushed_updates_total", outcome="stale") == 1
    assert value(samples, "draas_pushed_updates_total", outcome="refused_transition") == 1
    assert value(samples, "draas_pushed_updates_total", outcome="rejected") == 2
    assert value(samples, "draas_pushed_updates_total", outcome="out_of_scope") == 1
    assert value(samples, "draas_instances", platform="docker", status="Running") == 2
    assert value(samples, "draas_instances", platform="docker", status="Stopped") == 1
    assert value(samples, "draas_status_changes_total", platform="docker", status="Running") == 3
    assert value(samples, "draas_status_changes_total", platform="docker", status="Stopped") == 1
    assert value(samples, "draas_change_log_head_cursor") == len(plane.changes())
    route = "/api/status/updates"
    assert value(samples, "draas_http_requests_total", method="POST", route=route, code="202") == 4
    assert value(samples, "draas_http_requests_total", method="POST", route=route, code="422") == 1
    assert value(samples, "draas_http_requests_total", method="POST", route=route, code="403") == 1
    assert value(samples, "draas_http_request_duration_seconds_count", route=route) == 6
    assert value(samples, "draas_http_request_duration_seconds_bucket", route=route, le="+Inf") == 6
    assert value(samples, "draas_store_flush_duration_seconds_count") >= 1
    # The scrape itself is counted on the next one, under its route and not a path.
    assert value(scrape(plane.base_url + "/metrics"), "draas_http_requests_total", route="/metrics", code="200") >= 1


def test_actor_and_workload_restarts_are_counted_by_kind_platform_and_reason(plane: RunningControlPlane) -> None:
    now = time.time()
    assert plane.push(update("web-2", "Running", now)).status_code == 202
    dead = crash_instance_actor(plane.cp, "web-2")
    replacement(plane.cp, "web-2", dead)
    samples = metrics_until(plane, "draas_actor_restarts_total", 1, kind="instance")
    assert value(samples, "draas_actor_deaths_total", kind="instance") == 1

    # A real process, killed by a signal that is not ours: restarted once by its policy, then its budget is spent.
    policy = {"mode": "always", "maxRestarts": 1, "window": 3600, "initialBackoff": 0.01, "jitter": 0}
    first = plane.register(process_body("svc", sleeper(), policy))["runtime"]["pid"]
    os.kill(first, signal.SIGKILL)
    second = plane.wait_for("svc", lambda v: v["restartCount"] == 1 and v["status"] == "Running")["runtime"]["pid"]
    samples = metrics_until(plane, "draas_restarts_total", 1, platform="process")
    assert value(samples, "draas_restarts_total", platform="process", reason="killed") == 1
    assert value(samples, "draas_restart_budgets_exhausted_total", platform="process") == 0
    os.kill(second, signal.SIGKILL)
    plane.wait_for("svc", lambda v: v["lastReason"] == "restart budget exhausted")
    samples = metrics_until(plane, "draas_restart_budgets_exhausted_total", 1, platform="process")
    assert value(samples, "draas_restarts_total", platform="process") == 1
    assert value(samples, "draas_instances", platform="process", status="Failed") == 1


def test_every_metric_the_issue_lists_is_exposed_named_draas_and_without_an_instance_id(
    plane: RunningControlPlane,
) -> None:
    push_one_of_each_outcome(plane)
    dead = crash_instance_actor(plane.cp, "web-2")
    replacement(plane.cp, "web-2", dead)
    samples = metrics_until(plane, "draas_actor_restarts_total", 1)

    families = {s.name.removesuffix("_total").removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
                for s in samples}
    assert families >= REQUIRED, REQUIRED - families
    assert all(s.name.startswith("draas_") for s in samples), sorted({s.name for s in samples})
    labels = label_values(samples)
    assert not labels & INSTANCE_IDS, labels & INSTANCE_IDS
    # A path with an id in it is counted under its route template, never the path.
    assert plane.get("/api/instances/web-1").status_code == 200
    labels = label_values(scrape(plane.base_url + "/metrics"))
    assert "/api/instances/{instance_id}" in labels
    assert not labels & INSTANCE_IDS


def test_with_require_key_metrics_need_a_read_key(tmp_path: Path, janitor: ProcessJanitor) -> None:
    security = SecuritySettings(auth=CREDENTIALS, metrics_require_key=True)
    with running_control_plane(tmp_path / "data", janitor=janitor, security=security) as plane:
        refused = requests.get(plane.base_url + "/metrics", timeout=HTTP_TIMEOUT)
        assert refused.status_code == 401, refused.text
        assert "draas_" not in refused.text
        samples = scrape(plane.base_url + "/metrics", key=READER)
        # The refusal was counted like any other request, under the route's template.
        assert value(samples, "draas_http_requests_total", route="/metrics", code="401") == 1
