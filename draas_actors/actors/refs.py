"""Where to find the core actors. The supervisor replaces a ref when it restarts that actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pykka


@dataclass
class CoreRefs:
    store: pykka.ActorRef[Any] | None = None
    bus: pykka.ActorRef[Any] | None = None
    monitor: pykka.ActorRef[Any] | None = None
    supervisor: pykka.ActorRef[Any] | None = None

    def core(self) -> dict[str, pykka.ActorRef[Any] | None]:
        return {"store": self.store, "bus": self.bus, "monitor": self.monitor, "supervisor": self.supervisor}
