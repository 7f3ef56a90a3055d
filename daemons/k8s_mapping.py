"""Pure mappers from a Kubernetes pod to the status update the control plane gets.

The input is a v1 Pod as the API server sends it: a JSON dict (camelCase), not a ``V1Pod``. The daemon reads lists
and watch events as raw JSON, because deserialising a ``V1Pod`` model costs far more than mapping the dict (a
resync of 500 pods would spend most of its time building models nobody reads). Nothing here talks to the API
server, the network or the clock.

Rules, first match wins:

===================================================== =========== ===========================================
pod                                                   status      reason (metadata)
===================================================== =========== ===========================================
seen in a ``DELETED`` event                           Removed     pod deleted
``metadata.deletionTimestamp`` set                    Stopping    pod/container reason, else being deleted
a container waiting in ``CrashLoopBackOff``           Restarting  ``CrashLoopBackOff: <message>``
phase ``Failed``                                      Failed      pod reason, else a container's
phase ``Succeeded``                                   Stopped     pod reason, else a container's
phase ``Running``, every container ready              Running     pod reason, else a container's
phase ``Running``, some container not ready           Unhealthy   pod reason, else a container's
phase ``Pending`` (or none yet), not scheduled        Pending     pod reason, else a container's
phase ``Pending``, scheduled (node set, PodScheduled) Starting    pod reason, else a container's
phase ``Unknown``, or a phase this code does not know Unknown     pod reason, else a container's
===================================================== =========== ===========================================

Metadata: ``podName``, ``namespace``, ``nodeName``, ``phase``, ``podIP`` (``""`` when not set), ``restartCount``
(summed over the containers), ``reason`` (the pod's ``status.reason``, else the first container's waiting reason,
else its terminated reason; left out when there is none), and for Failed and Stopped pods ``exitCode``: the first
non-zero exit code of a terminated container (init containers first), else 0. A Failed pod none of whose
containers terminated (evicted before it started, say) has no ``exitCode``: there is no exit to report.

The instance id is the ``draas.instanceId`` label; a pod without one (or with one the API would refuse as an
instance id) is a ``Skip``. A pod whose fields have the wrong types raises ``MalformedPod`` naming the field.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from draas_actors.model import Platform, Status
from draas_actors.wire import is_instance_id

from .updates import StatusUpdate

__all__ = [
    "INSTANCE_LABEL",
    "PLATFORM",
    "SOURCE",
    "MalformedPod",
    "PodReport",
    "Skip",
    "map_pod",
    "pod_key",
    "pod_name",
    "removed_update",
    "source_for",
]

SOURCE = "k8s-daemon"
_SOURCE_MAX = 128  # the API's limit on ``source``
PLATFORM = Platform.KUBERNETES
INSTANCE_LABEL = "draas.instanceId"
CRASH_LOOP = "CrashLoopBackOff"


class Skip(str, enum.Enum):
    """Why a pod produced no update."""

    NO_INSTANCE_ID = f"no {INSTANCE_LABEL} label"
    INVALID_INSTANCE_ID = f"a {INSTANCE_LABEL} label that is not a valid instance id"


class MalformedPod(ValueError):
    """A pod field has a type the API server never sends; ``field`` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, kw_only=True)
class PodReport:
    """One pod's update, and what the daemon needs to choose between pods that report the same instance."""

    update: StatusUpdate  # workload_id is the pod's key (see ``pod_key``)
    created_at: str  # metadata.creationTimestamp: RFC 3339 in UTC, so that text order is time order
    terminating: bool  # deleted (DELETED) or being deleted (deletionTimestamp)

    @property
    def key(self) -> str:
        return self.update.workload_id


def pod_key(pod: Mapping[str, Any]) -> str:
    """The pod's uid; ``namespace/name`` for a pod without one. Raises ``MalformedPod``."""
    metadata = _object(pod, "metadata", "metadata", required=True)
    uid = _text(metadata, "uid", "metadata.uid")
    return uid or f"{_text(metadata, 'namespace', 'metadata.namespace')}/{_name(metadata)}"


