"""What every daemon pushes: one status update, in the shape of an item of ``POST /api/status/updates``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from draas_actors.model import Platform, Status

__all__ = ["StatusUpdate"]


@dataclass(frozen=True, kw_only=True)
class StatusUpdate:
    """One observation of one instance's workload, made by a daemon (``source``) on a ``platform``."""

    instance_id: str
    workload_id: str  # what the daemon knows the workload by: a container id, a pod's uid
    status: Status
    observed_at: float  # epoch seconds, on the clock the daemon compares its observations by
    source: str
    platform: Platform
    metadata: Mapping[str, str | int] = field(default_factory=dict)
    # The W3C traceparent of the span of the engine or watch event that made it (``Outbox.send``): the control
    # plane continues that trace, and the change the update causes keeps it. Not part of what an update says: the
    # daemons compare updates by status and metadata (``reported.SameState``).
    traceparent: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The body of one item of ``POST /api/status/updates``."""
        body: dict[str, Any] = {
            "instanceId": self.instance_id,
            "status": self.status.value,
            "source": self.source,
            "platform": self.platform.value,
            "observedAt": self.observed_at,
            "metadata": dict(self.metadata),
        }
        if self.traceparent is not None:
            body["traceparent"] = self.traceparent
        return body
