"""Ids, statuses, platforms and the status transition table."""

from __future__ import annotations

import enum
from typing import NewType

InstanceId = NewType("InstanceId", str)


class Status(str, enum.Enum):
    """Canonical instance statuses."""

    PENDING = "Pending"
    STARTING = "Starting"
    RUNNING = "Running"
    UNHEALTHY = "Unhealthy"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    RESTARTING = "Restarting"
    REMOVED = "Removed"
    UNKNOWN = "Unknown"


class Platform(str, enum.Enum):
    PROCESS = "process"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


class StopCause(str, enum.Enum):
    """Why an instance's workload last stopped, for behaviour (``lastReason`` is the words for people)."""

    EXITED = "exited"  # ended on its own with a success
    CRASHED = "crashed"  # ended on its own with a failure (an exit code the policy counts as one)
    KILLED = "killed"  # ended by a signal that was not ours
    OPERATOR = "operator"  # stopped by an operator's stop or restart
    SHUTDOWN = "shutdown"  # stopped because the control plane was shutting down: the next start brings it back
    DELETED = "deleted"  # removed: its pod was deleted and nothing replaced it, or a daemon reported it gone
    START_FAILED = "start-failed"  # could not be started (spawn or adopt refused)
    ACTION_FAILED = "action-failed"  # a platform action (Docker start, pod delete...) failed
    GAVE_UP = "gave-up"  # the restart policy's budget is exhausted: not restarted again by itself
    ESCALATED = "escalated"  # its actor crashed too often: the supervisor marked it Failed


class ChangeKind(str, enum.Enum):
    """What a change-log entry records: a move to another lifecycle status, or a change of configuration."""

    STATUS = "status"
    CONFIGURATION = "configuration"  # the status is unchanged: old_status == new_status, the instance's status


# Names the upstream design used on the wire; accepted on input, never produced.
STATUS_ALIASES: dict[str, Status] = {"Created": Status.PENDING, "Error": Status.FAILED}
# The upstream enum's member for a configuration change. It is no lifecycle status: a report of it is recorded as a
# change of kind CONFIGURATION, and the instance keeps its status.
CONFIGURATION_CHANGED = "ConfigurationChanged"
# The upstream enum by number (its clients serialise an enum as its integer by default): index -> wire name.
UPSTREAM_STATUS_NUMBERS: tuple[str, ...] = ("Created", "Running", "Stopped", "Error", CONFIGURATION_CHANGED)
# Lower-cased wire name -> status: names match in any case, as ASP.NET's enum binding does.
_BY_NAME: dict[str, Status] = {
    **{s.value.lower(): s for s in Status}, **{name.lower(): s for name, s in STATUS_ALIASES.items()}
}


def parse_status(name: str) -> Status:
    """Return the canonical status for a wire name, in any case; raises ValueError for unknown names."""
    found = _BY_NAME.get(name.lower())
    if found is None:
        raise ValueError(f"unknown status {name!r}")
    return found


def is_configuration_changed(name: str) -> bool:
    """True for the upstream ``ConfigurationChanged``, in any case."""
    return name.lower() == CONFIGURATION_CHANGED.lower()


S = Status
_ALIVE = frozenset({S.STARTING, S.RUNNING, S.UNHEALTHY})

# Allowed transitions: TRANSITIONS[old] is the set of statuses a report may move an instance to.
# Observations are facts, so the table is generous; what it forbids are the reports that can only be
# late echoes of an earlier life (a removed instance cannot stop or turn unhealthy, a stopped one
# cannot start stopping) and moves into Pending from a live state that no platform produces.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.PENDING: frozenset(Status) - {S.PENDING},
    S.STARTING: frozenset(Status) - {S.STARTING, S.PENDING},
    S.RUNNING: frozenset(Status) - {S.RUNNING},
    S.UNHEALTHY: frozenset(Status) - {S.UNHEALTHY, S.PENDING, S.STARTING},
    S.STOPPING: frozenset({S.STOPPED, S.FAILED, S.REMOVED, S.UNKNOWN, S.RUNNING, S.RESTARTING}),
    S.STOPPED: frozenset({S.PENDING, S.STARTING, S.RUNNING, S.RESTARTING, S.FAILED, S.REMOVED, S.UNKNOWN}),
    S.FAILED: frozenset(Status) - {S.FAILED, S.STOPPING},
    S.RESTARTING: frozenset(Status) - {S.RESTARTING},
    S.REMOVED: frozenset({S.PENDING, S.STARTING, S.RUNNING, S.RESTARTING, S.UNKNOWN}),
    S.UNKNOWN: frozenset(Status) - {S.UNKNOWN},
}


def can_transition(old: Status, new: Status) -> bool:
    """True when a report may move an instance from ``old`` to ``new``."""
    return new in TRANSITIONS[old]


def is_alive(status: Status) -> bool:
    """True for statuses in which the instance's workload is (believed to be) running."""
    return status in _ALIVE


def guess_platform(source: str) -> Platform | None:
    """The platform of an unknown instance, from the upstream design's source names (``DockerDaemon``...)."""
    lowered = source.lower()
    if "docker" in lowered:
        return Platform.DOCKER
    if "aks" in lowered or "k8s" in lowered or "kube" in lowered:
        return Platform.KUBERNETES
    return None
