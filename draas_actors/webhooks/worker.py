"""One webhook's delivery thread: a durable consumer of the committed change log.

It reads only committed changes (``ControlPlane.next_changes``), in cursor order, and delivers each one its filter
matches before it looks at the next: in order per endpoint, and a slow or dead endpoint holds up nobody but its own
thread. Its delivered cursor is stored after every delivery (and after a run of changes it skipped), so a control
plane killed mid-delivery sends the same change again, with the same ``webhook-id``, once it is back: at least once.

A failed attempt is retried with backoff (or after what ``Retry-After`` asked) until the change is ``retryHorizon``
old; then it is dead-lettered and delivery goes on with the next change.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from opentelemetry import trace

from ..errors import CursorExpired, DraasError
from ..messages import StatusChanged
from .config import WebhookSettings
from .event import Event, change_event, signed_headers
from .guard import AllowedHosts
from .registry import DEAD, FAILED, Delivery, Registry
from .retrying import next_delay
from .sender import Result, Sender
from .spec import Webhook
from .tracing import attempt_span, default_tracer

log = logging.getLogger(__name__)

ChangeReader = Callable[[int, int, float], tuple[Sequence[StatusChanged], int]]
"""(cursor, limit, timeout) -> committed changes after ``cursor`` and the cursor to go on from."""

BATCH = 100  # changes read at a time
POLL = 1.0  # seconds a read waits for a change before the thread looks whether it should stop
PAUSE = 1.0  # seconds to wait after the store could not answer or commit
EXPIRED = "expired"  # the outcome counted for changes retention pruned before they were delivered
DEAD_LETTERED = "dead"


def _wait(stopping: threading.Event, seconds: float) -> bool:
    return stopping.wait(seconds)


class Sending(Protocol):
    """One attempt at a time (``sender.Sender``; a fake in the unit tests)."""

    def send(self, url: str, headers: dict[str, str], body: bytes) -> Result: ...

    def abort(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Delivering:
    """What every webhook's thread shares."""

    registry: Registry
    read: ChangeReader
    closed: Callable[[], bool]  # the feed was closed: the control plane is stopping
    settings: WebhookSettings
    allowed: AllowedHosts
    store_id: str
    source: str
    count: Callable[[str], None]  # one outcome (an attempt's, a dead letter, an expiry) for the metrics
    clock: Callable[[], float] = time.time
    rng: Callable[[], float] = random.random
    # Waits between attempts: True when stopped meanwhile (a fake clock's in the unit tests).
    wait: Callable[[threading.Event, float], bool] = field(default=_wait)
    make_sender: Callable[[Delivering], Sending] | None = None
    tracer: trace.Tracer = field(default_factory=default_tracer)

    def sender(self) -> Sending:
        if self.make_sender is not None:
            return self.make_sender(self)
        s = self.settings
        return Sender(self.allowed, connect_timeout=s.connect_timeout, timeout=s.timeout, clock=self.clock)


def attempt(
    deps: Delivering, sender: Sending, webhook: Webhook, event_id: str, body: bytes, traceparent: str | None
) -> Result:
    """One signed attempt under its span (the delivery thread's, a test event's, a dead letter's retry)."""
    spec = webhook.spec
    with attempt_span(deps.tracer, traceparent, urlsplit(spec.url).hostname or "") as (span, sent_trace):
        result = sender.send(spec.url, signed_headers(event_id, body, spec.secret, deps.clock(), sent_trace), body)
        if result.status is not None:
            span.set_attribute("http.response.status_code", result.status)
        if not result.ok:
            span.set_status(trace.StatusCode.ERROR, result.error)
    return result


