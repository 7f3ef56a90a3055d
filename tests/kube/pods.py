"""Realistic v1 Pod JSON for the fake API server: one builder, and the same knobs to change an existing pod.

``make_pod`` returns a Pod as the API server serves it (camelCase JSON) minus what the server assigns (``uid``,
``creationTimestamp``, ``resourceVersion``). ``apply_state(pod, **changes)`` rewrites a pod's ``spec.nodeName`` and
``status`` from the same keyword meanings, so ``patch_pod_status(ns, name, phase="Failed")`` means exactly what
``make_pod(name, phase="Failed")`` means.

The status is derived, not copied, so it is always self-consistent: the single container "app" is running only in
phase ``Running`` (or ``Unknown``) with no ``waiting_reason`` / ``terminated_exit_code``; it is *ready* only when
running and ``ready`` is true; the pod's Ready and ContainersReady conditions follow the container.
"""

from __future__ import annotations

import enum
import re
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Final

PHASES: Final = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
INSTANCE_ID_LABEL: Final = "draas.instanceId"
DEFAULT_LABELS: Final = {"app": "drasi", "managed-by": "draas"}
CONTAINER_NAME: Final = "app"
IMAGE: Final = "ghcr.io/drasi-project/app:0.1.0"
IMAGE_ID: Final = "ghcr.io/drasi-project/app@sha256:" + "0" * 64

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class _Default(enum.Enum):
    NAME = "the pod's name"


