"""The scale benchmark runs end to end in quick mode and measures both layouts (not its targets)."""

from __future__ import annotations

import json

import pytest

from bench import scale
from tests.integration.bench_support import live_descendants, positive


@pytest.mark.bench
def test_quick_scale_benchmark_measures_both_layouts_and_leaves_no_child() -> None:
    before = live_descendants()

    result = scale.run(pooled=scale.QUICK_POOLED, threads=scale.QUICK_THREADS, updates=scale.QUICK_UPDATES,
                       kills=scale.QUICK_KILLS)

    pooled, threads = result.pooled, result.threads
    assert (pooled.runtime, pooled.instances, threads.runtime, threads.instances) == (
        "pool", scale.QUICK_POOLED, "threads", scale.QUICK_THREADS)
    for side in (pooled, threads):
        assert len(side.crash_ms) == len(side.crash_full_ms) == scale.QUICK_KILLS
        assert positive(side.crash_ms) and positive(side.crash_full_ms)
        assert side.crash_besides == min(side.instances, scale.CRASH_IDLE_BESIDES)
        assert positive([side.small_updates_per_s, side.updates_per_s, side.start_s, side.rss_mib])
        assert positive([side.small_cpu_us, side.cpu_us])
        assert len(side.paired_ratios) == scale.ROUNDS and positive(side.paired_ratios)
    # The layouts differ where the benchmark says they do: a few pool threads, against a thread per actor.
    assert pooled.instance_threads <= scale.TARGET_THREADS < scale.QUICK_THREADS <= threads.instance_threads
    summary = result.to_json()
    json.dumps(summary)
    assert [c["label"] for c in summary["checks"]] == [c.label for c in result.checks]
    table = scale.render(result)
    assert "threads (peer)" in table and ("PASS" in table or "MISS" in table)
    assert live_descendants() - before == set()
