"""Kubernetes pods: restart an instance by deleting its pod, through the official client, off the actors' threads.

Pod state is not read here: the Kubernetes daemon reports it (list and watch), and instance actors apply those
reports. This module only acts. A restart is a delete: the pod's controller (a Deployment's ReplicaSet, a
StatefulSet...) creates a replacement, which the daemon then reports. A bare pod has no controller and is not
recreated: its instance ends ``Removed`` (see ``InstanceActor``).

Which pod a report is about, and whether it changes the instance, is decided by ``judge_pod_report`` below, a
pure function the instance actor calls.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import urllib3.exceptions

if TYPE_CHECKING:
    # Imported where used: the client takes a fifth of a second to import, and a control plane that refuses to
    # start (a damaged store, a bad config) must say so at once; one without Kubernetes never needs it.
    import kubernetes.client
    from kubernetes.client.exceptions import ApiException

from ..model import Status
from .actions import ActionFailed, ActionPool, OnError

DEFAULT_NAMESPACE = "default"  # what Kubernetes itself assumes when a namespace is not given


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """Where the API is: in-cluster (service account), else a kubeconfig (``None``: the client's default)."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    request_timeout: float = 10.0
    # After the pod deleted for a restart is gone, how long to wait for its replacement before saying "Removed".
    replacement_grace: float = 5.0


def connect(settings: KubernetesSettings) -> kubernetes.client.ApiClient:
    """An API client for ``settings``; raises ``ConfigException`` when the configuration cannot be loaded."""
    import kubernetes.client
    import kubernetes.config

    if settings.in_cluster:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)
    # persist_config=False: never write refreshed credentials back into the operator's kubeconfig.
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
        config_file=settings.kubeconfig, context=settings.context, persist_config=False
    )
    return client


class KubernetesPlatform:
    def __init__(
        self,
        settings: KubernetesSettings = KubernetesSettings(),
        *,
        workers: int = 2,
    ) -> None:
        self.settings = settings
        self._actions: ActionPool[kubernetes.client.ApiClient] = ActionPool(
            "kubernetes",
            connect=lambda: _connect_or_explain(settings),
            disconnect=lambda client: client.close(),
            failures=(urllib3.exceptions.HTTPError, OSError),
            workers=workers,
        )

    @property
    def replacement_grace(self) -> float:
        return self.settings.replacement_grace

    def delete_pod(self, namespace: str, name: str, on_error: OnError) -> None:
        """Delete the pod (its default grace period); a pod that is already gone counts as deleted."""
        timeout = self.settings.request_timeout

        def delete(client: kubernetes.client.ApiClient) -> None:
            import kubernetes.client
            from kubernetes.client.exceptions import ApiException

            try:
                kubernetes.client.CoreV1Api(client).delete_namespaced_pod(
                    name, namespace, _request_timeout=timeout
                )
            except ApiException as error:
                if error.status == 404:
                    return  # already gone: what a restart wanted
                raise ActionFailed(describe_api_error(error), retryable=is_retryable(error.status)) from error

        self._actions.submit("delete", on_error, delete)

    def close(self) -> None:
        self._actions.close()


def _connect_or_explain(settings: KubernetesSettings) -> kubernetes.client.ApiClient:
    from kubernetes.config.config_exception import ConfigException

    try:
        return connect(settings)
    except ConfigException as error:
        where = "in-cluster configuration" if settings.in_cluster else f"kubeconfig {settings.kubeconfig or ''}"
        raise ActionFailed(f"cannot load the {where.strip()}: {error}", retryable=False) from error


def describe_api_error(error: ApiException) -> str:
    """``HTTP 403 Forbidden: <the Status message>``: what the API said, without headers and body dumps."""
    message = ""
    try:
        body = json.loads(error.body or "")
        if isinstance(body, dict):
            message = str(body.get("message") or "")
    except ValueError:
        message = (error.body or "").strip()[:200]
    head = f"HTTP {error.status} {error.reason or ''}".strip()
    return f"{head}: {message}" if message else head


def is_retryable(status: int | None) -> bool:
    """Server trouble, throttling and timeouts may pass; any other 4xx is a refusal that repeating won't change."""
    return status is None or status >= 500 or status in (408, 429)


def pod_key(metadata: Mapping[str, str]) -> str | None:
    """``"<namespace>/<podName>"`` from a report's metadata; None when it names no pod."""
    if not metadata.get("podName"):
        return None
    return f"{metadata.get('namespace') or DEFAULT_NAMESPACE}/{metadata['podName']}"


# -- which pod a report is about -----------------------------------------------------------------------

# Statuses in which a pod takes over its instance: it exists and is (about to be) serving.
TAKES_OVER = frozenset({Status.PENDING, Status.STARTING, Status.RUNNING, Status.UNHEALTHY})


class PodVerdict(enum.Enum):
    APPLY = "apply"  # about the current pod, or a new pod that takes over
    RECREATED = "recreated"  # a pod we deleted is back under the same name (a StatefulSet): it takes over
    IGNORE = "ignore"  # about a pod that is not the instance's any more: count it, change nothing
    GONE = "gone"  # the pod we deleted for a restart is gone and nothing has replaced it yet


def judge_pod_report(pod: str | None, status: Status, *, current: str | None, deleted: Collection[str]) -> PodVerdict:
    """Decide what a report about ``pod`` does to an instance whose current pod is ``current``.

    A Deployment replaces pods, so one instance hears about several pods over time:

    - a report about a pod other than the current one takes over only when it says the pod is there
      (``TAKES_OVER``); any other (Stopping, Stopped, Failed, Removed, Restarting, Unknown) is about a pod that
      was replaced and changes nothing;
    - a pod the instance itself deleted is never an exit of the instance: only its removal matters, as ``GONE``
      while no other pod has taken over; an alive report under its name is a new pod with the same name.
    """
    if pod is None or current is None:
        return PodVerdict.APPLY
    if pod in deleted:
        if status in TAKES_OVER:
            return PodVerdict.RECREATED
        return PodVerdict.GONE if pod == current and status is Status.REMOVED else PodVerdict.IGNORE
    if pod == current or status in TAKES_OVER:
        return PodVerdict.APPLY
    return PodVerdict.IGNORE


__all__ = [
    "KubernetesPlatform",
    "KubernetesSettings",
    "PodVerdict",
    "connect",
    "describe_api_error",
    "is_retryable",
    "judge_pod_report",
    "pod_key",
]
