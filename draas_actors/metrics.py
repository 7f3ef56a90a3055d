"""The control plane's Prometheus metrics: one registry per control plane, the metric objects the actors and the
API update, and a collector that reads what is computed at scrape time (instances by status, the change-log head).

Each ``ControlPlane`` owns its own ``Metrics`` (no global registry: two planes in one process count apart). Every
name starts with ``draas_``; no label carries an instance id, so the number of series stays bounded by the number
of platforms, statuses, outcomes, routes and actor kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Pushed updates by outcome: the words the brief's outcomes are counted under.
ACCEPTED, STALE, REFUSED_TRANSITION, REJECTED, OUT_OF_SCOPE = (
    "accepted", "stale", "refused_transition", "rejected", "out_of_scope"
)

InstanceCounts = Callable[[], Iterable[tuple[str, str, int]]]  # (platform, status, count) rows
HeadCursor = Callable[[], int]
WebhookLags = Callable[[], Iterable[tuple[str, int]]]  # (webhook id, changes behind the head) rows


class _Computed(Collector):
    """What is read at scrape time rather than counted: a failing source leaves its metric out of that scrape
    (a scrape must answer even while the store is restarting)."""

    def __init__(self) -> None:
        self.instance_counts: InstanceCounts | None = None
        self.head_cursor: HeadCursor | None = None
        self.webhook_lags: WebhookLags | None = None

    def collect(self) -> Iterator[Metric]:
        if self.instance_counts is not None:
            instances = GaugeMetricFamily(
                "draas_instances", "Instances by platform and status", labels=["platform", "status"]
            )
            try:
                for platform, status, count in self.instance_counts():
                    instances.add_metric([platform, status], count)
            except Exception as error:  # any failure of the source: leave the metric out
                log.warning("draas_instances not collected: %s", error)
            else:
                yield instances
        if self.head_cursor is not None:
            try:
                head = self.head_cursor()
            except Exception as error:  # as above
                log.warning("draas_change_log_head_cursor not collected: %s", error)
            else:
                yield GaugeMetricFamily(
                    "draas_change_log_head_cursor", "Cursor of the newest change in the change log", value=head
                )
        if self.webhook_lags is not None:
            # The webhook id as a label: bounded by [webhooks] maxWebhooks, and no instance id.
            lag = GaugeMetricFamily(
                "draas_webhook_lag", "Committed changes a webhook's deliveries are behind the change log's head",
                labels=["webhook"],
            )
            for webhook, behind in self.webhook_lags():
                lag.add_metric([webhook], behind)
            yield lag


class Metrics:
    """The metric objects of one control plane; the actors and the API hold this and count where the facts are."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.status_changes = Counter(
            "draas_status_changes", "Status changes published, by platform and new status",
            ["platform", "status"], registry=r,
        )
        self.restarts = Counter(
            "draas_restarts", "Workload restarts planned by the restart policy, by platform and the stop cause",
            ["platform", "reason"], registry=r,
        )
        self.restart_budgets_exhausted = Counter(
            "draas_restart_budgets_exhausted", "Restart policies that gave up (budget exhausted), by platform",
            ["platform"], registry=r,
        )
        self.pushed_updates = Counter(
            "draas_pushed_updates", "Pushed status updates by outcome", ["outcome"], registry=r,
        )
        self.http_requests = Counter(
            "draas_http_requests", "HTTP requests by method, route template and status code",
            ["method", "route", "code"], registry=r,
        )
        self.http_latency = Histogram(
            "draas_http_request_duration_seconds", "HTTP request latency by method, route template and status code",
            ["method", "route", "code"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.actor_deaths = Counter(
            "draas_actor_deaths", "Actor deaths seen by the supervisor, by kind", ["kind"], registry=r,
        )
        self.actor_restarts = Counter(
            "draas_actor_restarts", "Actor restarts made by the supervisor, by kind", ["kind"], registry=r,
        )
        self.store_flush = Histogram(
            "draas_store_flush_duration_seconds", "Duration of one store commit (a flush of buffered writes)",
            registry=r, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.webhook_deliveries = Counter(
            "draas_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, http_error, timeout, connection_error, refused), "
            "and changes dead-lettered (dead) or pruned before delivery (expired)",
            ["outcome"], registry=r,
        )
        self.open_streams = Gauge(
            "draas_open_streams", "Live streams (GET /api/status/stream) open now", registry=r,
        )
        self._computed = _Computed()
        r.register(self._computed)

    def compute(self, *, instance_counts: InstanceCounts, head_cursor: HeadCursor) -> None:
        """Give the sources read at scrape time (the control plane does, once it can answer them)."""
        self._computed.instance_counts = instance_counts
        self._computed.head_cursor = head_cursor

    def compute_webhook_lag(self, lags: WebhookLags) -> None:
        """Give the source of draas_webhook_lag, read at scrape time."""
        self._computed.webhook_lags = lags

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


__all__ = [
    "ACCEPTED",
    "CONTENT_TYPE",
    "OUT_OF_SCOPE",
    "REFUSED_TRANSITION",
    "REJECTED",
    "STALE",
    "Metrics",
]