def pod_name(pod: Mapping[str, Any]) -> str:
    """``namespace/name`` for log lines; never raises."""
    metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
    if not isinstance(metadata, Mapping):
        return "<pod without metadata>"
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def source_for(node_name: str | None) -> str:
    """The ``source`` of a daemon's reports: ``k8s-daemon``, or ``k8s-daemon@<node>`` for a DaemonSet's daemon.

    The control plane orders the reports of one source by their ``observedAt``, which each daemon takes from its
    own node's clock; one source per node means that two nodes' clocks are never compared (a pod replaced on
    another node is told apart by its pod, not by time). A node name too long for ``source`` is cut and given a
    digest of the whole, so that two nodes never share one.
    """
    if not node_name:
        return SOURCE
    source = f"{SOURCE}@{node_name}"
    if len(source) <= _SOURCE_MAX:
        return source
    digest = hashlib.sha256(node_name.encode()).hexdigest()[:12]
    return f"{source[:_SOURCE_MAX - len(digest) - 1]}~{digest}"


def map_pod(
    pod: Mapping[str, Any], *, observed_at: float, deleted: bool = False, source: str = SOURCE
) -> PodReport | Skip:
    """One pod (from a listing, or the object of a watch event: ``deleted`` for DELETED) -> its report or a Skip.

    Raises ``MalformedPod`` naming the first field with a wrong type.
    """
    if not isinstance(pod, Mapping):
        raise MalformedPod("pod", f"expected an object, got {type(pod).__name__}")
    metadata = _object(pod, "metadata", "metadata", required=True)
    name = _name(metadata)
    labels = _object(metadata, "labels", "metadata.labels")
    instance_id = labels.get(INSTANCE_LABEL)
    if instance_id is None or instance_id == "":
        return Skip.NO_INSTANCE_ID
    if not is_instance_id(instance_id):
        return Skip.INVALID_INSTANCE_ID
    spec = _object(pod, "spec", "spec")
    status = _object(pod, "status", "status")
    containers = _containers(status, "containerStatuses")
    every = _containers(status, "initContainerStatuses") + containers
    phase = _text(status, "phase", "status.phase") or "Pending"  # the API server sets it at creation
    node_name = _text(spec, "nodeName", "spec.nodeName")
    terminating = deleted or metadata.get("deletionTimestamp") is not None
    new_status, reason = _status(
        deleted=deleted,
        terminating=terminating,
        crash_loop=_crash_loop(every),
        phase=phase,
        ready=bool(containers) and all(_ready(c, path) for c, path in containers),
        scheduled=bool(node_name) or _scheduled(status),
        reason=_text(status, "reason", "status.reason") or _container_reason(every),
    )
    fields: dict[str, str | int] = {
        "podName": name,
        "namespace": _text(metadata, "namespace", "metadata.namespace"),
        "nodeName": node_name,
        "phase": phase,
        "podIP": _text(status, "podIP", "status.podIP"),
        "restartCount": sum(_restart_count(c, path) for c, path in containers),
    }
    if reason:
        fields["reason"] = reason
    if new_status in (Status.FAILED, Status.STOPPED):
        exit_code = _exit_code(every, phase)
        if exit_code is not None:
            fields["exitCode"] = exit_code
    update = StatusUpdate(
        instance_id=instance_id,
        workload_id=pod_key(pod),
        status=new_status,
        observed_at=observed_at,
        source=source,
        platform=PLATFORM,
        metadata=fields,
    )
    created = _text(metadata, "creationTimestamp", "metadata.creationTimestamp")
    return PodReport(update=update, created_at=created, terminating=terminating)


def removed_update(last: StatusUpdate, *, observed_at: float, reason: str) -> StatusUpdate:
    """Removed, for a pod the daemon reported that is gone without a DELETED event (found missing at a listing)."""
    metadata = {key: value for key, value in last.metadata.items() if key != "exitCode"}
    metadata["reason"] = reason
    return dataclasses.replace(last, status=Status.REMOVED, observed_at=observed_at, metadata=metadata)


# -- the rules ---------------------------------------------------------------------------------------

_Container = tuple[Mapping[str, Any], str]  # a container status and its path, for error messages

_PHASES: dict[str, Status] = {
    "Failed": Status.FAILED,
    "Succeeded": Status.STOPPED,
    "Unknown": Status.UNKNOWN,
}


