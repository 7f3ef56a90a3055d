"""The process restart benchmark runs end to end in quick mode and measures both sides (not its targets)."""

from __future__ import annotations

import pytest

from bench import process_restart
from tests.integration.bench_support import assert_compared, live_descendants, positive


@pytest.mark.bench
def test_quick_process_restart_benchmark_measures_both_sides_and_leaves_no_child() -> None:
    before = live_descendants()

    result = process_restart.run(kills=process_restart.QUICK_KILLS)

    kills = process_restart.QUICK_KILLS
    for side in (result.ours, result.supervisord):
        assert len(side.exit_detect_ms) == kills and positive(side.exit_detect_ms)
        assert len(side.replacement_ms) == kills and positive(side.replacement_ms)
        # A replacement is only running after the crash that it replaces was seen.
        assert all(r > e for e, r in zip(side.exit_detect_ms, side.replacement_ms, strict=False))
    assert positive(result.ours.reaped_ms) and positive(result.ours.spawned_ms)
    assert_compared(result, process_restart.render, "supervisord")
    assert live_descendants() - before == set()
