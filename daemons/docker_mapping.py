"""Pure mappers from what the Docker Engine says to status updates for the control plane.

Two inputs: an event from ``GET /events`` (decoded JSON) and a row of the cheap container listing
(``GET /containers/json``, the low-level ``client.api.containers``). Both become a ``StatusUpdate`` or a ``Skip``
saying why nothing is pushed. Nothing here talks to the engine, the network or the clock.

Events (the ``Action``; ``health_status`` events carry their value after a colon):

============================== =========== =====================================
action                         status      reason (metadata)
============================== =========== =====================================
create                         Pending     created
start, restart, unpause        Running     started / restarted / unpaused
health_status: healthy         Running     health check passing
health_status: unhealthy       Unhealthy   health check failing
pause                          Stopped     paused
die (exitCode 0)               Stopped     exited with code 0
die (exitCode != 0)            Failed      exited with code N
kill                           Failed      killed by signal S
oom                            Failed      out of memory (OOM)
destroy                        Removed     removed
anything else                  (skipped)   Skip.IGNORED_ACTION
============================== =========== =====================================
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from draas_actors.model import Platform, Status
from draas_actors.wire import is_instance_id

from .updates import StatusUpdate

__all__ = [
    "INSTANCE_LABEL",
    "PLATFORM",
    "SOURCE",
    "EngineTime",
    "Skip",
    "StatusUpdate",
    "exit_code_from_status",
    "map_event",
    "map_listing",
    "parse_engine_time",
    "removed_update",
    "same_container_state",
]

SOURCE = "DockerDaemon"
PLATFORM = Platform.DOCKER
INSTANCE_LABEL = "draas.instanceId"


class Skip(str, enum.Enum):
    """Why an event or a listed container produced no update."""

    IGNORED_ACTION = "ignored action"
    NO_INSTANCE_ID = f"no {INSTANCE_LABEL} label"
    INVALID_INSTANCE_ID = f"a {INSTANCE_LABEL} label that is not a valid instance id"
    NOT_A_CONTAINER = "not a container event"
    UNKNOWN_STATE = "unknown container state"


@dataclass(frozen=True)
class EngineTime:
    """A time on the engine's clock, exact to the nanosecond, usable as the ``since`` of ``GET /events``."""

    nanos: int

    @property
    def seconds(self) -> float:
        return self.nanos / 1e9

    @property
    def since_param(self) -> str:
        # The engine parses "seconds.nanoseconds"; a float would round away the last digits.
        return f"{self.nanos // 1_000_000_000}.{self.nanos % 1_000_000_000:09d}"


_FIXED: dict[str, tuple[Status, str]] = {
    "create": (Status.PENDING, "created"),
    "start": (Status.RUNNING, "started"),
    "restart": (Status.RUNNING, "restarted"),
    "unpause": (Status.RUNNING, "unpaused"),
    "pause": (Status.STOPPED, "paused"),
    "oom": (Status.FAILED, "out of memory (OOM)"),
    "destroy": (Status.REMOVED, "removed"),
    "health_status: healthy": (Status.RUNNING, "health check passing"),
    "health_status: unhealthy": (Status.UNHEALTHY, "health check failing"),
}


def map_event(event: Mapping[str, Any]) -> StatusUpdate | Skip:
    """One decoded engine event -> the update to push, or why there is none."""
    if event.get("Type", "container") != "container":
        return Skip.NOT_A_CONTAINER
    actor = event.get("Actor") or {}
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    container_id = str(actor.get("ID") or event.get("id") or "")
    action = str(event.get("Action") or event.get("status") or "")
    exit_code = _int_or_none(attributes.get("exitCode"))
    mapped = _map_action(action, exit_code, attributes.get("signal"))
    if mapped is None:
        return Skip.IGNORED_ACTION
    instance_id = _instance_id(attributes)
    if isinstance(instance_id, Skip):
        return instance_id
    status, reason = mapped
    metadata: dict[str, str | int] = {
        "containerId": container_id,
        "imageName": str(attributes.get("image") or event.get("from") or ""),
        "eventAction": action,
        "reason": reason,
    }
    if exit_code is not None:
        metadata["exitCode"] = exit_code
    if "name" in attributes:
        metadata["containerName"] = str(attributes["name"])
    return _update(instance_id, container_id, status, event_time(event), metadata)


def _instance_id(labels: Mapping[str, str]) -> str | Skip:
    """The ``draas.instanceId`` label, or why there is none the control plane would take (it would refuse the push)."""
    instance_id = (labels.get(INSTANCE_LABEL) or "").strip()
    if not instance_id:
        return Skip.NO_INSTANCE_ID
    return instance_id if is_instance_id(instance_id) else Skip.INVALID_INSTANCE_ID


def _map_action(action: str, exit_code: int | None, signal: str | None) -> tuple[Status, str] | None:
    fixed = _FIXED.get(action)
    if fixed is not None:
        return fixed
    if action == "die":
        if exit_code == 0:
            return Status.STOPPED, "exited with code 0"
        return Status.FAILED, "exited" if exit_code is None else f"exited with code {exit_code}"
    if action == "kill":
        return Status.FAILED, f"killed by signal {signal}" if signal else "killed"
    return None


