"""The two kinds of pusher in bench/push_flood.py, each run as its own process: stdlib and requests only, so that
they start fast and share nothing with the control plane.

    python -m bench.flood_clients rogue PORT SECONDS CONNECTIONS TAG BATCH   (prints "ready", then one JSON line)
    python -m bench.flood_clients good PORT UPDATES PREFIX             (prints one JSON line)

The key comes from the environment (``BENCH_PUSH_KEY``), never the command line.
"""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass

import requests

PUSH_PATH = "/api/status/updates"
KEY_VARIABLE = "BENCH_PUSH_KEY"
INSTANCES = 20  # the good daemon's updates go round this many instances
READY_WITHIN_S = 15.0


def rogue_main(port: int, seconds: float, connections: int, tag: str, batch: int) -> int:
    """Push as fast as possible on ``connections`` keep-alive connections; print one JSON line of counts.

    ``batch`` 0 sends single updates (objects); N > 0 sends arrays of N updates, each about its own instance.
    """
    key = os.environ[KEY_VARIABLE]

    def body(connection: int, status: str) -> bytes:
        def update(instance: str) -> dict[str, str]:
            return {"instanceId": instance, "status": status, "source": "rogue", "platform": "docker"}

        if not batch:
            return json.dumps(update(f"rogue-{tag}-{connection}")).encode()
        return json.dumps([update(f"rogue-{tag}-{connection}-{k}") for k in range(batch)]).encode()

    bodies = [body(c, status) for c in range(connections) for status in ("Running", "Stopped")]
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    first = threading.Event()
    deadline = time.monotonic() + seconds

    def hammer(index: int) -> None:
        local: Counter[str] = Counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        turn = 0
        while time.monotonic() < deadline:
            body = bodies[2 * index + turn % 2]
            turn += 1
            try:
                conn.request("POST", PUSH_PATH, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                local["errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            local["sent"] += 1
            local[{202: "accepted", 429: "limited"}.get(response.status, "other")] += 1
            first.set()
        conn.close()
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    if first.wait(READY_WITHIN_S):
        print("ready", flush=True)
    for thread in threads:
        thread.join(seconds + READY_WITHIN_S)
    print(json.dumps({k: counts[k] for k in ("sent", "accepted", "limited", "other", "errors")}), flush=True)
    return 0


@dataclass(frozen=True)
class Pushed:
    latencies_ms: list[float]
    accepted: int
    retried: int
    last_status: dict[str, str]  # instance -> the status it was last sent
    sent: dict[str, int]  # instance -> updates sent


def good_main(port: int, updates: int, prefix: str) -> int:
    """The good daemon in its own process (as in production): push, then print one JSON line of results."""
    print(json.dumps(asdict(push_sequentially(port, os.environ[KEY_VARIABLE], updates, prefix))), flush=True)
    return 0


def push_sequentially(port: int, key: str, updates: int, prefix: str) -> Pushed:
    """One request at a time on one keep-alive session, like the push client; a 429 is waited out and retried."""
    session = requests.Session()
    url = f"http://127.0.0.1:{port}{PUSH_PATH}"
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    latencies: list[float] = []
    accepted = retried = 0
    last: dict[str, str] = {}
    sent: Counter[str] = Counter()
    try:
        for i in range(updates):
            instance = f"{prefix}-{i % INSTANCES}"
            status = "Stopped" if (i // INSTANCES) % 2 == 0 else "Running"  # the warm-up left them Running
            body = json.dumps({"instanceId": instance, "status": status, "source": "good", "platform": "docker"})
            started = time.perf_counter()
            for _ in range(10):
                response = session.post(url, data=body, headers=headers, timeout=10)
                if response.status_code != 429:
                    break
                retried += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
            latencies.append((time.perf_counter() - started) * 1000)
            accepted += response.status_code == 202
            last[instance] = status
            sent[instance] += 1
    finally:
        session.close()
    return Pushed(latencies, accepted, retried, last, dict(sent))


def main(argv: list[str]) -> int:
    kind, port, *rest = argv
    if kind == "rogue":
        seconds, connections, tag, batch = rest
        return rogue_main(int(port), float(seconds), int(connections), tag, int(batch))
    updates, prefix = rest
    return good_main(int(port), int(updates), prefix)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
