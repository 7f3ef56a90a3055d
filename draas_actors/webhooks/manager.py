"""The webhooks of one control plane: their CRUD (durable before it answers), and one delivery thread per webhook,
started, replaced and stopped as webhooks are created, changed and deleted. The control plane owns it and stops
it in ``stop()``: no delivery thread outlives that."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import Conflict, InvalidInput, NotFound, Unavailable
from .config import WebhookSettings
from .event import ping_event, source_of
from .guard import AllowedHosts
from .registry import DEAD, STATES, Delivery, Registry
from .sender import Result
from .spec import Webhook, WebhookId, new_webhook_id, parse_patch, parse_spec
from .worker import ChangeReader, Delivering, Worker, attempt

log = logging.getLogger(__name__)


class WebhookManager:
    def __init__(
        self,
        settings: WebhookSettings,
        *,
        read: ChangeReader,
        head: Callable[[], int],
        closed: Callable[[], bool],
        count: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.allowed = AllowedHosts.parse(settings.allowed_hosts)
        self._read, self._head, self._closed, self._count = read, head, closed, count
        self._clock, self._rng = clock, rng
        self._lock = threading.Lock()  # the workers map, and create/patch/delete against each other
        # Replaced, never changed in place: the metrics read it without the lock, which a stopping thread may hold.
        self._workers: dict[WebhookId, Worker] = {}
        self._registry: Registry | None = None
        self._deps: Delivering | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self, store_path: str, store_id: str, *, synchronous: str) -> None:
        """Open the registry in the store's file and start a thread per stored webhook, from its stored cursor."""
        registry = Registry(store_path, synchronous=synchronous)
        deps = Delivering(
            registry=registry, read=self._read, closed=self._closed, settings=self.settings, allowed=self.allowed,
            store_id=store_id, source=source_of(self.settings.source, store_id), count=self._count,
            clock=self._clock, rng=self._rng,
        )
        with self._lock:
            self._registry, self._deps = registry, deps
            for webhook in registry.all():
                self._start_worker(webhook)

    def stop(self, timeout: float) -> None:
        """Stop every delivery thread (a wait ends at once, an attempt in flight is cut off), then close."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers.values())
            self._workers = {}
            for worker in workers:
                worker.stop()
            for worker in workers:
                if not worker.join(max(0.0, deadline - time.monotonic())):
                    log.warning("webhook %s: its delivery thread did not stop in time", worker.webhook.webhook_id)
            if self._registry is not None:
                self._registry.close()
                self._registry = None

    def _start_worker(self, webhook: Webhook) -> None:
        assert self._registry is not None and self._deps is not None
        cursor = self._registry.cursor(webhook.webhook_id)
        worker = Worker(webhook, self._deps, cursor if cursor is not None else self._head())
        self._workers = {**self._workers, webhook.webhook_id: worker}
        worker.start()

    def _stop_worker(self, webhook_id: WebhookId) -> None:
        worker = self._workers.get(webhook_id)
        if worker is not None:
            self._workers = {k: v for k, v in self._workers.items() if k != webhook_id}
            worker.stop()
            worker.join(self.settings.timeout + 1.0)

    def _registry_or_refuse(self) -> Registry:
        if self._registry is None:
            raise Unavailable("webhooks are not started")
        return self._registry

    # -- what the API asks ------------------------------------------------------------------------

    def create(self, body: Any) -> tuple[Webhook, str]:
        """A new webhook, committed, its thread started from the change-log head (it is sent what happens from
        now on); returns it and its secret."""
        spec = parse_spec(body, self.allowed)
        with self._lock:
            registry = self._registry_or_refuse()
            if registry.count() >= self.settings.max_webhooks:
                raise Conflict(f"there are already {self.settings.max_webhooks} webhooks (webhooks.maxWebhooks)")
            now = self._clock()
            webhook = Webhook(new_webhook_id(), spec, now, now)
            registry.create(webhook, self._head())
            self._start_worker(webhook)
        return webhook, spec.secret

    def all(self) -> list[Webhook]:
        return self._registry_or_refuse().all()

    def get(self, webhook_id: str) -> Webhook:
        webhook = self._registry_or_refuse().get(webhook_id)
        if webhook is None:
            raise NotFound(f"no webhook {webhook_id!r}", field="webhookId")
        return webhook

    def update(self, webhook_id: str, body: Any) -> Webhook:
        with self._lock:
            current = self.get(webhook_id)
            spec = parse_patch(body, current.spec, self.allowed)
            webhook = dataclasses.replace(current, spec=spec, updated_at=self._clock())
            # The old thread ends first: it may be mid-retry, and the next attempt must use the new settings.
            self._stop_worker(webhook.webhook_id)
            try:
                if not self._registry_or_refuse().update(webhook):
                    raise NotFound(f"no webhook {webhook_id!r}", field="webhookId")
            finally:
                if webhook.webhook_id not in self._workers:
                    live = self._registry_or_refuse().get(webhook.webhook_id)
                    if live is not None:
                        self._start_worker(live)
        return webhook

    def delete(self, webhook_id: str) -> None:
        with self._lock:
            webhook = self.get(webhook_id)
            self._stop_worker(webhook.webhook_id)
            try:
                self._registry_or_refuse().delete(webhook.webhook_id)
            except Unavailable:
                self._start_worker(webhook)  # not deleted (503): it goes on being delivered
                raise

    def lag(self, webhook: Webhook) -> int:
        worker = self._workers.get(webhook.webhook_id)
        return max(0, self._head() - worker.cursor) if worker is not None else 0

    def lags(self) -> list[tuple[str, int]]:
        """(webhook id, changes behind the feed's head) per webhook, for the metrics."""
        head = self._head()
        return [(w.webhook.webhook_id, max(0, head - w.cursor)) for w in self._workers.values()]

    def deliveries(self, webhook_id: str, state: str | None, limit: int) -> list[Delivery]:
        webhook = self.get(webhook_id)
        if state is not None and state not in STATES:
            raise InvalidInput(f"state: must be one of {', '.join(STATES)}", field="state")
        return self._registry_or_refuse().deliveries(webhook.webhook_id, state, limit)

    def retry(self, webhook_id: str, delivery_id: int) -> tuple[Delivery, Result]:
        """Send a dead letter again, now, once: the same body and ``webhook-id`` as before. Delivered, it is
        forgotten; refused again, it stays dead with one more attempt counted."""
        webhook = self.get(webhook_id)
        registry = self._registry_or_refuse()
        delivery = registry.delivery(webhook.webhook_id, delivery_id)
        if delivery is None:
            raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id!r}", field="deliveryId")
        if delivery.state != DEAD:
            raise Conflict(f"delivery {delivery_id} is {delivery.state}, not dead: it is being retried already",
                           field="deliveryId")
        result = self._send(webhook, delivery.event_id, delivery.body, delivery.traceparent)
        now = self._clock()
        if result.ok:
            registry.delivered(delivery.delivery_id)
        else:
            delivery = registry.save_delivery(dataclasses.replace(
                delivery, attempts=delivery.attempts + 1, last_attempt=now, last_error=result.error
            ))
        return delivery, result

    def test(self, webhook_id: str) -> tuple[str, Result]:
        """Send a test event now, once, outside the webhook's ordered deliveries; returns its id and the result."""
        webhook = self.get(webhook_id)
        deps = self._deps
        assert deps is not None
        event = ping_event(webhook.webhook_id, source=deps.source, now=self._clock())
        return event.event_id, self._send(webhook, event.event_id, event.body, None)

    def _send(self, webhook: Webhook, event_id: str, body: bytes, traceparent: str | None) -> Result:
        deps = self._deps
        assert deps is not None
        result = attempt(deps, deps.sender(), webhook, event_id, body, traceparent)
        self._count(result.outcome)
        return result


__all__ = ["WebhookManager"]
