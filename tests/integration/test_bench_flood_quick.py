"""The push flood benchmark runs end to end in quick mode: the good daemon's updates all land, the rogue is
refused, and no pusher process is left behind (its 2x target is measured by the full run, not asserted here)."""

from __future__ import annotations

import pytest

from bench import push_flood
from draas_actors.api.dispatch import MAX_HOLD_FACTOR
from draas_actors.api.server import ServerLimits
from tests.integration.bench_support import assert_reported, live_descendants, positive


@pytest.mark.bench
def test_quick_push_flood_applies_every_good_update_refuses_the_rogue_and_leaves_no_child() -> None:
    before = live_descendants()

    result = push_flood.run(updates=push_flood.QUICK_UPDATES, flood_seconds=push_flood.QUICK_FLOOD_S)

    assert len(result.alone_ms) == len(result.flood_ms) == push_flood.QUICK_UPDATES
    assert positive(result.alone_ms + result.flood_ms)
    assert result.all_applied
    assert result.good_retried == 0
    assert result.rogue.limited > 0
    assert result.rogue.other == 0 and result.rogue.errors == 0
    # The rogue never gets more than its bucket: the burst plus the rate over the flood, and then some slack
    # for the seconds its processes take to start and stop.
    assert result.rogue.accepted <= 400 + 200 * (push_flood.QUICK_FLOOD_S + 2)
    summary = assert_reported(result, push_flood.render, "rogue")
    assert summary["good"]["applied"] == 2 * push_flood.QUICK_UPDATES
    assert live_descendants() - before == set()


@pytest.mark.bench
def test_quick_push_flood_with_a_batch_rogue_applies_every_good_update_and_leaves_no_child() -> None:
    before = live_descendants()

    result = push_flood.run(updates=push_flood.QUICK_UPDATES, flood_seconds=push_flood.QUICK_FLOOD_S,
                            rogue_batch=push_flood.ROGUE_BATCH)

    assert result.all_applied and result.good_retried == 0
    assert result.rogue.other == 0 and result.rogue.errors == 0
    # Its bucket: the burst (2,000 updates) and 200 a second over the flood, and over the longest hold that its
    # last requests may have waited out after it (they are answered then), with slack for its processes' start.
    window = push_flood.QUICK_FLOOD_S + MAX_HOLD_FACTOR * ServerLimits().refusal_hold + 2
    assert result.rogue.accepted * push_flood.ROGUE_BATCH <= 2000 + 200 * window
    assert assert_reported(result, push_flood.render, "batches of 100")["rogue_batch"] == push_flood.ROGUE_BATCH
    assert live_descendants() - before == set()
