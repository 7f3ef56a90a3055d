"""docs/metrics.md lists every metric the control plane and the daemons define.

Only that way round: the document also lists what the live stream and the webhooks add (issue 12), which are
built beside this and merged in any order."""

from __future__ import annotations

import re
from pathlib import Path

from daemons import docker_daemon, k8s_daemon
from draas_actors.metrics import Metrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def exposed_names() -> set[str]:
    """Names as a scrape shows them (counters with _total), of a control plane's and both daemons' metrics."""
    metrics = Metrics()
    metrics.compute(instance_counts=lambda: [], head_cursor=lambda: 0)
    names = {
        family.name + ("_total" if family.type == "counter" else "") for family in metrics.registry.collect()
    }
    for family in (*docker_daemon.METRIC_FAMILIES, *k8s_daemon.METRIC_FAMILIES):
        names.add(family.name if family.gauge else family.name + "_total")
    return names


def documented_names() -> set[str]:
    """The first cell of every table row that names a metric."""
    return set(re.findall(r"^\| `(draas_\w+)` \|", DOC.read_text(), flags=re.MULTILINE))


def test_every_metric_is_documented() -> None:
    missing = exposed_names() - documented_names()
    assert not missing, f"add these to docs/metrics.md: {sorted(missing)}"