class Worker:
    def __init__(self, webhook: Webhook, deps: Delivering, cursor: int) -> None:
        self.webhook = webhook
        self.deps = deps
        self.cursor = cursor  # every change up to it is done with; read by the lag metric
        self._stored = cursor
        self._sender = deps.sender()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"webhook-{webhook.webhook_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end: a wait between attempts ends at once, an attempt in flight is cut off."""
        self._stopping.set()
        self._sender.abort()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._step():
                    return
            except Exception:  # a bug must not end deliveries for good: say it, pause, go on
                log.exception("webhook %s: delivery failed unexpectedly", self.webhook.webhook_id)
                self._stopping.wait(PAUSE)

    def _step(self) -> bool:
        """Read the next changes and deal with them; False when the thread should end."""
        try:
            changes, next_cursor = self.deps.read(self.cursor, BATCH, POLL)
        except CursorExpired as expired:
            log.warning("webhook %s: changes after cursor %d were pruned by retention before they were delivered; "
                        "going on after %d", self.webhook.webhook_id, self.cursor, expired.pruned_through)
            self.deps.count(EXPIRED)
            self._advance(max(self.cursor, expired.pruned_through), store=True)
            return True
        except DraasError as error:  # the store is restarting or cannot answer: try again shortly
            log.debug("webhook %s: cannot read the change log: %s", self.webhook.webhook_id, error)
            self._stopping.wait(PAUSE)
            return True
        if not changes and next_cursor == self.cursor and self.deps.closed():
            return False
        for change in changes:
            if self._stopping.is_set():
                break
            if self.webhook.spec.filter.matches(change):
                if not self._deliver(change):
                    return False
                self._advance(change.cursor, store=False)  # _deliver stored it
            else:
                self._advance(change.cursor, store=False)
        else:
            self._advance(max(self.cursor, next_cursor), store=False)
        if self.cursor > self._stored:
            self._advance(self.cursor, store=True)  # a run of changes skipped: one write for all of them
        return True

    def _advance(self, cursor: int, *, store: bool) -> None:
        self.cursor = cursor
        if store:
            try:
                self.deps.registry.set_cursor(self.webhook.webhook_id, cursor)
                self._stored = cursor
            except DraasError as error:  # stored later: a redelivery at worst, never a loss
                log.warning("webhook %s: cursor %d not stored: %s", self.webhook.webhook_id, cursor, error)

    def _deliver(self, change: StatusChanged) -> bool:
        """Deliver ``change`` until it goes through or is dead-lettered (True), or until stopped (False)."""
        d = self.deps
        webhook_id = self.webhook.webhook_id
        event = change_event(change, store_id=d.store_id, source=d.source)
        expires = change.timestamp + d.settings.retry_horizon
        failing = self._failing(change.cursor)
        attempts = failing.attempts if failing is not None else 0
        while not self._stopping.is_set():
            result = self._attempt(event)
            attempts += 1
            now = d.clock()
            d.count(result.outcome)
            if result.ok:
                self._settle(failing, change.cursor)
                return True
            if self._stopping.is_set():
                return False
            dead = now >= expires
            delay = 0.0 if dead else min(
                next_delay(attempts=attempts, retry_after=result.retry_after, first=d.settings.first_backoff,
                           cap=d.settings.max_backoff, rng=d.rng),
                max(0.0, expires - now),
            )
            failing = self._record(failing, event, change.cursor, attempts, now, None if dead else now + delay,
                                   result, DEAD if dead else FAILED)
            if dead:
                log.warning("webhook %s: change %d dead-lettered after %d attempts: %s", webhook_id, change.cursor,
                            attempts, result.error)
                d.count(DEAD_LETTERED)
                self._stored = max(self._stored, change.cursor)
                return True
            if d.wait(self._stopping, delay):
                return False
        return False

    def _attempt(self, event: Event) -> Result:
        return attempt(self.deps, self._sender, self.webhook, event.event_id, event.body, event.traceparent)

    def _failing(self, cursor: int) -> Delivery | None:
        try:
            return self.deps.registry.failing(self.webhook.webhook_id, cursor)
        except DraasError:
            return None

    def _settle(self, failing: Delivery | None, cursor: int) -> None:
        registry, webhook_id = self.deps.registry, self.webhook.webhook_id
        try:
            if failing is not None and failing.delivery_id:
                registry.delivered(failing.delivery_id, cursor=(webhook_id, cursor))
            else:
                registry.set_cursor(webhook_id, cursor)
            self._stored = cursor
        except DraasError as error:
            log.warning("webhook %s: cursor %d not stored: %s", webhook_id, cursor, error)

    def _record(
        self, failing: Delivery | None, event: Event, cursor: int, attempts: int, now: float,
        next_attempt: float | None, result: Result, state: str,
    ) -> Delivery | None:
        """Store the delivery's state (a dead letter with the webhook's cursor past it, in one transaction)."""
        delivery = Delivery(
            webhook_id=self.webhook.webhook_id, cursor=cursor, event_id=event.event_id, event_type=event.event_type,
            state=state, attempts=attempts, first_attempt=failing.first_attempt if failing is not None else now,
            last_attempt=now, next_attempt=next_attempt, last_error=result.error, body=event.body,
            traceparent=event.traceparent,
        )
        if failing is not None:
            delivery = dataclasses.replace(delivery, delivery_id=failing.delivery_id)
        try:
            return self.deps.registry.save_delivery(
                delivery, max_dead=self.deps.settings.max_dead_letters if state == DEAD else None,
                cursor=cursor if state == DEAD else None,
            )
        except DraasError as error:
            log.warning("webhook %s: delivery state of change %d not stored: %s", self.webhook.webhook_id, cursor,
                        error)
            return failing


__all__ = ["BATCH", "DEAD_LETTERED", "EXPIRED", "ChangeReader", "Delivering", "Sending", "Worker"]
