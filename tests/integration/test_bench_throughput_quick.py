"""The push throughput benchmark runs end to end in quick mode: every phase gets answers, nothing is refused, the
figures are per update, and no load generator is left behind (its targets are measured by the full run)."""

from __future__ import annotations

import pytest

from bench import push_throughput
from tests.integration.bench_support import assert_reported, live_descendants


@pytest.mark.bench
def test_quick_push_throughput_measures_bare_single_and_batch_and_leaves_no_child() -> None:
    before = live_descendants()

    result = push_throughput.run(seconds=push_throughput.QUICK_SECONDS, connections=4, batch=20,
                                 batch_connections=2, per_thread=True)

    assert result.clean  # every request in every phase was answered 202
    for phase in (result.bare, result.single, result.batch):
        assert phase.per_second > 0 and phase.cpu_s > 0 and phase.switches > 0
    assert result.batch.updates == 20 * result.batch.requests
    assert result.ratio > 0
    # Where the time went, per thread group: the HTTP workers in every phase, the actors behind the real app only.
    groups = {phase.name: {share.group for share in phase.threads} for phase in (result.bare, result.single)}
    assert "waitress" in groups["bare"] and "StoreActor" not in groups["bare"]
    assert {"waitress", "StoreActor", "instance-pool"} <= groups["single"]  # instance actors run on the pool
    summary = assert_reported(result, push_throughput.render, "bare")
    assert summary["single"]["updates_per_s"] == result.single.per_second
    assert live_descendants() - before == set()
