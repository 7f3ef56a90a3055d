"""A published change reaches the store as one message (its record and its change log entry together), and the
store commits both from it before it settles the ack."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pykka
import pytest

from draas_actors.actors.bus import BusActor
from draas_actors.actors.refs import CoreRefs
from draas_actors.actors.store import Retention, StoreActor
from draas_actors.commit import Outcome, Receipt
from draas_actors.delivery import Subscriptions
from draas_actors.messages import (
    ChangesPage,
    LastCursor,
    LoadRecord,
    Publish,
    QueryChanges,
    SaveRecord,
    StatusChanged,
)
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.records import InstanceRecord
from draas_actors.scheduler import Scheduler

NOW = float(int(time.time()))


def change(instance: str) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId(instance), platform=Platform.DOCKER, old_status=Status.STOPPED,
        new_status=Status.RUNNING, source="test", timestamp=NOW, metadata={},
    )


def record(instance: str) -> InstanceRecord:
    return InstanceRecord(instance_id=InstanceId(instance), platform=Platform.DOCKER, status=Status.RUNNING)


class FakeStore(pykka.ThreadingActor):
    """Records what the bus tells the store; answers the bus's LastCursor at start."""

    use_daemon_thread = True

    def __init__(self, seen: queue.Queue[Any]) -> None:
        super().__init__()
        self.seen = seen

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LastCursor):
            return 7
        self.seen.put(message)
        return None


@pytest.fixture
def actors() -> Iterator[list[pykka.ActorRef[Any]]]:
    started: list[pykka.ActorRef[Any]] = []
    yield started
    for ref in reversed(started):
        if ref.is_alive():
            ref.stop()


def test_the_bus_hands_a_change_and_its_record_to_the_store_in_one_message(
    actors: list[pykka.ActorRef[Any]],
) -> None:
    seen: queue.Queue[Any] = queue.Queue()
    refs = CoreRefs(store=FakeStore.start(seen))
    actors.append(refs.store)  # type: ignore[arg-type]
    bus = BusActor.start(refs=refs, subscriptions=Subscriptions(), ask_timeout=5.0)
    actors.append(bus)

    bus.tell(Publish(change=change("web-1"), record=record("web-1")))
    bus.tell(Publish(change=None, record=record("web-2")))
    first, second = seen.get(timeout=5), seen.get(timeout=5)

    assert isinstance(first, SaveRecord) and first.record.instance_id == "web-1"
    assert first.change is not None and first.change.cursor == 8  # after the store's last cursor
    assert isinstance(second, SaveRecord) and second.change is None and second.record.instance_id == "web-2"
    assert seen.empty()


def test_the_store_commits_the_record_and_the_change_of_one_message_before_the_ack(
    tmp_path: Path, actors: list[pykka.ActorRef[Any]]
) -> None:
    scheduler = Scheduler()
    try:
        store = StoreActor.start(path=str(tmp_path / "store.sqlite3"), retention=Retention(), scheduler=scheduler)
        actors.append(store)
        receipt = Receipt(1)
        committed = StatusChanged(**{**change("web-1").__dict__, "cursor": 1})

        store.tell(SaveRecord(record("web-1"), receipt.ticket(0).ack(Outcome.APPLIED), committed))

        assert receipt.wait(5.0) == [Outcome.APPLIED]
        saved = cast("InstanceRecord", store.ask(LoadRecord(InstanceId("web-1")), timeout=5))
        assert saved.status is Status.RUNNING
        page = cast("ChangesPage", store.ask(QueryChanges(0, 10, None), timeout=5))
        assert [c.cursor for c in page.changes] == [1]
    finally:
        scheduler.stop()
