"""The load generator of bench/push_throughput.py, run as its own process so that it does not share the control
plane's GIL: stdlib only, keep-alive connections to 127.0.0.1, as fast as the server answers.

    python -m bench.throughput_clients PORT SECONDS CONNECTIONS TAG BATCH INSTANCES
        (prints "ready" after every connection's first answer, then one JSON line of counts)

``BATCH`` 0 sends single updates (objects); N > 0 arrays of N updates. Connection ``c`` pushes about its own
``INSTANCES`` instances ``tp-TAG-c-k``, round robin, alternating Running and Stopped so that every update is a change.
The keys come from the environment (``BENCH_PUSH_KEYS``), never the command line.
"""
from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from collections import Counter

PUSH_PATH = "/api/status/updates"
KEY_VARIABLE = "BENCH_PUSH_KEYS"  # comma-separated: connection c uses key c mod their number
READY_WITHIN_S = 15.0
WARMUP_REQUESTS = 2  # per connection, before "ready": the instances exist and the statuses alternate from there


def instance_ids(tag: str, connection: int, instances: int) -> list[str]:
    return [f"tp-{tag}-{connection}-{k}" for k in range(instances)]


def bodies(tag: str, connection: int, batch: int, instances: int) -> list[bytes]:
    """The request bodies one connection cycles through; consecutive updates of an instance differ."""
    ids = instance_ids(tag, connection, instances)

    def update(instance: str, status: str) -> dict[str, str]:
        return {"instanceId": instance, "status": status, "source": "bench", "platform": "docker"}

    out: list[bytes] = []
    for status in ("Running", "Stopped"):
        if batch:
            out.append(json.dumps([update(ids[(k) % len(ids)], status) for k in range(batch)]).encode())
        else:
            out.extend(json.dumps(update(i, status)).encode() for i in ids)
    return out


def run(port: int, seconds: float, connections: int, tag: str, batch: int, instances: int) -> Counter[str]:
    keys = os.environ.get(KEY_VARIABLE, "").split(",")
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    ready = threading.Barrier(connections + 1)
    go = threading.Event()
    stop_at = [0.0]

    def pump(index: int) -> None:
        local: Counter[str] = Counter()
        payloads = bodies(tag, index, batch, instances)
        headers = {"Content-Type": "application/json", "X-API-Key": keys[index % len(keys)]}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        turn = 0

        def send() -> int:
            nonlocal turn
            body = payloads[turn % len(payloads)]
            turn += 1
            conn.request("POST", PUSH_PATH, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status

        try:
            for _ in range(WARMUP_REQUESTS):
                send()
        finally:
            ready.wait(READY_WITHIN_S)
        go.wait(READY_WITHIN_S)
        while time.monotonic() < stop_at[0]:
            try:
                status = send()
            except (OSError, http.client.HTTPException):
                local["errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            local["sent"] += 1
            local[{202: "accepted", 429: "limited"}.get(status, "other")] += 1
        conn.close()
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=pump, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    ready.wait(READY_WITHIN_S)
    print("ready", flush=True)
    # The parent answers with one line when it has its "before" figures: then the timed window starts.
    sys.stdin.readline()
    started = time.monotonic()
    stop_at[0] = started + seconds
    go.set()
    for thread in threads:
        thread.join(seconds + READY_WITHIN_S)
    counts["elapsed_us"] = int((time.monotonic() - started) * 1e6)
    return counts


def main(argv: list[str]) -> int:
    port, seconds, connections, tag, batch, instances = argv
    counts = run(int(port), float(seconds), int(connections), tag, int(batch), int(instances))
    keys = ("sent", "accepted", "limited", "other", "errors", "elapsed_us")
    print(json.dumps({k: counts[k] for k in keys}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
