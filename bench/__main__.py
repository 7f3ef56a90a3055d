"""Run every benchmark: ``python -m bench`` (full) or ``python -m bench --quick`` (smoke), ``--json`` for JSON."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from . import (
    dashboard_paint,
    docker_events,
    k8s_watch,
    plane_start,
    process_restart,
    push_flood,
    push_throughput,
    scale,
    stream_push,
    webhook_latency,
)

# name -> (run(quick) -> result with .passed and .to_json(), render(result) -> str)
BENCHMARKS: dict[str, tuple[Callable[[bool], Any], Callable[[Any], str]]] = {
    "process_restart": (
        lambda quick: process_restart.run(
            kills=process_restart.QUICK_KILLS if quick else process_restart.FULL_KILLS,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        process_restart.render,
    ),
    "docker_events": (
        lambda quick: docker_events.run(
            kills=docker_events.QUICK_KILLS if quick else docker_events.FULL_KILLS,
            containers=docker_events.QUICK_CONTAINERS if quick else docker_events.FULL_CONTAINERS,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        docker_events.render,
    ),
    "k8s_watch": (
        lambda quick: k8s_watch.run(
            changes=k8s_watch.QUICK_CHANGES if quick else k8s_watch.FULL_CHANGES,
            pods=k8s_watch.QUICK_PODS if quick else k8s_watch.FULL_PODS,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        k8s_watch.render,
    ),
    "push_flood": (
        lambda quick: push_flood.run(
            updates=push_flood.QUICK_UPDATES if quick else push_flood.FULL_UPDATES,
            flood_seconds=push_flood.QUICK_FLOOD_S if quick else push_flood.FULL_FLOOD_S,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        push_flood.render,
    ),
    "plane_start": (
        lambda quick: plane_start.run(
            instances=plane_start.QUICK_INSTANCES if quick else plane_start.FULL_INSTANCES,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        plane_start.render,
    ),
    "webhook_latency": (
        lambda quick: webhook_latency.run(
            kills=webhook_latency.QUICK_KILLS if quick else webhook_latency.FULL_KILLS,
            changes=webhook_latency.QUICK_CHANGES if quick else webhook_latency.FULL_CHANGES,
            blocks=webhook_latency.QUICK_BLOCKS if quick else webhook_latency.FULL_BLOCKS,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        webhook_latency.render,
    ),
    "push_flood_batch": (
        lambda quick: push_flood.run(
            updates=push_flood.QUICK_UPDATES if quick else push_flood.FULL_UPDATES,
            flood_seconds=push_flood.QUICK_FLOOD_S if quick else push_flood.FULL_FLOOD_S,
            rogue_batch=push_flood.ROGUE_BATCH,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        push_flood.render,
    ),
    "push_throughput": (
        lambda quick: push_throughput.run(
            seconds=push_throughput.QUICK_SECONDS if quick else push_throughput.FULL_SECONDS,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        push_throughput.render,
    ),
    "dashboard_paint": (
        lambda quick: dashboard_paint.run(
            instances=dashboard_paint.QUICK_INSTANCES if quick else dashboard_paint.FULL_INSTANCES,
            loads=dashboard_paint.QUICK_LOADS if quick else dashboard_paint.FULL_LOADS,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        dashboard_paint.render,
    ),
    "stream_push": (
        lambda quick: stream_push.run(
            updates=stream_push.QUICK_UPDATES if quick else stream_push.FULL_UPDATES,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        stream_push.render,
    ),
    "scale": (
        lambda quick: scale.run(
            pooled=scale.QUICK_POOLED if quick else scale.FULL_POOLED,
            threads=scale.QUICK_THREADS if quick else scale.FULL_THREADS,
            updates=scale.QUICK_UPDATES if quick else scale.FULL_UPDATES,
            kills=scale.QUICK_KILLS if quick else scale.FULL_KILLS,
            say=lambda m: print(m, file=sys.stderr, flush=True),
        ),
        scale.render,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 when a full run misses a target; a quick run only checks that everything runs."""
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a few iterations of each benchmark")
    ap.add_argument("--json", action="store_true", help="print one JSON document with every result")
    args = ap.parse_args(argv)
    results = {}
    for name, (run, render) in BENCHMARKS.items():
        result = run(args.quick)
        results[name] = result
        if not args.json:
            print(f"== {name}\n{render(result)}\n", flush=True)
    if args.json:
        print(json.dumps({name: r.to_json() for name, r in results.items()}, indent=2))
    return 0 if args.quick or all(r.passed for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
