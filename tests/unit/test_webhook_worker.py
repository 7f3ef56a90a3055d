"""One webhook's delivery thread against a fake change log, a fake endpoint and a fake clock: order, filter,
stored cursor, retries with backoff or Retry-After, the horizon, dead letters, and a restart mid-retry."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from draas_actors.errors import CursorExpired
from draas_actors.messages import StatusChanged
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.webhooks.config import WebhookSettings
from draas_actors.webhooks.guard import AllowedHosts
from draas_actors.webhooks.registry import DEAD, FAILED, Registry
from draas_actors.webhooks.sender import DELIVERED, HTTP_ERROR, Result
from draas_actors.webhooks.spec import Filter, Webhook, WebhookId, WebhookSpec, new_secret
from draas_actors.webhooks.tracing import SPAN
from draas_actors.webhooks.worker import DEAD_LETTERED, EXPIRED, Delivering, Worker
from tests.helpers import in_memory_tracing, traceparent_of_span, wait_until

T0 = 1_800_000_000.0
HOOK = Webhook(WebhookId("wh_0000000000000001"), WebhookSpec("http://127.0.0.1:9/hook", secret=new_secret()), T0, T0)


def _change(cursor: int, instance: str = "a", at: float = T0) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId(instance), platform=Platform.PROCESS, old_status=Status.RUNNING,
        new_status=Status.FAILED, source="test", timestamp=at, metadata={}, cursor=cursor,
    )


@dataclass
class Log:
    """A committed change log that answers at once; ``pruned`` makes a read after an older cursor expire."""

    changes: list[StatusChanged]
    pruned: int = 0
    closed: bool = False

    def read(self, cursor: int, limit: int, timeout: float) -> tuple[Sequence[StatusChanged], int]:
        if cursor < self.pruned:
            raise CursorExpired("pruned", pruned_through=self.pruned)
        page = [c for c in self.changes if c.cursor > cursor][:limit]
        if not page:
            self.closed = True  # everything read: the thread ends, as when the control plane stops
        return page, page[-1].cursor if page else cursor


@dataclass
class Endpoint:
    """Answers each attempt with the next of ``answers`` (then delivered); records what it got."""

    answers: list[Result] = field(default_factory=list)
    got: list[tuple[str, bytes]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def send(self, url: str, headers: dict[str, str], body: bytes) -> Result:
        self.got.append((headers["webhook-id"], body))
        self.headers.append(headers)
        return self.answers.pop(0) if self.answers else Result(DELIVERED, status=204)

    def abort(self) -> None:
        pass


@dataclass
class Clock:
    now: float = T0
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def wait(self, stopping: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return stopping.is_set()


@pytest.fixture
def registry() -> Iterator[Registry]:
    r = Registry(":memory:")
    r.create(HOOK, 0)
    try:
        yield r
    finally:
        r.close()


def _run(registry: Registry, log: Log, endpoint: Endpoint, clock: Clock, counted: list[str],
         webhook: Webhook = HOOK, settings: WebhookSettings = WebhookSettings()) -> Worker:
    deps = Delivering(
        registry=registry, read=log.read, closed=lambda: log.closed, settings=settings, allowed=AllowedHosts(),
        store_id="s1", source="urn:x", count=counted.append, clock=clock, rng=lambda: 1.0, wait=clock.wait,
        make_sender=lambda d: endpoint,
    )
    worker = Worker(webhook, deps, registry.cursor(webhook.webhook_id) or 0)
    worker.start()
    assert worker.join(5.0), "the delivery thread did not end"
    return worker


def test_matching_changes_are_delivered_in_order_and_the_cursor_is_stored(registry: Registry) -> None:
    webhook = dataclasses.replace(HOOK, spec=dataclasses.replace(HOOK.spec, filter=Filter(instance_ids=frozenset("a"))))
    log = Log([_change(1), _change(2, "b"), _change(3), _change(4, "b")])
    endpoint, counted = Endpoint(), list[str]()
    worker = _run(registry, log, endpoint, Clock(), counted, webhook)
    assert [webhook_id for webhook_id, _ in endpoint.got] == ["s1-1", "s1-3"]
    assert worker.cursor == 4 and registry.cursor(HOOK.webhook_id) == 4
    assert counted == [DELIVERED, DELIVERED]


def test_a_failing_delivery_is_retried_with_backoff_under_the_same_id(registry: Registry) -> None:
    log = Log([_change(1), _change(2)])
    endpoint = Endpoint([Result(HTTP_ERROR, status=500), Result(HTTP_ERROR, status=502)])
    clock, counted = Clock(), list[str]()
    _run(registry, log, endpoint, clock, counted)
    assert [i for i, _ in endpoint.got] == ["s1-1", "s1-1", "s1-1", "s1-2"]
    assert len({body for i, body in endpoint.got if i == "s1-1"}) == 1  # the same bytes each time
    assert clock.waits == [1.0, 2.0]
    assert counted == [HTTP_ERROR, HTTP_ERROR, DELIVERED, DELIVERED]
    assert registry.deliveries(HOOK.webhook_id, None, 10) == []  # the failed record is gone once delivered


def test_retry_after_is_honoured(registry: Registry) -> None:
    endpoint = Endpoint([Result(HTTP_ERROR, status=429, retry_after=7.0)])
    clock: Clock = Clock()
    _run(registry, Log([_change(1)]), endpoint, clock, [])
    assert clock.waits == [7.0] and len(endpoint.got) == 2


def test_past_the_horizon_the_change_is_dead_lettered_and_delivery_goes_on(registry: Registry) -> None:
    # The horizon counts from the change's time: a change already 59 s old gets one more minute at most.
    settings = WebhookSettings(retry_horizon=60.0, first_backoff=10.0)
    log = Log([_change(1, at=T0 - 59.0), _change(2, at=T0)])
    endpoint = Endpoint([Result(HTTP_ERROR, status=500, error="HTTP 500")] * 3)
    clock, counted = Clock(), list[str]()
    _run(registry, log, endpoint, clock, counted, settings=settings)
    assert clock.waits == [1.0, 10.0]  # the first cut to what was left of its horizon; the next change's in full
    assert [i for i, _ in endpoint.got] == ["s1-1", "s1-1", "s1-2", "s1-2"]
    assert counted.count(DEAD_LETTERED) == 1
    (dead,) = registry.deliveries(HOOK.webhook_id, DEAD, 10)
    assert (dead.cursor, dead.event_id, dead.attempts, dead.last_error) == (1, "s1-1", 2, "HTTP 500")
    assert registry.cursor(HOOK.webhook_id) == 2


def test_a_restart_mid_retry_goes_on_counting_the_attempts(registry: Registry) -> None:
    settings = WebhookSettings(first_backoff=1.0)
    endpoint = Endpoint([Result(HTTP_ERROR, status=500)])
    clock = Clock()
    stopping_log = Log([_change(1)])

    # The first thread is stopped while it waits to retry: the failed record stays, the cursor does not move.
    def stop_on_wait(stopping: threading.Event, seconds: float) -> bool:
        return True

    deps = Delivering(
        registry=registry, read=stopping_log.read, closed=lambda: stopping_log.closed, settings=settings,
        allowed=AllowedHosts(), store_id="s1", source="urn:x", count=lambda o: None, clock=clock, rng=lambda: 1.0,
        wait=stop_on_wait, make_sender=lambda d: endpoint,
    )
    first = Worker(HOOK, deps, 0)
    first.start()
    assert first.join(5.0)
    (failed,) = registry.deliveries(HOOK.webhook_id, FAILED, 10)
    assert failed.attempts == 1 and registry.cursor(HOOK.webhook_id) == 0

    endpoint2 = Endpoint([Result(HTTP_ERROR, status=500)])
    second_clock = Clock()
    _run(registry, Log([_change(1)]), endpoint2, second_clock, [], settings=settings)
    assert second_clock.waits == [2.0]  # the backoff after a second attempt: the first thread's one counted
    assert [i for i, _ in endpoint2.got] == ["s1-1", "s1-1"]


def test_changes_pruned_before_delivery_are_counted_and_skipped(registry: Registry) -> None:
    log = Log([_change(5), _change(6)], pruned=4)
    endpoint, counted = Endpoint(), list[str]()
    _run(registry, log, endpoint, Clock(), counted)
    assert counted[0] == EXPIRED and [i for i, _ in endpoint.got] == ["s1-5", "s1-6"]


def test_stop_ends_a_thread_that_waits_for_changes() -> None:
    registry = Registry(":memory:")
    registry.create(HOOK, 0)
    waiting = threading.Event()

    def read(cursor: int, limit: int, timeout: float) -> tuple[Sequence[StatusChanged], int]:
        waiting.set()
        return (), cursor

    deps = Delivering(
        registry=registry, read=read, closed=lambda: False, settings=WebhookSettings(), allowed=AllowedHosts(),
        store_id="s1", source="urn:x", count=lambda o: None, make_sender=lambda d: Endpoint(),
    )
    worker = Worker(HOOK, deps, 0)
    worker.start()
    wait_until(waiting.is_set)
    worker.stop()
    assert worker.join(2.0)
    registry.close()


def test_each_attempt_is_a_client_span_in_the_changes_trace_and_the_request_carries_it(registry: Registry) -> None:
    pushed = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    log = Log([dataclasses.replace(_change(1), traceparent=pushed)])
    endpoint = Endpoint([Result(HTTP_ERROR, status=500, error="HTTP 500")])
    with in_memory_tracing() as tracing:
        deps = Delivering(
            registry=registry, read=log.read, closed=lambda: log.closed, settings=WebhookSettings(),
            allowed=AllowedHosts(), store_id="s1", source="urn:x", count=lambda o: None, clock=Clock(),
            rng=lambda: 1.0, wait=Clock().wait, make_sender=lambda d: endpoint, tracer=tracing.tracer("test"),
        )
        worker = Worker(HOOK, deps, 0)
        worker.start()
        assert worker.join(5.0)
        spans = tracing.spans(SPAN)
    assert len(spans) == len(endpoint.headers) == 2
    for span, sent in zip(spans, endpoint.headers, strict=True):
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7
        assert sent["traceparent"] == traceparent_of_span(span)  # the receiver's parent is the attempt
    assert spans[0].status.status_code is StatusCode.ERROR and spans[0].attributes is not None
    assert spans[0].attributes["http.response.status_code"] == 500
    assert spans[1].status.status_code is not StatusCode.ERROR
