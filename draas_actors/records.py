"""The instance record: everything an instance actor owns, in the shape the store persists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .frozen import fast_replace
from .model import InstanceId, Platform, Status, StopCause
from .policy import BUDGET_EXHAUSTED, RestartHistory, RestartMode, RestartPolicy


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
    last_stop_cause: StopCause | None = None  # why it last stopped; last_reason says it in words
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
        return fast_replace(self, **changes)  # on the path of every update: see frozen.py


def record_to_json(record: InstanceRecord) -> str:
    return json.dumps(record_to_dict(record), separators=(",", ":"))


def record_to_dict(record: InstanceRecord) -> dict[str, Any]:
    """The record as plain JSON values, in field order: the shape ``dataclasses.asdict`` gives, built field by field.

    The store encodes every record it saves, so this is on the path of every accepted update; ``asdict`` deep-copies
    each value on the way and cost five times as much (about 40 µs a record against 8). Adding a field to a record
    means adding it here: the codec's unit tests fail until it is.
    """
    policy = record.restart_policy
    process = record.process
    runtime = record.runtime
    return {
        "instance_id": record.instance_id,
        "platform": record.platform.value,
        "status": record.status.value,
        "status_since": record.status_since,
        "operator_stopped": record.operator_stopped,
        "process": None
        if process is None
        else {
            "command": list(process.command),
            "cwd": process.cwd,
            "env": dict(process.env),
            "adopt_pid": process.adopt_pid,
            "stop_timeout": process.stop_timeout,
        },
        "restart_policy": {
            "mode": policy.mode.value,
            "success_exit_codes": sorted(policy.success_exit_codes),
            "initial_backoff": policy.initial_backoff,
            "multiplier": policy.multiplier,
            "max_backoff": policy.max_backoff,
            "jitter": policy.jitter,
            "reset_after": policy.reset_after,
            "max_restarts": policy.max_restarts,
            "window": policy.window,
        },
        "runtime": None
        if runtime is None
        else {
            "pid": runtime.pid,
            "create_time": runtime.create_time,
            "started_at": runtime.started_at,
            "child": runtime.child,
            "own_group": runtime.own_group,
        },
        "restart_count": record.restart_count,
        "history": {"restart_times": list(record.history.restart_times), "series": record.history.series},
        "last_exit_code": record.last_exit_code,
        "last_reason": record.last_reason,
        "last_stop_cause": None if record.last_stop_cause is None else record.last_stop_cause.value,
        "next_restart_at": record.next_restart_at,
        "last_observed": dict(record.last_observed),
        "stale_dropped": record.stale_dropped,
        "rejected_transitions": record.rejected_transitions,
        "metadata": dict(record.metadata),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "workload_id": record.workload_id,
        "last_exit_at": record.last_exit_at,
        "version": record.version,
    }


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
            # A record saved before the field existed: its cause from its words, once (saved with it from now on).
            "last_stop_cause": _cause_from_reason(raw.get("last_reason"), raw["status"]) if "last_stop_cause" not in raw
            else None if raw["last_stop_cause"] is None else StopCause(raw["last_stop_cause"]),
        }
    )


# The words a record stored before ``last_stop_cause`` existed had for each cause (the actor's and supervisor's).
_OLD_REASONS: tuple[tuple[str, StopCause], ...] = (
    ("stopped at control-plane shutdown", StopCause.SHUTDOWN),
    ("stopped by operator", StopCause.OPERATOR),
    ("instance actor crashed ", StopCause.ESCALATED),
    ("spawn failed", StopCause.START_FAILED),
)


def _cause_from_reason(reason: str | None, status: str) -> StopCause | None:
    """A stored record's cause from its old reason text: read once when it is loaded, never again after."""
    if reason is None:
        return None
    if reason.endswith(BUDGET_EXHAUSTED):
        return StopCause.GAVE_UP
    for words, cause in _OLD_REASONS:
        if reason.startswith(words):
            return cause
    if " failed: " in reason and reason.split(" ", 1)[0] in ("docker", "kubernetes"):
        return StopCause.ACTION_FAILED
    if "no pod replaced it" in reason:
        return StopCause.DELETED
    return {"Failed": StopCause.CRASHED, "Stopped": StopCause.EXITED, "Removed": StopCause.DELETED}.get(status)
