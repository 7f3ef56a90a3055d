"""Where to find the actors: the core actors by name, the instance actors by instance id.

The supervisor writes both (it replaces a ref when it restarts that actor); any thread reads them, so that a push
reaches its instance actor without a round trip through the supervisor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pykka

from ..model import Platform


@dataclass
class CoreRefs:
    store: pykka.ActorRef[Any] | None = None
    bus: pykka.ActorRef[Any] | None = None
    monitor: pykka.ActorRef[Any] | None = None
    supervisor: pykka.ActorRef[Any] | None = None

    def core(self) -> dict[str, pykka.ActorRef[Any] | None]:
        return {"store": self.store, "bus": self.bus, "monitor": self.monitor, "supervisor": self.supervisor}


@dataclass(frozen=True)
class Entry:
    """One instance's current actor; ``platform`` lets a daemon's scope be checked without asking the actor."""

    ref: pykka.ActorRef[Any]
    platform: Platform
    created_at: float


class Directory:
    """Instance id -> ``Entry``, thread-safe. Only the supervisor writes it; HTTP threads read it on every push.

    An entry stays while its actor is being restarted (its ref is dead then): a push that finds the ref dead hands
    its reports to the supervisor, which queues them for the replacement.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}

    def get(self, instance_id: str) -> Entry | None:
        with self._lock:
            return self._entries.get(instance_id)

    def put(self, instance_id: str, entry: Entry) -> None:
        with self._lock:
            self._entries[instance_id] = entry

    def pop(self, instance_id: str) -> Entry | None:
        with self._lock:
            return self._entries.pop(instance_id, None)

    def snapshot(self) -> dict[str, Entry]:
        """A copy to iterate over while the supervisor keeps changing the directory."""
        with self._lock:
            return dict(self._entries)

    def __contains__(self, instance_id: object) -> bool:
        with self._lock:
            return instance_id in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
