"""The instance record: everything an instance actor owns, in the shape the store persists."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .model import InstanceId, Platform, Status
from .policy import RestartHistory, RestartMode, RestartPolicy


@dataclass(frozen=True, kw_only=True)
class ProcessSpec:
    """How to run (or which PID to adopt for) a process instance."""

    command: tuple[str, ...] = ()
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    adopt_pid: int | None = None
    stop_timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """The live process behind an instance, identified by PID and create time against PID reuse."""

    pid: int
    create_time: float
    started_at: float
    child: bool  # our child in this control plane's lifetime, so its exit code can be read
    own_group: bool = False  # we spawned it as a process-group leader: signals go to the whole group


@dataclass(frozen=True, kw_only=True)
class InstanceRecord:
    instance_id: InstanceId
    platform: Platform
    status: Status = Status.PENDING
    status_since: float = 0.0
    operator_stopped: bool = False
    process: ProcessSpec | None = None
    restart_policy: RestartPolicy = RestartPolicy()
    runtime: Runtime | None = None
    restart_count: int = 0
    history: RestartHistory = RestartHistory()
    last_exit_code: int | None = None
    last_reason: str | None = None
    next_restart_at: float | None = None
    last_observed: Mapping[str, float] = field(default_factory=dict)
    stale_dropped: int = 0
    rejected_transitions: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    workload_id: str | None = None  # the container (Docker) or pod (Kubernetes) last reported for it
    last_exit_at: float | None = None  # observedAt of the last exit handled, so a replayed exit restarts nothing
    version: int = 0  # bumped on every change, so the store can ignore an older save arriving late

    def replace(self, **changes: Any) -> InstanceRecord:
        return dataclasses.replace(self, **changes)


def record_to_json(record: InstanceRecord) -> str:
    return json.dumps(dataclasses.asdict(record), default=_encode, separators=(",", ":"))


def record_from_json(text: str) -> InstanceRecord:
    raw = json.loads(text)
    policy = raw["restart_policy"]
    policy["mode"] = RestartMode(policy["mode"])
    policy["success_exit_codes"] = frozenset(policy["success_exit_codes"])
    history = raw["history"]
    process = raw["process"]
    if process is not None:
        process["command"] = tuple(process["command"])
    return InstanceRecord(
        **{
            **raw,
            "instance_id": InstanceId(raw["instance_id"]),
            "platform": Platform(raw["platform"]),
            "status": Status(raw["status"]),
            "process": ProcessSpec(**process) if process is not None else None,
            "restart_policy": RestartPolicy(**policy),
            "runtime": Runtime(**raw["runtime"]) if raw["runtime"] is not None else None,
            "history": RestartHistory(
                restart_times=tuple(history["restart_times"]), series=history["series"]
            ),
        }
    )


def _encode(value: Any) -> Any:
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot encode {type(value).__name__}")