def _status(
    *, deleted: bool, terminating: bool, crash_loop: str | None, phase: str, ready: bool, scheduled: bool, reason: str
) -> tuple[Status, str]:
    """The table in the module's docstring, in its order."""
    if deleted:
        return Status.REMOVED, "pod deleted"
    if terminating:
        return Status.STOPPING, reason or "pod is being deleted"
    if crash_loop is not None:
        return Status.RESTARTING, crash_loop
    if phase in _PHASES:
        return _PHASES[phase], reason
    if phase == "Running":
        return (Status.RUNNING if ready else Status.UNHEALTHY), reason
    if phase == "Pending":
        return (Status.STARTING if scheduled else Status.PENDING), reason
    return Status.UNKNOWN, reason or f"unknown phase {phase!r}"


def _crash_loop(containers: Sequence[_Container]) -> str | None:
    for container, path in containers:
        waiting = _object(_object(container, "state", f"{path}.state"), "waiting", f"{path}.state.waiting")
        if _text(waiting, "reason", f"{path}.state.waiting.reason") == CRASH_LOOP:
            message = _text(waiting, "message", f"{path}.state.waiting.message")
            return f"{CRASH_LOOP}: {message}" if message else CRASH_LOOP
    return None


def _container_reason(containers: Sequence[_Container]) -> str:
    """The first waiting reason, else the first terminated reason (a non-zero exit's first)."""
    terminated: list[tuple[int, str]] = []
    for container, path in containers:
        state = _object(container, "state", f"{path}.state")
        waiting = _text(_object(state, "waiting", f"{path}.state.waiting"), "reason", f"{path}.state.waiting.reason")
        if waiting:
            return waiting
        ended = _object(state, "terminated", f"{path}.state.terminated")
        if ended:
            code = _integer(ended, "exitCode", f"{path}.state.terminated.exitCode")
            why = _text(ended, "reason", f"{path}.state.terminated.reason")
            if why:
                terminated.append((0 if code else 1, why))
    return min(terminated, key=lambda item: item[0])[1] if terminated else ""


def _exit_code(containers: Sequence[_Container], phase: str) -> int | None:
    codes = []
    for container, path in containers:
        ended = _object(_object(container, "state", f"{path}.state"), "terminated", f"{path}.state.terminated")
        if ended:
            codes.append(_integer(ended, "exitCode", f"{path}.state.terminated.exitCode"))
    failed = next((code for code in codes if code != 0), None)
    if failed is not None:
        return failed
    return 0 if codes or phase == "Succeeded" else None


def _scheduled(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions")
    if conditions is None:
        return False
    if not isinstance(conditions, list):
        raise MalformedPod("status.conditions", f"expected a list, got {type(conditions).__name__}")
    for index, condition in enumerate(conditions):
        if not isinstance(condition, Mapping):
            raise MalformedPod(f"status.conditions[{index}]", "expected an object")
        if condition.get("type") == "PodScheduled":
            return condition.get("status") == "True"
    return False


def _ready(container: Mapping[str, Any], path: str) -> bool:
    ready = container.get("ready", False)
    if not isinstance(ready, bool):
        raise MalformedPod(f"{path}.ready", f"expected a boolean, got {ready!r}")
    return ready


def _restart_count(container: Mapping[str, Any], path: str) -> int:
    return _integer(container, "restartCount", f"{path}.restartCount")


# -- typed reads --------------------------------------------------------------------------------------


def _containers(status: Mapping[str, Any], key: str) -> list[_Container]:
    items = status.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise MalformedPod(f"status.{key}", f"expected a list, got {type(items).__name__}")
    out: list[_Container] = []
    for index, item in enumerate(items):
        path = f"status.{key}[{index}]"
        if not isinstance(item, Mapping):
            raise MalformedPod(path, f"expected an object, got {type(item).__name__}")
        out.append((item, path))
    return out


def _object(parent: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise MalformedPod(path, "missing")
        return {}
    if not isinstance(value, Mapping):
        raise MalformedPod(path, f"expected an object, got {type(value).__name__}")
    return value


def _text(parent: Mapping[str, Any], key: str, path: str) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedPod(path, f"expected a string, got {value!r}")
    return value


def _integer(parent: Mapping[str, Any], key: str, path: str) -> int:
    value = parent.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPod(path, f"expected an integer, got {value!r}")
    return value


def _name(metadata: Mapping[str, Any]) -> str:
    name = _text(metadata, "name", "metadata.name")
    if not name:
        raise MalformedPod("metadata.name", "missing")
    return name
