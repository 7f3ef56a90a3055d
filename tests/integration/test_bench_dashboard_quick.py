"""The dashboard's first-paint benchmark runs end to end in quick mode: 10,000 instances listed, the table drawn in
headless Chromium within the issue's 2 s, and no browser process left behind."""

from __future__ import annotations

import pytest

from bench import dashboard_paint
from tests.integration.bench_support import assert_reported, live_descendants, positive
from tests.integration.browser_support import chromium_or_skip


@pytest.mark.bench
def test_quick_dashboard_paint_lists_10000_instances_and_paints_within_2_s() -> None:
    chromium_or_skip()
    before = live_descendants()

    result = dashboard_paint.run(instances=dashboard_paint.QUICK_INSTANCES, loads=dashboard_paint.QUICK_LOADS)

    assert result.listed == result.instances == 10_000
    assert len(result.paint_ms) == dashboard_paint.QUICK_LOADS and positive(result.paint_ms)
    assert result.rows == 100  # one page of rows, whatever the number of instances
    # The best load: on a machine shared with other tests one load can be slowed by them; the full run
    # (python -m bench.dashboard_paint) reports every load and judges the slowest.
    assert min(result.paint_ms) <= dashboard_paint.TARGET_MS, result.paint_ms
    assert_reported(result, dashboard_paint.render, "headless Chromium")
    assert live_descendants() - before == set()