def event_time(event: Mapping[str, Any]) -> float:
    """Epoch seconds of an event: ``timeNano`` when present (float: ~0.2 µs resolution today), else ``time``."""
    nanos = event.get("timeNano")
    if isinstance(nanos, int) and not isinstance(nanos, bool):
        return nanos / 1e9
    return float(event.get("time") or 0)


# -- the container listing ---------------------------------------------------------------------------

_EXITED = re.compile(r"^Exited \((-?\d+)\)")


def exit_code_from_status(status_text: str) -> int | None:
    """The exit code in the listing's human ``Status``: ``"Exited (137) 3 seconds ago"`` -> 137."""
    match = _EXITED.match(status_text.strip())
    return int(match.group(1)) if match else None


def map_listing(container: Mapping[str, Any], observed_at: float) -> StatusUpdate | Skip:
    """One row of ``GET /containers/json?all=1`` -> its current state as an update observed at ``observed_at``.

    ``observed_at`` must not be later than the moment the listing was read (the daemon passes the engine's time
    taken just before listing), so that every event after the listing is newer and wins at the control plane.
    """
    instance_id = _instance_id(container.get("Labels") or {})
    if isinstance(instance_id, Skip):
        return instance_id
    state = str(container.get("State") or "").lower()
    status_text = str(container.get("Status") or "")
    exit_code = exit_code_from_status(status_text) if state == "exited" else None
    mapped = _map_state(state, status_text, exit_code)
    if mapped is None:
        return Skip.UNKNOWN_STATE
    status, reason = mapped
    container_id = str(container.get("Id") or "")
    metadata: dict[str, str | int] = {
        "containerId": container_id,
        "imageName": str(container.get("Image") or ""),
        "containerState": state,
        "reason": reason,
    }
    if exit_code is not None:
        metadata["exitCode"] = exit_code
    names = container.get("Names") or []
    if names:
        metadata["containerName"] = str(names[0]).lstrip("/")
    return _update(instance_id, container_id, status, observed_at, metadata)


def _map_state(state: str, status_text: str, exit_code: int | None) -> tuple[Status, str] | None:
    if state == "running":
        if "(unhealthy)" in status_text:
            return Status.UNHEALTHY, "health check failing"
        return Status.RUNNING, "running"
    if state == "exited":
        if exit_code == 0:
            return Status.STOPPED, "exited with code 0"
        return Status.FAILED, "exited" if exit_code is None else f"exited with code {exit_code}"
    return _STATES.get(state)


_STATES: dict[str, tuple[Status, str]] = {
    "created": (Status.PENDING, "created"),
    "paused": (Status.STOPPED, "paused"),
    "restarting": (Status.RESTARTING, "restarting"),
    "dead": (Status.FAILED, "dead"),
    "removing": (Status.STOPPING, "being removed"),
}


def removed_update(
    *, container_id: str, instance_id: str, observed_at: float, reason: str, image: str = ""
) -> StatusUpdate:
    """A container the daemon knew that is no longer listed (it went while nobody was streaming)."""
    metadata: dict[str, str | int] = {"containerId": container_id, "imageName": image, "reason": reason}
    return _update(instance_id, container_id, Status.REMOVED, observed_at, metadata)


def same_container_state(before: StatusUpdate, update: StatusUpdate) -> bool:
    """Whether a listed container's ``update`` says what ``before`` (the update last pushed for its instance, from an
    event or a listing) said: the same container, status and exit code.

    The rest of the metadata differs between an event and a listing of one state (``eventAction`` against
    ``containerState``, "started" against "running"), so comparing all of it would call every state reported from
    an event changed. What this cannot see: a container restarted and exited again with the same code while nobody
    streamed (the cheap listing has no restart count or exit time).
    """
    return _state_of(before) == _state_of(update)


def _state_of(update: StatusUpdate) -> tuple[str, Status, object]:
    return update.workload_id, update.status, update.metadata.get("exitCode")


def _update(
    instance_id: str, container_id: str, status: Status, observed_at: float, metadata: dict[str, str | int]
) -> StatusUpdate:
    return StatusUpdate(
        instance_id=instance_id,
        workload_id=container_id,
        status=status,
        observed_at=observed_at,
        source=SOURCE,
        platform=PLATFORM,
        metadata=metadata,
    )


# -- the engine's clock ------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE)


def parse_engine_time(text: str) -> EngineTime:
    """The engine's ``SystemTime`` (RFC 3339 with up to 9 fractional digits, any offset) -> EngineTime.

    Python's ``fromisoformat`` keeps only microseconds; the ``since`` of ``GET /events`` deserves all nine digits.
    Raises ValueError for anything else.
    """
    match = _RFC3339.match(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, offset = match.groups()
    zone = dt.UTC if offset.upper() == "Z" else _offset(offset)
    seconds = int(dt.datetime.fromisoformat(whole).replace(tzinfo=zone).timestamp())
    return EngineTime(seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0")))


def _offset(text: str) -> dt.timezone:
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