@dataclass(frozen=True)
class PodState:
    """The knobs of a pod's observable state, as ``make_pod`` and ``apply_state`` take them."""

    phase: str = "Running"
    ready: bool = True
    node_name: str | None = "node-1"
    pod_ip: str | None = "10.0.0.1"
    restart_count: int = 0
    waiting_reason: str | None = None
    terminated_exit_code: int | None = None
    reason: str | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if self.phase not in PHASES:
            raise ValueError(f"phase: {self.phase!r} is not one of {', '.join(PHASES)}")
        if not isinstance(self.ready, bool):
            raise ValueError(f"ready: expected a bool, got {self.ready!r}")
        if self.node_name is not None and not (
            isinstance(self.node_name, str) and _DNS_SUBDOMAIN.match(self.node_name)
        ):
            raise ValueError(f"node_name: {self.node_name!r} is not a DNS subdomain")
        if self.pod_ip is not None and not isinstance(self.pod_ip, str):
            raise ValueError(f"pod_ip: expected a string, got {self.pod_ip!r}")
        if isinstance(self.restart_count, bool) or not isinstance(self.restart_count, int) or self.restart_count < 0:
            raise ValueError(f"restart_count: expected an int >= 0, got {self.restart_count!r}")
        if self.waiting_reason is not None and not isinstance(self.waiting_reason, str):
            raise ValueError(f"waiting_reason: expected a string, got {self.waiting_reason!r}")
        code = self.terminated_exit_code
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise ValueError(f"terminated_exit_code: expected an int, got {code!r}")
        if self.waiting_reason is not None and code is not None:
            raise ValueError("waiting_reason, terminated_exit_code: a container is either waiting or terminated")
        if self.reason is not None and not isinstance(self.reason, str):
            raise ValueError(f"reason: expected a string, got {self.reason!r}")


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    instance_id: str | _Default | None = _Default.NAME,
    phase: str = "Running",
    ready: bool = True,
    node_name: str | None = "node-1",
    pod_ip: str | None = "10.0.0.1",
    restart_count: int = 0,
    waiting_reason: str | None = None,
    terminated_exit_code: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A v1 Pod as JSON with one container "app"; ``instance_id`` (default: ``name``) sets ``draas.instanceId``.

    ``labels`` defaults to ``{"app": "drasi", "managed-by": "draas"}``; the instance-id label is added to it unless
    ``instance_id`` is None. Raises ``ValueError`` naming the bad argument.
    """
    if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ValueError(f"name: {name!r} is not a DNS subdomain (lowercase letters, digits, '-', '.')")
    if not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise ValueError(f"namespace: {namespace!r} is not a DNS label")
    pod_labels = dict(DEFAULT_LABELS if labels is None else labels)
    if instance_id is _Default.NAME:
        instance_id = name
    if instance_id is not None:
        pod_labels[INSTANCE_ID_LABEL] = instance_id
    for key, value in pod_labels.items():
        _check_label(key, value, "instance_id" if key == INSTANCE_ID_LABEL and value == instance_id else "labels")
    state = PodState(phase, ready, node_name, pod_ip, restart_count, waiting_reason, terminated_exit_code, reason)
    pod: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": {
            "containers": [
                {
                    "name": CONTAINER_NAME,
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
            "priority": 0,
        },
        "status": {},
    }
    apply_state(pod, **asdict(state))
    return pod


def state_of(pod: dict[str, Any]) -> PodState:
    """Read the knobs back from a pod's spec and status; what the status derives by default reads back as default.

    A container that is not running reads back as ``ready=True`` (readiness only shows while running), the
    ``ContainerCreating`` wait of a pending pod as ``waiting_reason=None``, and the exit code a Succeeded (0) or
    Failed (1) pod gets by default as ``terminated_exit_code=None``.
    """
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    container: dict[str, Any] = next(iter(status.get("containerStatuses") or []), {})
    container_state = container.get("state") or {}
    waiting = container_state.get("waiting") or {}
    terminated = container_state.get("terminated") or {}
    ready_condition = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    exit_code = terminated.get("exitCode")
    if (phase, exit_code) in (("Succeeded", 0), ("Failed", 1)):
        exit_code = None
    waiting_reason = waiting.get("reason")
    return PodState(
        phase=phase,
        ready=ready_condition is None or "running" not in container_state or ready_condition.get("status") == "True",
        node_name=(pod.get("spec") or {}).get("nodeName"),
        pod_ip=status.get("podIP"),
        restart_count=container.get("restartCount", 0),
        waiting_reason=None if waiting_reason == "ContainerCreating" and phase == "Pending" else waiting_reason,
        terminated_exit_code=exit_code,
        reason=status.get("reason"),
    )


def apply_state(pod: dict[str, Any], **changes: Any) -> None:
    """Change ``pod`` in place: merge ``changes`` (``make_pod``'s state keywords) into its state, rebuild status.

    Knobs not given keep their current value (pass ``waiting_reason=None`` to end a wait, for instance).
    Raises ``ValueError`` naming an unknown keyword or a bad value; the pod is untouched then.
    """
    known = {f.name for f in fields(PodState)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a pod state field (known: {', '.join(sorted(known))})")
    state = replace(state_of(pod), **changes)
    state.validate()
    spec = pod.setdefault("spec", {})
    if state.node_name is None:
        spec.pop("nodeName", None)
    else:
        spec["nodeName"] = state.node_name
    pod["status"] = _status(state, _started_at(pod))


def _check_label(key: str, value: str, field: str) -> None:
    if not isinstance(key, str):
        raise ValueError(f"{field}: label key {key!r} is not a string")
    prefix, _, label_name = key.rpartition("/")
    if len(label_name) > 63 or not _LABEL_NAME.match(label_name):
        raise ValueError(f"{field}: label key {key!r} is not a valid label name")
    if prefix and not _DNS_SUBDOMAIN.match(prefix):
        raise ValueError(f"{field}: label key prefix {prefix!r} is not a DNS subdomain")
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f"{field}: label value {value!r} (for {key!r}) is not a valid label value")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _started_at(pod: dict[str, Any]) -> str:
    start: str | None = (pod.get("status") or {}).get("startTime")
    return start or _now()


def _status(state: PodState, started_at: str) -> dict[str, Any]:
    scheduled = state.node_name is not None
    container_state = _container_state(state, started_at) if scheduled else None
    running = container_state is not None and "running" in container_state
    container_ready = running and state.ready
    ready = "True" if container_ready else "False"
    conditions: list[dict[str, Any]] = [
        _condition("PodScheduled", "True" if scheduled else "False", started_at, None if scheduled else "Unschedulable")
    ]
    if scheduled:
        reason = None if container_ready else ("PodCompleted" if state.phase == "Succeeded" else "ContainersNotReady")
        conditions = [
            _condition("Initialized", "True", started_at, "PodCompleted" if state.phase == "Succeeded" else None),
            _condition("Ready", ready, started_at, reason),
            _condition("ContainersReady", ready, started_at, reason),
            *conditions,
        ]
    status: dict[str, Any] = {"phase": state.phase, "conditions": conditions, "qosClass": "BestEffort"}
    if scheduled:
        status["hostIP"] = "192.168.0.10"
        status["startTime"] = started_at
    if state.pod_ip is not None:
        status["podIP"] = state.pod_ip
        status["podIPs"] = [{"ip": state.pod_ip}]
    if state.reason is not None:
        status["reason"] = state.reason
        status["message"] = f"Pod {state.reason}"
    if container_state is not None:
        status["containerStatuses"] = [
            {
                "name": CONTAINER_NAME,
                "image": IMAGE,
                "imageID": IMAGE_ID if state.phase != "Pending" else "",
                "ready": container_ready,
                "started": running,
                "restartCount": state.restart_count,
                "state": container_state,
                **({"containerID": "containerd://" + "c" * 64} if state.phase != "Pending" else {}),
            }
        ]
    return status


def _container_state(state: PodState, started_at: str) -> dict[str, Any]:
    if state.waiting_reason is not None:
        return {
            "waiting": {
                "reason": state.waiting_reason,
                "message": f"container {CONTAINER_NAME}: {state.waiting_reason}",
            }
        }
    exit_code = state.terminated_exit_code
    if exit_code is None and state.phase in ("Succeeded", "Failed"):
        exit_code = 0 if state.phase == "Succeeded" else 1
    if exit_code is not None:
        return {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": started_at,
                "finishedAt": _now(),
            }
        }
    if state.phase == "Pending":
        return {"waiting": {"reason": "ContainerCreating"}}
    return {"running": {"startedAt": started_at}}


def _condition(kind: str, status: str, at: str, reason: str | None) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": at}
    if reason is not None:
        condition["reason"] = reason
    return condition
