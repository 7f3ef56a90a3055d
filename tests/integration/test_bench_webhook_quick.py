"""The webhook latency benchmark runs end to end in quick mode: every crash and every change reaches its receivers
in order, the dead endpoint got its request, and no child is left behind (the targets are measured by the full
run, not asserted here)."""

from __future__ import annotations

import threading

import pytest

from bench import webhook_latency
from tests.integration.bench_support import assert_reported, live_descendants, positive


@pytest.mark.bench
def test_quick_webhook_latency_delivers_every_crash_and_change_and_leaves_nothing_behind() -> None:
    before = live_descendants()

    result = webhook_latency.run(kills=webhook_latency.QUICK_KILLS, changes=webhook_latency.QUICK_CHANGES,
                                 blocks=webhook_latency.QUICK_BLOCKS)

    assert len(result.crash_ms) == webhook_latency.QUICK_KILLS
    assert len(result.alone_ms) == len(result.beside_dead_ms) == webhook_latency.HEALTHY * result.changes
    assert positive(result.crash_ms + result.alone_ms + result.beside_dead_ms)
    assert result.all_delivered
    summary = assert_reported(result, webhook_latency.render, "dead")
    assert summary["changes"] == webhook_latency.QUICK_CHANGES
    assert live_descendants() - before == set()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("webhook-")]
