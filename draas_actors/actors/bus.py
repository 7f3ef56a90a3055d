"""The status bus: assigns change-log cursors, persists through the store, fans events out to subscribers."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pykka

from ..commit import Sync
from ..delivery import Subscriptions
from ..messages import LastCursor, Publish, SaveRecord, Subscribe
from ..metrics import Metrics
from .refs import CoreRefs
from .watched import WatchedActor

log = logging.getLogger(__name__)


class BusActor(WatchedActor):
    kind = "bus"

    def __init__(
        self,
        *,
        refs: CoreRefs,
        subscriptions: Subscriptions,
        ask_timeout: float,
        watcher: Any = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(watcher=watcher, key="bus")
        self.refs = refs
        self.subscriptions = subscriptions
        self.ask_timeout = ask_timeout
        self.cursor = 0
        self.metrics = metrics or Metrics()

    def started(self) -> None:
        # Cursors continue from what the store holds, so they stay monotonic across restarts.
        cursor: int = self._store().ask(LastCursor(), block=True, timeout=self.ask_timeout)
        self.cursor = cursor

    def _store(self) -> pykka.ActorRef[Any]:
        assert self.refs.store is not None
        return self.refs.store

    def on_receive(self, message: Any) -> Any:
        match message:
            case Publish(change=change, record=record, ack=ack):
                store = self._store()
                if change is not None:
                    self.cursor += 1
                    change = dataclasses.replace(change, cursor=self.cursor)
                store.tell(SaveRecord(record, ack, change))
                if change is not None:
                    self.subscriptions.publish(change)
                    self.metrics.status_changes.labels(change.platform.value, change.new_status.value).inc()
            case Sync(ack):
                try:
                    self._store().tell(message)  # behind the writes this bus has passed on
                except pykka.ActorDeadError:
                    ack.failed("the store is restarting")
            case Subscribe(callback, event_filter, queue_size):
                return self.subscriptions.add(callback, event_filter, queue_size)
            case _:
                return super().on_receive(message)
        return None
