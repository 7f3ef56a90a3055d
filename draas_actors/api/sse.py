"""Server-Sent Events framing (the WHATWG HTML standard, "server-sent events"): the bytes of one event or comment.

An event is ``id:``, ``event:`` and ``data:`` lines ended by a blank line; a line starting with ``:`` is a comment
that clients ignore (a heartbeat keeps proxies and clients from timing an idle stream out). Data is written on one
line: callers pass JSON, which ``json.dumps`` never breaks across lines.
"""

from __future__ import annotations

import json
from typing import Any

CONTENT_TYPE = "text/event-stream; charset=utf-8"


def event(name: str, data: Any, event_id: int | None = None) -> bytes:
    """One event; ``data`` as compact JSON on one line (a string or a number is JSON too)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {text}\n\n".encode()


def comment(text: str) -> bytes:
    """A comment line; ``text`` must not hold a line break."""
    if "\n" in text or "\r" in text:
        raise ValueError("an SSE comment is one line")
    return f": {text}\n\n".encode()


__all__ = ["CONTENT_TYPE", "comment", "event"]
