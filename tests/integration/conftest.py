"""Fixtures for integration tests: a control plane on real HTTP, and clean-up of every process by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ProcessJanitor, RunningControlPlane, running_control_plane


@pytest.fixture
def janitor() -> Iterator[ProcessJanitor]:
    janitor = ProcessJanitor()
    try:
        yield janitor
    finally:
        janitor.kill_all()


@pytest.fixture
def plane(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor) as running:
        yield running
