"""The stream push benchmark runs end to end in quick mode: 200 SSE streams are open while the daemon pushes, every
reader sees every change in cursor order, and no reader or pusher process is left behind (its 1.5x target is
measured by the full run, not asserted here)."""

from __future__ import annotations

import pytest

from bench import stream_push
from tests.integration.bench_support import assert_reported, live_descendants, positive
from tests.integration.stream_support import stream_threads


@pytest.mark.bench
def test_quick_stream_push_keeps_200_streams_open_delivers_every_change_and_leaves_no_child() -> None:
    before = live_descendants()

    result = stream_push.run(updates=stream_push.QUICK_UPDATES)

    assert len(result.alone_ms) == len(result.streams_ms) == stream_push.QUICK_UPDATES
    assert positive(result.alone_ms + result.streams_ms)
    assert result.accepted == 2 * stream_push.QUICK_UPDATES
    assert result.open_streams == stream_push.STREAMS == result.readers.readers
    assert result.delivered
    # Each reader saw every push made while it was open (in every round), and nothing twice (ids rise).
    assert result.readers.events_min >= stream_push.QUICK_UPDATES // stream_push.ROUNDS
    summary = assert_reported(result, stream_push.render, "SSE streams")
    assert summary["readers"]["caught_up"] == stream_push.STREAMS
    assert live_descendants() - before == set()
    assert stream_threads() == []
