"""A daemon's own Prometheus metrics: its counters, read when scraped, served on ``DRAAS_METRICS_PORT``.

The daemons already count what they do (their ``DaemonStats``, the push client's ``PushStats``, the outbox's
snapshots), and used to say it only in their last log line. A collector reads those counters at scrape time, so
the daemon's loop keeps counting with plain integers and nothing is counted twice. Each daemon has its own registry
(no global state: two daemons in one process, as in the tests, count apart).

Names: what both daemons do is ``draas_daemon_*``, the same name in both, so that one dashboard serves both (the
scrape's ``job`` label tells them apart); what only one does is ``draas_docker_daemon_*`` or ``draas_k8s_daemon_*``.
No label carries an instance, container or pod name.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .outbox import Outbox

__all__ = [
    "PUSH_FAMILIES",
    "CountersCollector",
    "Family",
    "MetricsServer",
    "counter",
    "daemon_counts",
    "gauge",
    "labelled",
    "watch_families",
]

log = logging.getLogger("draas.daemon")

Counts = Mapping[str, int]


@dataclass(frozen=True)
class Family:
    """One metric made of the daemon's counters: ``sources`` pairs each value of ``label`` with the counter it
    shows (one pair with an empty value when the metric has no label)."""

    name: str  # without _total: prometheus_client adds it to counters
    help: str
    sources: tuple[tuple[str, str], ...]
    label: str = ""
    gauge: bool = False


def counter(name: str, help: str, source: str) -> Family:
    return Family(name, help, (("", source),))


def gauge(name: str, help: str, source: str) -> Family:
    return Family(name, help, (("", source),), gauge=True)


def labelled(name: str, help: str, label: str, sources: Mapping[str, str]) -> Family:
    return Family(name, help, tuple(sources.items()), label=label)


# What the push client and the outbox count, the same in every daemon.
PUSH_FAMILIES = (
    labelled(
        "draas_daemon_updates_pushed", "Updates that left the spool, by outcome: acknowledged by the control plane, "
        "rejected by it (not retried), or dropped unsent because the spool was full",
        "outcome", {"acknowledged": "acknowledged", "rejected": "dropped_rejected", "dropped_full": "dropped_full"},
    ),
    counter("draas_daemon_updates_spooled", "Updates written to the spool (the daemon's and its snapshots')",
            "submitted"),
    counter("draas_daemon_push_retries", "Push attempts that failed in a retryable way (connection, 408, 429, 5xx)",
            "retried"),
    gauge("draas_daemon_spool_depth", "Updates in the spool waiting for delivery (earlier runs' included)",
          "pending"),
    counter("draas_daemon_snapshots", "Times every instance's last update was pushed again (another store, or "
            "the periodic resync)", "snapshots"),
    counter("draas_daemon_store_checks", "GET /healthz answers that named the control plane's store",
            "store_checks"),
)


def watch_families(*, lists: str, skipped: Mapping[str, str]) -> tuple[Family, ...]:
    """What both daemons count under their own words: ``lists`` is the counter of listings, ``skipped`` maps a
    reason to the counter of observations skipped for it."""
    return (
        counter("draas_daemon_lists", "Listings of every watched workload: the first at start, then each relist "
                "(after a reconnect, or a watch too old to resume)", lists),
        counter("draas_daemon_listed", "Workloads seen in those listings", "listed"),
        counter("draas_daemon_events", "Events seen on the engine's event stream or the pod watch", "events"),
        counter("draas_daemon_updates", "Status updates made from listings and events and handed to the spool",
                "pushed"),
        counter("draas_daemon_reconnects", "Backoff waits before connecting to the engine or API server again",
                "reconnects"),
        counter("draas_daemon_vanished", "Instances found gone at a listing, pushed as Removed", "vanished"),
        counter("draas_daemon_superseded", "Removals not pushed: another container or pod carries the instance",
                "superseded"),
        labelled("draas_daemon_skipped", "Observations not reported, by reason", "reason", skipped),
    )


class CountersCollector(Collector):
    """``families`` read from ``read()`` at each scrape (``read`` must be safe from the server's thread)."""

    def __init__(self, families: tuple[Family, ...], read: Callable[[], Counts]) -> None:
        self.families = families
        self.read = read

    def collect(self) -> Iterator[Metric]:
        counts = self.read()
        for family in self.families:
            labels = [family.label] if family.label else []
            metric: CounterMetricFamily | GaugeMetricFamily = (
                GaugeMetricFamily(family.name, family.help, labels=labels)
                if family.gauge
                else CounterMetricFamily(family.name, family.help, labels=labels)
            )
            for value, source in family.sources:
                metric.add_metric([value] if family.label else [], counts[source])
            yield metric


def daemon_counts(stats: object, outbox: Outbox) -> dict[str, int]:
    """The daemon's ``DaemonStats`` (a dataclass copy), its push client's and its outbox's counters, by name."""
    assert dataclasses.is_dataclass(stats) and not isinstance(stats, type)
    return {
        **dataclasses.asdict(stats),
        **dataclasses.asdict(outbox.push.stats),
        "snapshots": outbox.snapshots,
        "store_checks": outbox.store_checks,
    }


class MetricsServer:
    """prometheus_client's HTTP server over one collector's own registry; ``stop`` ends its thread and closes its
    socket (its own ``start_http_server`` leaves both to the process's exit)."""

    def __init__(self, collector: Collector, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(collector)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.host, self.port = host, port

    def start(self) -> MetricsServer:
        """Listen (raises OSError when the address cannot be bound) and serve in a thread."""
        self._server, self._thread = start_http_server(self.port, self.host, registry=self.registry)
        self.port = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None:
            return
        server.shutdown()  # serve_forever returns within its poll interval (0.5 s)
        server.server_close()
        if thread is not None:
            thread.join(timeout)
