"""Resources of /api/webhooks: parse, delegate to the control plane's ``WebhookManager``, render."""

from __future__ import annotations

from typing import Any

import falcon

from ..errors import InvalidInput
from ..webhooks import WebhookManager
from ..webhooks.registry import STATES, Delivery
from ..webhooks.sender import Result
from ..webhooks.spec import Webhook, webhook_view
from ..wire import format_time
from . import limits


def _view(manager: WebhookManager, webhook: Webhook) -> dict[str, Any]:
    return {**webhook_view(webhook), "lag": manager.lag(webhook)}


def _limit(req: falcon.Request) -> int:
    value = req.get_param("limit")
    if value is None:
        return 100
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise InvalidInput("limit: must be an integer between 1 and 1000", field="limit")
    return int(value)


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.delivery_id,
        "eventId": delivery.event_id,
        "eventType": delivery.event_type,
        "cursor": delivery.cursor,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "firstAttempt": format_time(delivery.first_attempt),
        "lastAttempt": format_time(delivery.last_attempt),
        "nextAttempt": format_time(delivery.next_attempt),
        "lastError": delivery.last_error,
    }


def result_view(result: Result) -> dict[str, Any]:
    return {"delivered": result.ok, "outcome": result.outcome, "status": result.status, "error": result.error}


class Webhooks:
    """GET /api/webhooks ; POST /api/webhooks"""

    def __init__(self, manager: WebhookManager) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"webhooks": [_view(self.manager, w) for w in self.manager.all()]}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        webhook, secret = self.manager.create(limits.read_json(req))
        resp.status = falcon.HTTP_201
        resp.location = f"/api/webhooks/{webhook.webhook_id}"
        resp.media = {**_view(self.manager, webhook), "secret": secret}  # the only answer that shows it


class WebhookResource:
    """GET / PATCH / DELETE /api/webhooks/{webhook_id}"""

    def __init__(self, manager: WebhookManager) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        resp.media = _view(self.manager, self.manager.get(webhook_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        resp.media = _view(self.manager, self.manager.update(webhook_id, limits.read_json(req)))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        self.manager.delete(webhook_id)
        resp.status = falcon.HTTP_204


class WebhookDeliveries:
    """GET /api/webhooks/{webhook_id}/deliveries?state=failed|dead&limit= : newest first."""

    def __init__(self, manager: WebhookManager) -> None:
        self.manager = manager

    def on_get(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        state = req.get_param("state")
        if state is not None and state not in STATES:
            raise InvalidInput(f"state: must be one of {', '.join(STATES)}", field="state")
        deliveries = self.manager.deliveries(webhook_id, state, _limit(req))
        resp.media = {"deliveries": [delivery_view(d) for d in deliveries]}


class WebhookDeliveryRetry:
    """POST /api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry : send a dead letter again, now."""

    def __init__(self, manager: WebhookManager) -> None:
        self.manager = manager

    def on_post(self, req: falcon.Request, resp: falcon.Response, webhook_id: str, delivery_id: str) -> None:
        if not delivery_id.isdigit() or len(delivery_id) > 18:
            raise InvalidInput("deliveryId: must be a delivery's id (an integer)", field="deliveryId")
        delivery, result = self.manager.retry(webhook_id, int(delivery_id))
        view = delivery_view(delivery)
        if result.ok:
            view["state"] = "delivered"
        resp.media = {"delivery": view, "result": result_view(result)}


class WebhookTest:
    """POST /api/webhooks/{webhook_id}/test : one test event, now, outside the ordered deliveries."""

    def __init__(self, manager: WebhookManager) -> None:
        self.manager = manager

    def on_post(self, req: falcon.Request, resp: falcon.Response, webhook_id: str) -> None:
        event_id, result = self.manager.test(webhook_id)
        resp.media = {"eventId": event_id, **result_view(result)}
