"""The SSE readers of bench/stream_push.py, in a process of their own: N streams on 127.0.0.1, read by one thread.

    python -m bench.stream_readers PORT READERS   (prints "ready" once every stream is open; then reads a target
                                                   cursor from stdin and prints one JSON line once every reader has
                                                   seen it, or when its deadline passes)

Each reader is a plain SSE parser over its socket (HTTP/1.1, chunked): it keeps the ``id:`` of each event, and checks
that the ids rise. One thread and a selector for all of them, so that the readers cost the machine little next to
the server they are measuring. The key comes from the environment (``BENCH_READ_KEY``), never the command line.
"""
from __future__ import annotations

import json
import os
import re
import selectors
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

_ID = re.compile(rb"^id: ([0-9]+)\r?$", re.MULTILINE)
KEY_VARIABLE = "BENCH_READ_KEY"
STREAM_PATH = "/api/status/stream"
OPEN_WITHIN_S = 20.0
CATCH_UP_S = 30.0


@dataclass
class Reader:
    sock: socket.socket
    buffer: bytes = b""
    opened: bool = False  # the response's headers came, with a 200
    last_id: int = -1
    events: int = 0
    in_order: bool = True
    ended: bool = False

    def take(self, data: bytes) -> None:
        self.buffer += data
        if not self.opened:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"a stream was refused: {head.splitlines()[0]!r}")
            self.opened, self.buffer = True, rest
        # Events end with a blank line: the complete ones are parsed at once (a regular expression over the
        # buffer, so that 200 readers cost little), the rest waits for more bytes. Chunk-size lines are no fields.
        end = self.buffer.rfind(b"\n\n")
        if end < 0:
            return
        complete, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        for found in _ID.findall(complete):
            cursor = int(found)
            self.in_order &= cursor > self.last_id
            self.last_id = cursor
            self.events += 1


def main(port: int, count: int) -> int:
    key = os.environ[KEY_VARIABLE]
    request = f"GET {STREAM_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    readers: list[Reader] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)
        sock.setblocking(False)
        reader = Reader(sock)
        readers.append(reader)
        selector.register(sock, selectors.EVENT_READ, reader)

    def pump(until: float, done: Callable[[], bool]) -> None:
        while time.monotonic() < until and not done():
            for key_, _ in selector.select(0.1):
                reader: Reader = key_.data
                try:
                    data = reader.sock.recv(262144)
                except BlockingIOError:
                    continue
                if not data:
                    reader.ended = True
                    selector.unregister(reader.sock)
                    continue
                reader.take(data)

    pump(time.monotonic() + OPEN_WITHIN_S, lambda: all(r.opened for r in readers))
    if not all(r.opened for r in readers):
        print(f"only {sum(r.opened for r in readers)} of {count} streams opened", flush=True)
        return 1
    print("ready", flush=True)
    target = int(sys.stdin.readline())
    pump(time.monotonic() + CATCH_UP_S, lambda: all(r.last_id >= target for r in readers))
    result = {
        "readers": count,
        "caught_up": sum(r.last_id >= target for r in readers),
        "in_order": all(r.in_order for r in readers),
        "ended": sum(r.ended for r in readers),
        "events_min": min(r.events for r in readers),
        "events_max": max(r.events for r in readers),
    }
    for reader in readers:
        reader.sock.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
