"""The daemons' metrics (daemons.metrics): every counter they log at exit is a metric, read at scrape time, named
draas_*; DRAAS_METRICS_PORT is off unless set. No network: the collector is read through a registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import docker
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from daemons import docker_daemon, k8s_daemon
from daemons.docker_daemon import DaemonSettings, DockerDaemon
from daemons.metrics import CountersCollector, Family
from daemons.push_client import PushStats
from draas_actors.errors import ConfigError
from tests.metrics_support import samples_of, value
from tests.unit.test_docker_daemon import ScriptedEngine, event, row

BASE = {"CONTROL_PLANE_URL": "http://127.0.0.1:8088", "DRAAS_API_KEY": "k" * 32}
OUTBOX_COUNTERS = {"snapshots", "store_checks"}
DAEMONS = [
    pytest.param(docker_daemon.METRIC_FAMILIES, docker_daemon.DaemonStats, id="docker"),
    pytest.param(k8s_daemon.METRIC_FAMILIES, k8s_daemon.DaemonStats, id="k8s"),
]


def names(stats_class: type) -> set[str]:
    return {field.name for field in dataclasses.fields(stats_class)}


@pytest.mark.parametrize(("families", "stats_class"), DAEMONS)
def test_every_counter_a_daemon_logs_at_exit_is_a_metric_and_every_metric_reads_a_counter(
    families: tuple[Family, ...], stats_class: type
) -> None:
    sources = {source for family in families for _, source in family.sources}
    assert names(stats_class) <= sources, names(stats_class) - sources
    assert names(PushStats) | OUTBOX_COUNTERS <= sources
    assert sources <= names(stats_class) | names(PushStats) | OUTBOX_COUNTERS


@pytest.mark.parametrize(("families", "stats_class"), DAEMONS)
def test_metric_names_start_with_draas_and_are_unique(families: tuple[Family, ...], stats_class: type) -> None:
    del stats_class
    metric_names = [family.name for family in families]
    assert len(metric_names) == len(set(metric_names))
    assert all(name.startswith(("draas_daemon_", "draas_docker_daemon_", "draas_k8s_daemon_")) for name in metric_names)
    shared = {name for name in metric_names if name.startswith("draas_daemon_")}
    # What both daemons do has one name in both, for one dashboard over both.
    assert shared == {f.name for f in docker_daemon.METRIC_FAMILIES if f.name.startswith("draas_daemon_")}
    assert shared == {f.name for f in k8s_daemon.METRIC_FAMILIES if f.name.startswith("draas_daemon_")}


def test_a_collector_reads_the_counters_at_each_scrape() -> None:
    counts = {"seen": 1, "a": 2, "b": 3}
    collector = CountersCollector(
        (Family("draas_daemon_seen", "seen", (("", "seen"),)),
         Family("draas_daemon_by", "by", (("x", "a"), ("y", "b")), label="kind"),
         Family("draas_daemon_depth", "depth", (("", "a"),), gauge=True)),
        lambda: counts,
    )
    registry = CollectorRegistry()
    registry.register(collector)
    samples = samples_of(generate_latest(registry).decode())
    assert value(samples, "draas_daemon_seen_total") == 1
    assert value(samples, "draas_daemon_by_total", kind="y") == 3
    assert value(samples, "draas_daemon_depth") == 2
    counts["seen"] = 5
    assert value(samples_of(generate_latest(registry).decode()), "draas_daemon_seen_total") == 5


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[DockerDaemon, ScriptedEngine]]:
    engine = ScriptedEngine()
    settings = DaemonSettings(control_plane_url="http://127.0.0.1:9", api_key="k", spool_path=tmp_path / "spool",
                              shutdown_flush=0.0)
    # The push client is never started: what is spooled stays there, and shows as the spool's depth.
    made = DockerDaemon(settings, client_factory=lambda _: cast(docker.DockerClient, engine))
    try:
        yield made, engine
    finally:
        made._outbox.close()


def test_the_docker_daemons_metrics_follow_its_listings_and_events(
    daemon: tuple[DockerDaemon, ScriptedEngine],
) -> None:
    made, engine = daemon
    registry = CollectorRegistry()
    registry.register(made.metrics)
    engine.rows = [row("c-1", "web-1"), row("c-2", None)]
    since = made.resync()
    engine.events_to_send = [event("die", "c-1", "web-1", 1), event("exec_start", "c-1", "web-1", 2)]
    made.stream(since)

    samples = samples_of(generate_latest(registry).decode())
    assert value(samples, "draas_daemon_lists_total") == 1
    assert value(samples, "draas_daemon_listed_total") == 2
    assert value(samples, "draas_daemon_events_total") == 2
    assert value(samples, "draas_daemon_updates_total") == 2  # web-1 listed, then its death
    assert value(samples, "draas_daemon_updates_spooled_total") == 2
    assert value(samples, "draas_daemon_spool_depth") == 2
    assert value(samples, "draas_daemon_updates_pushed_total", outcome="acknowledged") == 0
    assert value(samples, "draas_daemon_skipped_total", reason="no_instance_id") == 1
    assert value(samples, "draas_daemon_skipped_total", reason="unmapped") == 1
    assert value(samples, "draas_docker_daemon_engine_errors_total") == 0
    assert all(s.name.startswith("draas_") for s in samples)
    assert not {v for s in samples for v in s.labels.values()} & {"web-1", "c-1", "c-2"}


# -- DRAAS_METRICS_PORT and DRAAS_METRICS_HOST --------------------------------------------------------------


def test_metrics_are_off_unless_a_port_is_given_and_bind_to_the_loopback_by_default() -> None:
    settings = docker_daemon.load_settings(BASE)
    assert settings.metrics_port is None
    assert settings.metrics_host == "127.0.0.1"
    assert docker_daemon.load_settings({**BASE, "DRAAS_METRICS_PORT": " "}).metrics_port is None
    chosen = k8s_daemon.load_settings({**BASE, "DRAAS_METRICS_PORT": "9464", "DRAAS_METRICS_HOST": "0.0.0.0"})
    assert (chosen.metrics_port, chosen.metrics_host) == (9464, "0.0.0.0")
    assert "DRAAS_METRICS_PORT" in docker_daemon.HELP and "DRAAS_METRICS_HOST" in k8s_daemon.HELP


@pytest.mark.parametrize("text", ["0", "-1", "65536", "http", "94.64"])
def test_a_bad_metrics_port_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        docker_daemon.load_settings({**BASE, "DRAAS_METRICS_PORT": text})
    assert caught.value.field == "DRAAS_METRICS_PORT"
    assert caught.value.message.startswith("DRAAS_METRICS_PORT")
