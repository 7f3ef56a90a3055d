"""What the webhook tests share: creating a webhook over HTTP, pushing changes, and reading a delivery as a
receiver would (verified with standardwebhooks, parsed with the cloudevents SDK)."""

from __future__ import annotations

from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks import Webhook

from bench.receiver import Received
from tests.helpers import RunningControlPlane


def create_webhook(plane: RunningControlPlane, url: str, **fields: Any) -> dict[str, Any]:
    response = plane.post("/api/webhooks", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def push(plane: RunningControlPlane, instance: str, status: str, **fields: Any) -> None:
    body = {"instanceId": instance, "status": status, "source": "webhook-test", "platform": "docker", **fields}
    response = plane.push(body)
    assert response.status_code == 202, response.text


def verified(secret: str, received: Received) -> BaseCloudEvent:
    """The delivery's event, once its signature checks out (standardwebhooks raises otherwise)."""
    Webhook(secret).verify(received.body, received.headers)
    return from_http_event(HTTPMessage(headers=received.headers, body=received.body))


def subjects_and_statuses(secret: str, received: list[Received]) -> list[tuple[str | None, str]]:
    out = []
    for item in received:
        data = verified(secret, item).get_data()
        assert isinstance(data, dict)
        out.append((data["instanceId"], data["newStatus"]))
    return out
