"""Small real file systems for fault tests: a tmpfs that fills up, or one mounted read-only.

Mounting needs root (as on these machines and in CI); elsewhere the test is skipped with the reason, and with
CI=true it fails instead, as for a missing engine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, *, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "4m") mounted at ``where`` for the block; unmounted even on failure."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield where
    finally:
        # Lazy: a file still open in a thread that is being stopped must not keep the mount (and the test) up.
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(directory: Path, *, leave: int = 0) -> Path:
    """Write a file in ``directory`` until its file system has at most ``leave`` bytes free; returns the file."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as handle:
        for _ in range(1 << 16):  # bounded: 4 GiB at most
            free = os.statvfs(directory).f_bavail * os.statvfs(directory).f_frsize
            if free <= leave:
                break
            try:
                handle.write(chunk[: max(1, min(len(chunk), free - leave))])
                handle.flush()
            except OSError:
                break
    return filler
