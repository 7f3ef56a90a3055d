"""The body and headers of a delivery, as a receiver reads them: verified with standardwebhooks, parsed with the
cloudevents SDK."""

from __future__ import annotations

import dataclasses
import json
import time

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook

from draas_actors.messages import StatusChanged
from draas_actors.model import ChangeKind, InstanceId, Platform, Status
from draas_actors.webhooks.event import (
    CONFIGURATION_CHANGED,
    STATUS_CHANGED,
    TEST,
    change_event,
    ping_event,
    signed_headers,
    source_of,
)
from draas_actors.webhooks.spec import new_secret

NOW = 1_800_000_000.0
CHANGE = StatusChanged(
    instance_id=InstanceId("web-1"), platform=Platform.PROCESS, old_status=Status.RUNNING, new_status=Status.FAILED,
    source="monitor", timestamp=NOW - 1, metadata={"exitCode": "137"}, cursor=42,
)


def test_a_change_is_a_cloudevent_signed_per_standard_webhooks() -> None:
    secret = new_secret()
    event = change_event(CHANGE, store_id="s1", source=source_of("", "s1"))
    # standardwebhooks checks the timestamp against its own clock (5 minutes either way): signed "now".
    headers = signed_headers(event.event_id, event.body, secret, time.time(), None)
    assert Webhook(secret).verify(event.body, headers) == json.loads(event.body)
    parsed = from_http_event(HTTPMessage(headers=headers, body=event.body))
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == headers["webhook-id"] == "s1-42"
    assert parsed.get_source() == "urn:draas:s1"
    assert parsed.get_type() == STATUS_CHANGED
    assert parsed.get_subject() == "web-1"
    assert parsed.get_datacontenttype() == "application/json"
    data = parsed.get_data()
    assert isinstance(data, dict) and data["cursor"] == 42 and data["newStatus"] == "Failed"
    assert parsed.get_time() is not None


def test_the_same_change_makes_the_same_body_and_id_every_time() -> None:
    one = change_event(CHANGE, store_id="s1", source="urn:x")
    two = change_event(CHANGE, store_id="s1", source="urn:x")
    assert one == two


def test_a_configured_source_and_a_configuration_change() -> None:
    change = StatusChanged(
        instance_id=InstanceId("web-1"), platform=Platform.PROCESS, old_status=Status.RUNNING,
        new_status=Status.RUNNING, source="api", timestamp=NOW, metadata={}, cursor=7, kind=ChangeKind.CONFIGURATION,
    )
    event = change_event(change, store_id="s1", source=source_of("https://plane.example/", "s1"))
    assert event.event_type == CONFIGURATION_CHANGED
    assert json.loads(event.body)["source"] == "https://plane.example/"


def test_a_traceparent_travels_as_a_header_and_as_the_distributed_tracing_extension() -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    event = change_event(dataclasses.replace(CHANGE, traceparent=trace), store_id="s1", source="urn:x")
    headers = signed_headers(event.event_id, event.body, new_secret(), NOW, event.traceparent)
    assert headers["traceparent"] == trace
    assert from_http_event(HTTPMessage(headers=headers, body=event.body)).get_extension("traceparent") == trace


def test_a_test_event_has_a_type_of_its_own() -> None:
    event = ping_event("wh_0123456789abcdef", source="urn:x", now=NOW)
    assert event.event_type == TEST and json.loads(event.body)["subject"] == "wh_0123456789abcdef"
