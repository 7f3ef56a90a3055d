"""What the benchmarks' quick-mode tests share: sample checks, the processes left behind, the report's checks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import psutil


def positive(xs: list[float]) -> bool:
    """At least one sample, and every one finite and above zero."""
    return bool(xs) and all(math.isfinite(x) and x > 0 for x in xs)


def live_descendants() -> set[int]:
    """PIDs of our descendants that are still running (a zombie has already exited)."""
    live = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                live.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return live


def assert_reported(result: Any, render: Callable[[Any], str], peer: str) -> dict[str, Any]:
    """The ``--json`` summary serialises and the table names the peer and a verdict; returns the summary."""
    summary: dict[str, Any] = result.to_json()
    json.dumps(summary)  # the --json output must be serialisable
    table = render(result)
    assert peer in table and ("PASS" in table or "MISS" in table)
    return summary


def assert_compared(result: Any, render: Callable[[Any], str], peer: str) -> None:
    """As ``assert_reported``, and the summary has every metric, each with both sides measured."""
    summary = assert_reported(result, render, peer)
    assert [m["label"] for m in summary["metrics"]] == [m.label for m in result.metrics]
    assert all(m["ratio_median"] > 0 and m["ratio_p99"] > 0 for m in summary["metrics"])
