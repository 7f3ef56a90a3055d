"""Shared fixtures: no actor may leak from one test into the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from tests.mounts import tmpfs


@pytest.fixture(autouse=True)
def stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a read-only file system (root ignores mode bits, so a chmod would prove nothing)."""
    with tmpfs(tmp_path / "read-only", size="1m", read_only=True) as where:
        yield where
