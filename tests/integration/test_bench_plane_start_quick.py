"""The control-plane start benchmark runs end to end in quick mode: every stored instance gets an actor that
resumes, and stop() leaves no actor running (its 10 s target is for the full run, not asserted here)."""

from __future__ import annotations

import pytest

from bench import plane_start
from tests.integration.bench_support import assert_reported


@pytest.mark.bench
def test_quick_plane_start_benchmark_starts_every_stored_instance_and_stops_them_all() -> None:
    result = plane_start.run(instances=plane_start.QUICK_INSTANCES)

    assert result.instances == plane_start.QUICK_INSTANCES
    assert 0 < result.start_s <= result.resumed_s
    assert result.stop_s > 0 and result.per_instance_ms > 0
    assert result.threads > 0
    assert_reported(result, plane_start.render, "per instance")
