"""Shared fixtures: no actor may leak from one test into the next."""

from __future__ import annotations

from typing import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=5)
