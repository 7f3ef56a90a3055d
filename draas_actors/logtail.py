"""Reading a local process's output file: its last lines, or what was appended after a byte offset.

Both reads are bounded in bytes (and the tail in lines), so an answer never holds more than a setting allows however
large the file has grown. The offset handed back is where the next read continues: a client follows a file by
asking again with it (``GET /api/instances/{id}/logs?after=``), and no server thread waits on the file for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LogSlice:
    data: bytes
    offset: int  # the byte offset just after ``data``: where the next read continues
    truncated: bool  # the bound cut older output off (a tail) or left newer output for the next read (after)


def tail(path: Path, lines: int, max_bytes: int) -> LogSlice:
    """The last ``lines`` lines of ``path`` within its last ``max_bytes`` bytes; empty when there is no file (an
    adopted process, or one whose output nobody has written yet)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = max(0, size - max_bytes)
            handle.seek(start)
            data = handle.read(size - start)  # up to the size seen: what is appended meanwhile is the next read's
    except FileNotFoundError:
        return LogSlice(b"", 0, False)
    end = start + len(data)
    kept = data.splitlines(keepends=True)
    cut = start > 0
    if cut and kept:
        kept = kept[1:]  # the first line began before the window: a partial line is not shown
    if len(kept) > lines:
        kept, cut = kept[-lines:], True
    return LogSlice(b"".join(kept), end, cut)


def read_after(path: Path, offset: int, max_bytes: int) -> LogSlice:
    """What ``path`` holds after byte ``offset``, at most ``max_bytes`` of it. A file now shorter than ``offset`` was
    truncated or replaced: it is read from its start."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = offset if offset <= size else 0
            handle.seek(start)
            data = handle.read(min(max_bytes, size - start))
    except FileNotFoundError:
        return LogSlice(b"", 0, False)
    return LogSlice(data, start + len(data), start + len(data) < size)
