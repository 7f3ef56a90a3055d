"""What one delivery sends: a CloudEvents 1.0 event in structured JSON mode, signed per Standard Webhooks.

The body is built once per change and kept as bytes: every retry, and a redelivery after a restart, sends the same
bytes under the same ``webhook-id`` (the event's ``id``: the store's id and the change's cursor), so a receiver can
drop what it has already seen. Only ``webhook-timestamp`` and the signature over it are new at each attempt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..messages import StatusChanged
from ..model import ChangeKind
from ..wire import change_view, format_time
from .spec import secret_key

CONTENT_TYPE = "application/cloudevents+json"
STATUS_CHANGED = "io.draas.instance.status.changed"
CONFIGURATION_CHANGED = "io.draas.instance.configuration.changed"
TEST = "io.draas.webhook.test"
USER_AGENT = "draas-actors-webhooks/1"


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    body: bytes
    traceparent: str | None = None


def source_of(configured: str, store_id: str) -> str:
    """The events' ``source``: the configured one, else this control plane's store (stable across restarts)."""
    return configured or f"urn:draas:{store_id}"


def change_event(change: StatusChanged, *, store_id: str, source: str) -> Event:
    """The change's event; the push that caused it (if one did) goes on in it through its ``traceparent``."""
    event_type = CONFIGURATION_CHANGED if change.kind is ChangeKind.CONFIGURATION else STATUS_CHANGED
    event_id = f"{store_id}-{change.cursor}"
    trace = change.traceparent
    return Event(
        event_id, event_type,
        _body(event_id, event_type, source, change.instance_id, change.timestamp, change_view(change), trace),
        trace,
    )


def ping_event(webhook_id: str, *, source: str, now: float) -> Event:
    """``POST /api/webhooks/{id}/test``: an event of its own type, so that a receiver can tell it from a change."""
    event_id = f"test-{uuid.uuid4().hex}"
    data = {"webhookId": webhook_id, "message": "a test event from the draas control plane"}
    return Event(event_id, TEST, _body(event_id, TEST, source, webhook_id, now, data, None))


def _body(
    event_id: str, event_type: str, source: str, subject: str, time: float, data: Any, traceparent: str | None
) -> bytes:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": format_time(time),
        "datacontenttype": "application/json",
        "data": data,
    }
    if traceparent is not None:
        event["traceparent"] = traceparent  # the CloudEvents distributed-tracing extension
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def signed_headers(event_id: str, body: bytes, secret: str, now: float, traceparent: str | None) -> dict[str, str]:
    """The request's headers: Standard Webhooks' ``webhook-id``/``-timestamp``/``-signature`` (``v1,`` and the
    base64 HMAC-SHA256 of ``id.timestamp.body`` keyed with the secret's decoded bytes)."""
    timestamp = str(int(now))
    signed = f"{event_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": f"v1,{signature}",
    }
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return headers


__all__ = [
    "CONFIGURATION_CHANGED",
    "CONTENT_TYPE",
    "STATUS_CHANGED",
    "TEST",
    "Event",
    "change_event",
    "ping_event",
    "signed_headers",
    "source_of",
]
