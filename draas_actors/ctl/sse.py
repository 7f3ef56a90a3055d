"""Reading Server-Sent Events (the WHATWG HTML standard's "server-sent events" parsing), as ``watch`` receives them.

Lines in, events out: ``id:``, ``event:`` and ``data:`` fields (several ``data:`` lines join with a newline) until a
blank line dispatches the event; a line starting with ``:`` is a comment (the server's heartbeat), skipped.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    name: str
    data: str
    id: str | None  # None: the event set no id (the last one seen still holds)


def events(lines: Iterable[str]) -> Iterator[Event]:
    name, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            event_id = value


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a byte stream, each as soon as its end arrives (``\n`` or ``\r\n``; a bare ``\r``, which no
    server of ours writes, is not an end), a character cut between two chunks decoded whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line.removesuffix("\r")
