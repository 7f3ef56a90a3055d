"""The start-up heap is set aside from the garbage collector's full walks (``draas_actors/heap.py``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from draas_actors.heap import settle_after_start


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_what_lives_at_start_up_is_out_of_the_collections_generations() -> None:
    kept = _Cycle()
    frozen = settle_after_start()
    assert frozen > 0 and gc.get_freeze_count() == frozen
    # get_objects lists the three generations a collection walks, not the permanent one.
    assert not any(o is kept for o in gc.get_objects())


def test_start_up_garbage_is_collected_before_the_freeze() -> None:
    gc.disable()  # no automatic collection in between: only settle_after_start's may free the cycle
    try:
        garbage = weakref.ref(_Cycle())
        assert garbage() is not None
        settle_after_start()
        assert garbage() is None
    finally:
        gc.enable()
