"""The process restart benchmark runs end to end in quick mode and measures both sides (not its targets)."""

from __future__ import annotations

import json
import math

import psutil
import pytest

from bench import process_restart


def _positive(xs: list[float]) -> bool:
    return bool(xs) and all(math.isfinite(x) and x > 0 for x in xs)


def _live_descendants() -> set[int]:
    """PIDs of our descendants that are still running (a zombie has already exited)."""
    live = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return live


@pytest.mark.bench
def test_quick_process_restart_benchmark_measures_both_sides_and_leaves_no_child() -> None:
    before = _live_descendants()

    result = process_restart.run(kills=process_restart.QUICK_KILLS)

    kills = process_restart.QUICK_KILLS
    for side in (result.ours, result.supervisord):
        assert len(side.exit_detect_ms) == kills and _positive(side.exit_detect_ms)
        assert len(side.replacement_ms) == kills and _positive(side.replacement_ms)
        # A replacement is only running after the crash that it replaces was seen.
        assert all(r > e for e, r in zip(side.exit_detect_ms, side.replacement_ms))
    assert _positive(result.ours.reaped_ms) and _positive(result.ours.spawned_ms)
    summary = result.to_json()
    json.dumps(summary)  # the --json output must be serialisable
    assert [m["label"] for m in summary["metrics"]] == [m.label for m in result.metrics]
    assert all(m["ratio_median"] > 0 and m["ratio_p99"] > 0 for m in summary["metrics"])
    table = process_restart.render(result)
    assert "supervisord" in table and ("PASS" in table or "MISS" in table)
    assert _live_descendants() - before == set()
