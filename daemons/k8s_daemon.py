"""The Kubernetes daemon: reports labelled pods' statuses to the control plane, as robustly as an informer.

``python -m daemons.k8s_daemon`` (or the console script ``draas-k8s-daemon``), configured through the environment
(see ``load_settings`` and ``config/k8s-daemon.env.example``). The loop:

1. **list** the selected pods (pages of ``list_page_size``) and push, in one batch, every instance whose state
   differs from what was last pushed for it, and ``Removed`` for instances whose pods vanished meanwhile. What was
   last pushed is kept on disk beside the spool (``daemons.reported``): the first listing of a fresh spool pushes
   every instance; a restarted daemon pushes what changed while it was not running, Removed included, and not an
   unchanged Failed pod (the control plane would take its exit code for a new exit of the workload);
2. **watch** from the list's ``resourceVersion`` with bookmarks, a server-side ``timeoutSeconds`` and a client read
   timeout (without one a half-open connection blocks forever), keeping the latest resourceVersion of every event,
   bookmarks included;
3. a clean end of the stream (the server's timeout) -> watch again from that resourceVersion at once; a dropped
   connection (``ProtocolError``, read timeout, refused) or another error -> the same after a backoff, which a
   stream that delivers anything resets; a ``410 Gone`` (an ``ERROR`` event, or an ``ApiException`` 410) -> go to 1.

Every answer's ``storeId`` and a periodic resync refill a control plane that lost its state (``daemons.outbox``).

Lists and watch events are read as raw JSON (``_preload_content=False``) and mapped as dicts: the client's models
would cost more than everything else together, and the ``Watch`` helper cannot be stopped reliably from another
thread before its request is made. Events are stamped with this daemon's clock when it reads them.

Several pods can carry one instance id (a Deployment's pod template sets the label, so a rollout or a restart has
an old and a new pod for a while). An instance's status is then its representative pod's: the newest pod not being
deleted, else the newest. So a replaced pod's Stopping and DELETED are not reported while its replacement exists,
and ``Removed`` is pushed only when an instance's last pod is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from opentelemetry import trace

from draas_actors.errors import ConfigError

from . import daemon_env
from .daemon_env import Variable
from .k8s_mapping import (
    MalformedPod,
    PodReport,
    Skip,
    map_pod,
    pod_key,
    pod_name,
    removed_update,
    source_for,
)
from .outbox import Outbox
from .push_client import PushClient, retry_delays
from .reported import take_news
from .runner import run_daemon, usage
from .tracing import default_tracer, event_span
from .updates import StatusUpdate

__all__ = ["DaemonSettings", "DaemonStats", "KubernetesDaemon", "kube_configuration", "load_settings", "main"]

log = logging.getLogger("draas.k8s_daemon")

DEFAULT_LABEL_SELECTOR = "app=drasi,managed-by=draas"
DEFAULT_SPOOL_PATH = Path("var/k8s-daemon.spool")
DEFAULT_WATCH_TIMEOUT = 300
REQUEST_TIMEOUT_MARGIN = 30.0
ALL_NAMESPACES = ("", "*", "all")
VANISHED = "pod no longer exists (found at relist)"
GONE = 410
_MAX_PAGES = 100_000  # a bound for the paging loop; 50 million pods

# What a broken connection to the API server looks like through the client (it does not wrap urllib3's errors).
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True, kw_only=True)
class DaemonSettings(daemon_env.CommonSettings):
    namespace: str | None = None  # None: every namespace
    label_selector: str = DEFAULT_LABEL_SELECTOR
    node_name: str | None = None  # the DaemonSet variant: only the pods of this node
    spool_path: Path = DEFAULT_SPOOL_PATH
    watch_timeout: int = DEFAULT_WATCH_TIMEOUT  # the watch's server-side timeoutSeconds
    request_timeout: float = DEFAULT_WATCH_TIMEOUT + REQUEST_TIMEOUT_MARGIN  # client read timeout, > watch_timeout
    connect_timeout: float = 10.0
    list_page_size: int = 500

    @property
    def field_selector(self) -> str | None:
        return f"spec.nodeName={self.node_name}" if self.node_name else None


def load_settings(environ: Mapping[str, str]) -> DaemonSettings:
    """The only place the daemon reads its environment (bar ``kube_configuration``); raises ConfigError."""
    watch_timeout = int(
        daemon_env.number(environ, "DRAAS_WATCH_TIMEOUT_SECONDS", DEFAULT_WATCH_TIMEOUT, 1, integer=True)
    )
    request_timeout = daemon_env.number(
        environ, "DRAAS_REQUEST_TIMEOUT_SECONDS", watch_timeout + REQUEST_TIMEOUT_MARGIN, 0.0
    )
    if request_timeout <= watch_timeout:
        raise ConfigError(
            f"DRAAS_REQUEST_TIMEOUT_SECONDS: must be larger than the watch timeout ({watch_timeout} s, "
            f"DRAAS_WATCH_TIMEOUT_SECONDS), got {environ.get('DRAAS_REQUEST_TIMEOUT_SECONDS', '').strip()!r}",
            field="DRAAS_REQUEST_TIMEOUT_SECONDS",
        )
    settings = DaemonSettings(
        control_plane_url=daemon_env.control_plane_url(environ),
        api_key=daemon_env.api_key(environ),
        namespace=_namespace(environ.get("WATCH_NAMESPACE", "")),
        label_selector=_label_selector(environ.get("DRAAS_LABEL_SELECTOR", "")),
        node_name=_node_name(environ.get("DRAAS_NODE_NAME", "")),
        watch_timeout=watch_timeout,
        request_timeout=request_timeout,
    )
    return daemon_env.read_common(environ, settings)


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Label selector syntax (k8s.io/apimachinery/pkg/labels): key, !key, key=v, key==v, key!=v, key in (v,...),
# key notin (v,...), comma-separated; a key may have a DNS-subdomain prefix.
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_TERM = (
    rf"\s*(?:!\s*{_KEY}|{_KEY}\s*(?:(?:==|=|!=)\s*{_VALUE}"
    rf"|\s(?:in|notin)\s*\(\s*{_VALUE}(?:\s*,\s*{_VALUE})*\s*\))?)\s*"
)
_SELECTOR = re.compile(rf"{_TERM}(?:,{_TERM})*")


def _namespace(text: str) -> str | None:
    value = text.strip()
    if value.lower() in ALL_NAMESPACES:
        return None
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise ConfigError(
            f"WATCH_NAMESPACE: {text!r} is not a namespace name (lowercase letters, digits and '-', at most 63); "
            "leave it empty, or use * or all, for every namespace",
            field="WATCH_NAMESPACE",
        )
    return value


def _label_selector(text: str) -> str:
    value = text.strip()
    if not value:
        return DEFAULT_LABEL_SELECTOR
    if not _SELECTOR.fullmatch(value):
        raise ConfigError(
            f"DRAAS_LABEL_SELECTOR: {text!r} is not a label selector; expected comma-separated key=value, "
            "key!=value, key, !key, key in (a,b) or key notin (a,b)",
            field="DRAAS_LABEL_SELECTOR",
        )
    return value


def _node_name(text: str) -> str | None:
    value = text.strip()
    if not value:
        return None
    if len(value) > 253 or not _DNS_SUBDOMAIN.fullmatch(value):
        raise ConfigError(f"DRAAS_NODE_NAME: {text!r} is not a node name (a DNS subdomain)", field="DRAAS_NODE_NAME")
    return value


def kube_configuration(environ: Mapping[str, str]) -> k8s.Configuration:
    """In-cluster configuration when ``KUBERNETES_SERVICE_HOST`` is set, else ``KUBECONFIG`` (or ~/.kube/config).

    Raises ConfigError naming the variable the configuration came from.
    """
    configuration = k8s.Configuration()
    in_cluster = bool(environ.get("KUBERNETES_SERVICE_HOST", "").strip())
    name = "KUBERNETES_SERVICE_HOST" if in_cluster else "KUBECONFIG"
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            files = environ.get("KUBECONFIG", "").strip() or "~/.kube/config"
            k8s_config.load_kube_config(config_file=files, client_configuration=configuration)
    except Exception as error:  # ConfigException, OSError, YAML and type errors from a broken file: all mean the same
        where = "the in-cluster service account" if in_cluster else environ.get("KUBECONFIG") or "~/.kube/config"
        raise ConfigError(f"{name}: cannot load the Kubernetes configuration from {where}: {error}",
                          field=name) from error
    return configuration


@dataclass
class DaemonStats:
    """Counters since the daemon was made (read them from any thread; only the daemon's loop writes)."""

    lists: int = 0  # listings completed: the first, and one after every 410 Gone
    listed: int = 0  # pods in those listings
    watches: int = 0  # watch streams opened
    events: int = 0  # ADDED, MODIFIED and DELETED events
    bookmarks: int = 0
    pushed: int = 0
    expired: int = 0  # 410 Gone: the watch's resourceVersion was too old, so the daemon listed again
    stream_ends: int = 0  # watch streams the server ended cleanly (its timeout), resumed at once
    drops: int = 0  # lists and watches broken by a transport error, an error event or a bad line; resumed later
    api_errors: int = 0  # other error answers from the API server (401, 403, 5xx...)
    reconnects: int = 0  # backoff waits before trying again
    skipped_no_instance_id: int = 0  # pod observations (listed or in an event) without a usable instance id
    malformed: int = 0  # pod observations with a field of the wrong type
    vanished: int = 0  # known pods missing from a relisting
    superseded: int = 0  # pods deleted while another pod still carries their instance: no Removed


class _Expired(Exception):
    """410 Gone: the resourceVersion is older than the server's history."""


class _BrokenStream(Exception):
    """The server sent something no healthy stream carries (an error event, a line that is not JSON)."""


class KubernetesDaemon:
    """List, push, watch; resume or relist after any break. ``run`` blocks; ``stop`` from any thread or a signal."""

    def __init__(
        self,
        settings: DaemonSettings,
        configuration: k8s.Configuration | None = None,
        *,
        push: PushClient | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """``configuration`` defaults to ``kube_configuration(os.environ)`` (raises ConfigError)."""
        if configuration is None:
            configuration = kube_configuration(os.environ)
        self.settings = settings
        self._tracer = tracer or default_tracer()  # a span per watch event
        self._source = source_for(settings.node_name)
        self._outbox = Outbox(settings, log, push)
        self.push = self._outbox.push
        self.watching = threading.Event()  # set while a watch stream is open
        self._api_client = k8s.ApiClient(configuration)
        self._api = k8s.CoreV1Api(self._api_client)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None  # the open watch response (urllib3), to interrupt on stop
        self._resource_version: str | None = None  # None: list before watching
        self._delays: Iterator[float] | None = None  # the current run of backoff delays; None after a healthy stream
        self._down_since: float | None = None  # monotonic time of the first failure of the current run
        self._pods: dict[str, PodReport] = {}  # pod key -> its last report (pods with an instance id only)
        self._instances: dict[str, set[str]] = {}  # instance id -> keys of its pods
        self._reported = self._outbox.reported  # instance id -> the last update pushed for it (this run or earlier)
        self._warned: set[str] = set()  # keys of skipped pods already logged
        self._progress = False  # an event arrived since the last listing
        self._stats = DaemonStats()

    @property
    def stats(self) -> DaemonStats:
        return dataclasses.replace(self._stats)

    @property
    def resource_version(self) -> str | None:
        """The latest resourceVersion seen (None before the first listing and after a 410)."""
        return self._resource_version

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Until ``stop``: list when needed, watch; after a break back off and resume. Flushes pushes at the end."""
        self._outbox.start()
        try:
            while not self._stopping.is_set():
                try:
                    if self._resource_version is None:
                        self.resync()
                    if self.watch():
                        continue  # a clean end: resume at once
                except _Expired as error:
                    self._stats.expired += 1
                    self._resource_version = None
                    progressed, self._progress = self._progress, False
                    log.info("watch expired (%s); listing again", error)
                    if progressed:
                        continue  # a healthy watch that outlived the server's history: relist at once
                except (ApiException, _BrokenStream, *_TRANSPORT_ERRORS) as error:
                    if self._stopping.is_set():
                        break  # stop() broke the stream: not a failure
                    self._failed(error)
                if self._stopping.is_set():
                    break
                if self._delays is None:
                    self._delays = retry_delays(self.settings.reconnect_initial, self.settings.reconnect_max)
                self._stats.reconnects += 1
                self._stopping.wait(next(self._delays))
        finally:
            self.watching.clear()
            self._api_client.close()
            self._outbox.close()

    def resync(self) -> None:
        """List the pods; push what differs from what was pushed, Removed for instances whose pods are gone."""
        pods, resource_version = self._list()
        now = time.time()
        reports: dict[str, PodReport] = {}
        for pod in pods:
            report = self._map(pod, now, deleted=False)
            if isinstance(report, PodReport):
                reports[report.key] = report
            elif report is None and (key := pod_key_or_none(pod)) in self._pods:
                reports[key] = self._pods[key]  # unreadable now: keep what it said before
        gone = [report for key, report in self._pods.items() if key not in reports]
        touched = set(self._reported) | {report.update.instance_id for report in reports.values()}
        self._pods = {}
        self._instances = {}
        for report in reports.values():
            self._remember(report)
        self._warned &= {pod_key_or_none(pod) for pod in pods}
        last = {r.update.instance_id: removed_update(r.update, observed_at=now, reason=VANISHED) for r in gone}
        updates = self._changes(touched, last, now)
        self._stats.lists += 1
        self._stats.listed += len(pods)
        self._stats.vanished += len(gone)
        self._push(updates)
        self._resource_version = resource_version
        self._progress = False
        self._healthy()
        log.info("listed %d pod(s) at resourceVersion %s: %d update(s) pushed, %d pod(s) gone since last seen",
                 len(pods), resource_version, len(updates), len(gone))

    def watch(self) -> bool:
        """Follow pod events from the latest resourceVersion until the stream ends.

        True when the server ended it cleanly; False when ``stop`` did. Raises ``_Expired`` for 410 Gone, and the
        client's and urllib3's errors when the connection breaks.
        """
        assert self._resource_version is not None
        response = self._call(
            watch=True,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.settings.watch_timeout,
        )
        with self._lock:
            self._response = response
            if self._stopping.is_set():
                _interrupt(response)
        self._stats.watches += 1
        self.watching.set()
        try:
            for line in iter_resp_lines(response):
                if line and not line.isspace():
                    self._on_line(line)
        except _TRANSPORT_ERRORS:
            if self._stopping.is_set():
                return False  # stop() shut the socket: what a stop looks like from here
            raise
        finally:
            self.watching.clear()
            with self._lock:
                self._response = None
            response.close()
            response.release_conn()
        if self._stopping.is_set():
            return False
        self._stats.stream_ends += 1
        self._healthy()
        log.debug("watch ended by the server at resourceVersion %s; resuming", self._resource_version)
        return True

    def stop(self) -> None:
        """Ask ``run`` to end: shuts the watch's socket, so the blocked read returns. Safe in a signal handler."""
        self._stopping.set()
        with self._lock:
            if self._response is not None:
                _interrupt(self._response)

    # -- events -------------------------------------------------------------------------------------

    def _on_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError as error:
            raise _BrokenStream(f"a watch line that is not JSON ({error}): {line[:200]!r}") from None
        now = time.time()
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise _BrokenStream(f"a watch event without an object: {line[:200]!r}")
        if kind == "ERROR":
            if obj.get("code") == GONE or obj.get("reason") in ("Expired", "Gone"):
                raise _Expired(str(obj.get("message") or obj.get("reason") or "410 Gone"))
            raise _BrokenStream(f"an ERROR event: {obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        metadata = obj.get("metadata")
        resource_version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        if kind == "BOOKMARK":
            self._stats.bookmarks += 1
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            self._stats.events += 1
            with event_span(self._tracer, "kubernetes watch event", _event_attributes(kind, metadata)):
                self._on_pod(obj, now, deleted=kind == "DELETED")
        else:
            log.warning("ignored a watch event of type %r", kind)
        # Only now: if pushing failed, the stream resumes from before this event and it comes again.
        if isinstance(resource_version, str) and resource_version:
            self._resource_version = resource_version
        self._progress = True
        if self._delays is not None:
            self._healthy()

    def _on_pod(self, pod: Mapping[str, Any], now: float, *, deleted: bool) -> None:
        mapped = self._map(pod, now, deleted=deleted)
        key = mapped.key if isinstance(mapped, PodReport) else pod_key_or_none(pod)
        if deleted:
            self._warned.discard(key)
        if mapped is None and not deleted:
            return  # what it says cannot be read: keep what it said before
        report = mapped if isinstance(mapped, PodReport) else None
        touched: set[str] = set()
        last: dict[str, StatusUpdate] = {}  # instance id -> its Removed, should it have no pod left
        previous = self._pods.get(key)
        if previous is not None:
            self._forget(previous)
            old = previous.update.instance_id
            touched.add(old)
            if report is None or report.update.instance_id != old:
                # Deleted but unreadable, or its label was removed or changed: it no longer reports this instance.
                why = "pod deleted" if deleted else f"pod no longer carries {old}"
                last[old] = removed_update(previous.update, observed_at=now, reason=why)
        if report is not None:
            instance_id = report.update.instance_id
            touched.add(instance_id)
            if not deleted:
                self._remember(report)
            elif instance_id in self._instances:
                self._stats.superseded += 1
            else:
                last[instance_id] = report.update
        self._push(self._changes(touched, last, now))

    def _map(self, pod: Mapping[str, Any], now: float, *, deleted: bool) -> PodReport | Skip | None:
        """The pod's report, a Skip, or None for a malformed pod; counts and logs (once per pod) what is not
        reported."""
        try:
            report = map_pod(pod, observed_at=now, deleted=deleted, source=self._source)
        except MalformedPod as error:
            self._stats.malformed += 1
            self._warn_once(pod, "pod %s is malformed, so this observation of it is ignored: %s", error)
            return None
        if isinstance(report, Skip):
            self._stats.skipped_no_instance_id += 1
            self._warn_once(pod, "pod %s matches the selector but has %s; not reported", report.value)
        return report

    def _warn_once(self, pod: Mapping[str, Any], message: str, detail: object) -> None:
        key = pod_key_or_none(pod)
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, pod_name(pod), detail)

    # -- what is known, and what to push ------------------------------------------------------------

    def _remember(self, report: PodReport) -> None:
        self._pods[report.key] = report
        self._instances.setdefault(report.update.instance_id, set()).add(report.key)

    def _forget(self, report: PodReport) -> None:
        del self._pods[report.key]
        keys = self._instances[report.update.instance_id]
        keys.discard(report.key)
        if not keys:
            del self._instances[report.update.instance_id]

    def _changes(self, touched: Iterable[str], last: Mapping[str, StatusUpdate], now: float) -> list[StatusUpdate]:
        """What to push for these instances, stamped ``now``: each one's representative pod's update, or Removed
        when it has no pod left; only where that differs from what was last pushed for it."""
        updates: list[StatusUpdate] = []
        for instance_id in touched:
            keys = self._instances.get(instance_id)
            before = self._reported.get(instance_id)
            if keys:
                update = _representative(self._pods[key] for key in keys).update
            elif before is None:
                continue  # no pod, and nothing pushed: nothing to take back
            elif instance_id in last:
                update = last[instance_id]
            else:  # reported by an earlier run, and not listed now
                update = removed_update(before, observed_at=now, reason=VANISHED)
            update = dataclasses.replace(update, observed_at=now)
            if take_news(self._reported, update):
                updates.append(update)
        return updates

    def _push(self, updates: list[StatusUpdate]) -> None:
        self._outbox.send(updates)
        self._stats.pushed += len(updates)

    # -- the API server -----------------------------------------------------------------------------

    def _list(self) -> tuple[list[Mapping[str, Any]], str]:
        """Every selected pod, page by page, and the listing's resourceVersion."""
        pods: list[Mapping[str, Any]] = []
        token: str | None = None
        resource_version: str | None = None
        for _ in range(_MAX_PAGES):
            response = self._call(limit=self.settings.list_page_size, _continue=token)
            try:
                body = json.loads(response.data)
            except ValueError as error:
                raise _BrokenStream(f"the pod list is not JSON: {error}") from None
            finally:
                response.release_conn()
            metadata = body.get("metadata") if isinstance(body, dict) else None
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(metadata, dict) or not isinstance(items, list):
                raise _BrokenStream("the pod list has no metadata or no items")
            resource_version = resource_version or metadata.get("resourceVersion")
            pods.extend(items)
            token = metadata.get("continue") or None
            if token is None:
                break
        else:
            raise _BrokenStream(f"the pod list did not end within {_MAX_PAGES} pages")
        if not isinstance(resource_version, str) or not resource_version:
            raise _BrokenStream("the pod list has no metadata.resourceVersion")
        return pods, resource_version

    def _call(self, **params: Any) -> Any:
        """One list or watch request for the selected pods; the raw urllib3 response."""
        params.update(
            label_selector=self.settings.label_selector,
            field_selector=self.settings.field_selector,
            _preload_content=False,
            _request_timeout=(float(self.settings.connect_timeout), float(self.settings.request_timeout)),
        )
        try:
            if self.settings.namespace is not None:
                return self._api.list_namespaced_pod(self.settings.namespace, **params)
            return self._api.list_pod_for_all_namespaces(**params)
        except ApiException as error:
            if error.status == GONE:  # a watch's resourceVersion, or a list's continue token, is too old
                raise _Expired(f"HTTP 410 {error.reason}") from error
            raise

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, ApiException):
            self._stats.api_errors += 1
            level = logging.ERROR if error.status in (401, 403) else logging.WARNING
            what = f"the API server answered {error.status} {error.reason}"
            if error.status in (401, 403):
                what += " (check the service account's RBAC: get, list and watch on pods)"
        else:
            self._stats.drops += 1
            level = logging.WARNING
            what = f"{type(error).__name__}: {error}"
        if self._down_since is None:
            self._down_since = time.monotonic()
            step = "listing pods" if self._resource_version is None else f"watching pods from {self._resource_version}"
            log.log(level, "%s failed (%s); trying again with backoff", step, what)
        else:
            log.debug("still failing: %s", what)

    def _healthy(self) -> None:
        """A listing, an event or a clean end of stream: the backoff starts over."""
        self._delays = None
        if self._down_since is not None:
            log.info("listing and watching pods again after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None


def _event_attributes(kind: str, metadata: Any) -> dict[str, str]:
    """A watch event's span attributes: its type and its pod's name and namespace, as far as they are text."""
    attributes = {"k8s.watch.event.type": kind}
    if isinstance(metadata, dict):
        for attribute, key in (("k8s.pod.name", "name"), ("k8s.namespace.name", "namespace")):
            if isinstance(metadata.get(key), str):
                attributes[attribute] = metadata[key]
    return attributes


def _representative(reports: Iterable[PodReport]) -> PodReport:
    """The pod whose state is the instance's: the newest not being deleted, else the newest."""
    return max(reports, key=lambda r: (not r.terminating, r.created_at, str(r.update.metadata.get("podName", ""))))


def pod_key_or_none(pod: Any) -> str:
    """``pod_key`` for any input: a malformed pod still needs a key to be logged once."""
    try:
        return pod_key(pod)
    except (MalformedPod, AttributeError, TypeError):
        return repr(pod)[:200]


def _interrupt(response: Any) -> None:
    """Unblock a thread reading ``response``: shut the socket's reading side (close() would not wake it)."""
    try:
        response.shutdown()  # urllib3 >= 2.3
        return
    except (AttributeError, NotImplementedError, ValueError, RuntimeError, OSError) as error:
        log.debug("shutting down the watch response failed (%s); shutting its socket", error)
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the reader is woken either way
            sock.shutdown(2)  # socket.SHUT_RDWR


# -- the command ------------------------------------------------------------------------------------


VARIABLES = (
    Variable("WATCH_NAMESPACE", "one namespace; empty, * or all for every namespace (the default)"),
    Variable("DRAAS_LABEL_SELECTOR", "a label selector for the pods to report; each also needs draas.instanceId",
             "label_selector"),
    Variable("DRAAS_NODE_NAME", "only the pods of this node (the DaemonSet variant); empty: every node"),
    Variable("DRAAS_WATCH_TIMEOUT_SECONDS", "the watch's server-side timeout, whole seconds", "watch_timeout"),
    Variable("DRAAS_REQUEST_TIMEOUT_SECONDS", "the client's read timeout; above the watch timeout "
             "(default: the watch timeout + 30)"),
    Variable("KUBECONFIG", "the kubeconfig file(s) outside a cluster (default: ~/.kube/config)"),
    Variable("KUBERNETES_SERVICE_HOST", "set by Kubernetes in a pod: the service account is used instead"),
)
HELP = usage(
    "draas-k8s-daemon",
    "Reports the statuses of labelled Kubernetes pods to the draas control plane: lists them, then watches them.",
    DaemonSettings,
    VARIABLES,
)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 after SIGTERM/SIGINT and for --help, 2 on a configuration error, 1 if the daemon's loop failed."""
    arguments = sys.argv[1:] if argv is None else argv
    return run_daemon("draas-k8s-daemon", load_settings, KubernetesDaemon, argv=arguments, help_text=HELP)


if __name__ == "__main__":
    sys.exit(main())
