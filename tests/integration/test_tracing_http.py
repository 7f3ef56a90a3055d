"""One trace id from a pusher's span (a client's, or a Docker daemon's event) to the change feed, over real HTTP,
with the SDK's in-memory exporter on both sides: the control plane's spans continue the pushed trace, and the change
keeps the traceparent of the control plane's span, so whoever is told of it continues the same trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import docker
import pytest
import requests
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan

from daemons.docker_daemon import DaemonSettings, DockerDaemon
from draas_actors.api.tracing import PUSH_SPAN, UPDATE_SPAN
from tests.helpers import (
    HTTP_TIMEOUT,
    ProcessJanitor,
    RunningControlPlane,
    Tracing,
    in_memory_tracing,
    running_control_plane,
    traceparent_of_span,
    wait_until,
)
from tests.integration.daemon_support import quick_push_client
from tests.unit.test_docker_daemon import ScriptedEngine, event


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    with in_memory_tracing() as tracing:
        yield tracing


@pytest.fixture
def traced_plane(tmp_path: Path, janitor: ProcessJanitor, tracing: Tracing) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor, tracer=tracing.tracer("control-plane")) as plane:
        yield plane


def change_of(plane: RunningControlPlane, instance_id: str, status: str) -> dict[str, object]:
    found = [c for c in plane.changes(instance_id) if c["newStatus"] == status]
    assert len(found) == 1, found
    return found[0]


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def test_a_pushed_trace_is_continued_by_the_control_plane_s_span_and_kept_by_the_change(
    traced_plane: RunningControlPlane, tracing: Tracing
) -> None:
    pusher = tracing.tracer("pusher")
    with pusher.start_as_current_span("push web-1", kind=trace.SpanKind.CLIENT):
        headers = {**traced_plane.daemon_headers}
        propagate.inject(headers)  # the W3C traceparent header, as any instrumented client sends it
        body = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "platform": "docker"}
        response = requests.post(
            traced_plane.base_url + "/api/status/updates", json=body, headers=headers, timeout=HTTP_TIMEOUT
        )
    assert response.status_code == 202, response.text

    [client] = tracing.spans("push web-1")
    [server] = tracing.spans(PUSH_SPAN)
    assert server.kind is trace.SpanKind.SERVER
    assert server.context.trace_id == client.context.trace_id
    assert parent_id(server) == client.context.span_id
    assert tracing.spans(UPDATE_SPAN) == []  # the update had no trace of its own: the push's span handled it
    assert change_of(traced_plane, "web-1", "Running")["traceparent"] == traceparent_of_span(server)


def test_one_trace_id_travels_from_a_docker_event_through_the_spool_and_the_push_to_the_change_feed(
    tmp_path: Path, traced_plane: RunningControlPlane, tracing: Tracing
) -> None:
    engine = ScriptedEngine()
    settings = DaemonSettings(control_plane_url=traced_plane.base_url, api_key=traced_plane.daemon_key,
                              spool_path=tmp_path / "spool", shutdown_flush=2.0)
    daemon = DockerDaemon(
        settings,
        push=quick_push_client(traced_plane.base_url, traced_plane.daemon_key, tmp_path / "spool"),
        client_factory=lambda _: cast(docker.DockerClient, engine),
        tracer=tracing.tracer("docker-daemon"),
    )
    daemon._outbox.start()
    try:
        since = daemon.resync()
        # A second apart: one observedAt each (nanoseconds apart they would read as the same observation).
        engine.events_to_send = [event("start", "c1", "web-1", 10**9), event("die", "c1", "web-1", 2 * 10**9)]
        daemon.stream(since)
        wait_until(lambda: len(traced_plane.changes("web-1")) >= 2, 10.0, 0.02, "both changes of web-1 in the feed")
    finally:
        daemon._outbox.close()

    started, died = tracing.spans("docker event")
    for event_span, status in ((started, "Running"), (died, "Failed")):
        # The daemon batches updates of several events in one push: each update carries its event's trace in its
        # own traceparent field, and the control plane gives each a span in that trace, linked to the push's span.
        [update] = [s for s in tracing.spans(UPDATE_SPAN) if s.context.trace_id == event_span.context.trace_id]
        assert parent_id(update) == event_span.context.span_id
        [link] = update.links
        assert link.context.span_id in {s.context.span_id for s in tracing.spans(PUSH_SPAN)}
        change = change_of(traced_plane, "web-1", status)
        assert change["traceparent"] == traceparent_of_span(update)
        assert str(change["traceparent"]).split("-")[1] == f"{event_span.context.trace_id:032x}"


def test_an_invalid_traceparent_header_starts_a_fresh_trace_that_the_change_keeps(
    traced_plane: RunningControlPlane, tracing: Tracing
) -> None:
    headers = {**traced_plane.daemon_headers, "traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"}
    body = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "platform": "docker"}
    response = requests.post(
        traced_plane.base_url + "/api/status/updates", json=body, headers=headers, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 202, response.text
    assert response.json()["warnings"][0].startswith("traceparent header ignored")
    [server] = tracing.spans(PUSH_SPAN)
    assert server.parent is None
    assert change_of(traced_plane, "web-1", "Running")["traceparent"] == traceparent_of_span(server)
