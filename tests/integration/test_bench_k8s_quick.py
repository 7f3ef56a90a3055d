"""The Kubernetes benchmark runs end to end in quick mode and measures both sides (not its targets)."""

from __future__ import annotations

import threading

import pytest

from bench import k8s_watch
from bench.stats import median, p99
from tests.helpers import wait_until
from tests.integration.bench_support import assert_compared, positive

pytestmark = [pytest.mark.bench, pytest.mark.kubernetes]


def test_quick_kubernetes_benchmark_measures_our_daemon_and_the_poller_and_leaves_no_thread_behind() -> None:
    before = {thread.ident for thread in threading.enumerate()}

    result = k8s_watch.run(changes=k8s_watch.QUICK_CHANGES, pods=k8s_watch.QUICK_PODS)

    for side in (result.ours, result.poller):
        assert len(side.change_to_status_ms) == k8s_watch.QUICK_CHANGES and positive(side.change_to_status_ms)
        assert side.pods == k8s_watch.QUICK_PODS and positive([side.resync_ms])
        assert 0 <= side.overlapped < k8s_watch.QUICK_CHANGES
    # The writes fall at every phase of the poller's one-second period, so some wait most of it; ours do not wait.
    assert p99(result.poller.change_to_status_ms) >= k8s_watch.POLL_INTERVAL_S * 1000 / 2
    assert median(result.ours.change_to_status_ms) < median(result.poller.change_to_status_ms)
    assert_compared(result, k8s_watch.render, "poller")

    def leftover() -> list[str]:
        # HttpServer.stop does not shut down waitress's task threads (idle, daemonic; reported to the lead).
        return [t.name for t in threading.enumerate()
                if t.ident not in before and t.is_alive() and not t.name.startswith("waitress-")]

    # Fake API servers, control planes, daemons, pollers, push clients: all stopped.
    wait_until(lambda: not leftover(), 5.0, 0.05, "every thread the benchmark started has ended")
