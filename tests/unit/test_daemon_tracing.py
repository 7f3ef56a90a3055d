"""The daemons' spans: one per engine or watch event, whose traceparent the updates it made carry into the spool
(and so into the push). A resync is no event: its updates carry none. No SDK configured: no traceparent at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import docker
import pytest
from kubernetes import client as k8s
from opentelemetry import trace

from daemons import docker_daemon, k8s_daemon
from daemons.spool import Spool
from tests.helpers import Tracing, in_memory_tracing, traceparent_of_span
from tests.kube.pods import make_pod
from tests.unit.test_docker_daemon import ScriptedEngine, event, row


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    with in_memory_tracing() as tracing:
        yield tracing


def spooled(spool_path: Path) -> list[dict[str, Any]]:
    spool = Spool(spool_path, max_items=100)
    try:
        return [json.loads(item.body) for item in spool.peek(100)]
    finally:
        spool.close()


def run_docker(tmp_path: Path, tracer: trace.Tracer | None) -> list[dict[str, Any]]:
    """A resync listing web-1, then two events about web-2: what the daemon spooled for them."""
    engine = ScriptedEngine()
    engine.rows = [row("c1", "web-1")]
    settings = docker_daemon.DaemonSettings(
        control_plane_url="http://127.0.0.1:9", api_key="k", spool_path=tmp_path / "spool", shutdown_flush=0.0
    )
    # The push client is never started: what the daemon pushes stays in the spool.
    daemon = docker_daemon.DockerDaemon(
        settings, client_factory=lambda _: cast(docker.DockerClient, engine), tracer=tracer
    )
    try:
        since = daemon.resync()
        engine.events_to_send = [event("start", "c2", "web-2", 1), event("die", "c2", "web-2", 2)]
        daemon.stream(since)
    finally:
        daemon._outbox.close()
    return spooled(tmp_path / "spool")


def test_each_docker_event_has_a_span_whose_traceparent_its_update_carries_and_a_resync_none(
    tmp_path: Path, tracing: Tracing
) -> None:
    listed, started, died = run_docker(tmp_path, tracing.tracer("test"))
    spans = tracing.spans("docker event")
    assert [(s.name, s.kind, s.parent, dict(s.attributes or {})) for s in spans] == [
        ("docker event", trace.SpanKind.CONSUMER, None, {"docker.event.action": "start", "container.id": "c2"}),
        ("docker event", trace.SpanKind.CONSUMER, None, {"docker.event.action": "die", "container.id": "c2"}),
    ]
    assert "traceparent" not in listed
    assert (started["status"], started["traceparent"]) == ("Running", traceparent_of_span(spans[0]))
    assert (died["status"], died["traceparent"]) == ("Failed", traceparent_of_span(spans[1]))
    assert spans[0].context.trace_id != spans[1].context.trace_id  # each event its own trace


def test_without_an_sdk_the_docker_daemon_pushes_no_traceparent(tmp_path: Path) -> None:
    assert all("traceparent" not in body for body in run_docker(tmp_path, None))


def test_each_kubernetes_watch_event_has_a_span_whose_traceparent_its_update_carries(
    tmp_path: Path, tracing: Tracing
) -> None:
    settings = k8s_daemon.DaemonSettings(
        control_plane_url="http://127.0.0.1:9", api_key="k", spool_path=tmp_path / "spool", shutdown_flush=0.0
    )
    daemon = k8s_daemon.KubernetesDaemon(
        settings, k8s.Configuration(host="http://127.0.0.1:9"), tracer=tracing.tracer("test")
    )
    try:
        daemon._on_line(json.dumps({"type": "ADDED", "object": make_pod("api-1", namespace="shop")}))
    finally:
        daemon._outbox.close()
    [span] = tracing.exporter.get_finished_spans()
    assert (span.name, span.kind, span.parent) == ("kubernetes watch event", trace.SpanKind.CONSUMER, None)
    assert dict(span.attributes or {}) == {
        "k8s.watch.event.type": "ADDED", "k8s.pod.name": "api-1", "k8s.namespace.name": "shop"
    }
    [body] = spooled(tmp_path / "spool")
    assert (body["instanceId"], body["traceparent"]) == ("api-1", traceparent_of_span(span))
