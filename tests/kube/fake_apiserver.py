"""A fake kube-apiserver for pods, served over real HTTP on 127.0.0.1, for the real ``kubernetes`` client.

It behaves like kube-apiserver's watch cache wherever a pod watcher can tell the difference:

- one global resourceVersion (a decimal string) that every write increases; lists carry it in
  ``metadata.resourceVersion`` and every object carries the RV of its last write (a DELETED object: the deletion's);
- a watch without a resourceVersion (or ``"0"``) first sends ``ADDED`` for every current match, then live events;
  one from RV n replays the retained events after n, then live ones; one older than the retained history (after
  ``compact()`` or beyond ``history_limit``) gets 200, one ``ERROR`` event holding a 410 ``Status``, and a clean end;
  one newer than the current RV is treated as current;
- label and field selectors filter lists and watches; on a watch an object that starts matching arrives as
  ``ADDED`` and one that stops matching as ``DELETED`` (with its new state); a selector that does not parse is a
  400 ``Status`` naming it;
- ``BOOKMARK`` events every ``bookmark_interval`` seconds when ``allowWatchBookmarks=true``; ``timeoutSeconds`` ends
  the stream with its final chunk; a watcher more than ``watch_queue_limit`` events behind gets an ``ERROR`` 410.

Tests steer it through its methods: write pods, delete them (immediately or gracefully), compact the history, drop
every watch by TCP reset, EOF without the final chunk, or a clean end. One re-entrant lock guards the state; every
watch waits on its own condition of that lock and writes to its socket outside it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import kubernetes.client
import kubernetes.config
import yaml

from tests.kube.pods import apply_state
from tests.kube.selectors import PodFilter, SelectorError
from tests.kube.serving import (
    MAX_CHUNK,
    TOKEN,
    ApiHttpServer,
    HttpError,
    dumps,
    event_line,
    status_object,
)

__all__ = [
    "TOKEN",
    "AlreadyExistsError",
    "DropMode",
    "FakeApiServer",
    "NotFoundError",
    "SelectorError",
    "running_fake_apiserver",
]

log = logging.getLogger(__name__)

DropMode = Literal["reset", "eof", "clean"]
DROP_MODES: Final = ("reset", "eof", "clean")
INITIAL_RESOURCE_VERSION: Final = 1000
STOP_TIMEOUT: Final = 5.0


class NotFoundError(LookupError):
    """No pod of that namespace and name."""


class AlreadyExistsError(ValueError):
    """``create_pod`` of a pod that exists."""


@dataclass(frozen=True)
class _Event:
    resource_version: int
    type: str  # ADDED | MODIFIED | DELETED, as stored; a watch may translate it for its selectors
    old: dict[str, Any] | None
    new: dict[str, Any]
    object_json: bytes


@dataclass(eq=False)
class Watch:
    """One streaming watch: its filter, the event lines not yet written, and whether (and why) it must end."""

    filter: PodFilter
    cond: threading.Condition
    queue_limit: int
    initial: deque[bytes] = field(default_factory=deque)
    live: deque[bytes] = field(default_factory=deque)
    # "open", or why it ends: a DropMode, "stop" (server stopping) or "overflow" (fell too far behind)
    state: str = "open"
    done: threading.Event = field(default_factory=threading.Event)

    def offer(self, event: _Event) -> None:
        """Called under the lock for every write."""
        if self.state != "open":
            return
        kind = self.filter.translate(event.type, event.old, event.new)
        if kind is None:
            return
        if len(self.live) >= self.queue_limit:
            self.state = "overflow"
            self.live.clear()
        else:
            self.live.append(event_line(kind, event.object_json))
        self.cond.notify_all()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the server -------------------------------------------------------------------------------------------------------


class FakeApiServer:
    """Pods, their history and the watches on them; serves them over HTTP once started (not restartable).

    Args:
        history_limit: how many events a watch can be resumed across; older RVs get a 410.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        watch_queue_limit: events a watch may fall behind before it is ended with an ERROR 410.
        require_token: answer 401 to API requests without ``Authorization: Bearer fake-token``.
    """

    def __init__(
        self,
        history_limit: int = 1000,
        bookmark_interval: float = 0.5,
        *,
        watch_queue_limit: int = 1000,
        require_token: bool = True,
    ) -> None:
        if history_limit < 0:
            raise ValueError(f"history_limit: must be >= 0, got {history_limit}")
        if bookmark_interval <= 0:
            raise ValueError(f"bookmark_interval: must be > 0, got {bookmark_interval}")
        if watch_queue_limit < 1:
            raise ValueError(f"watch_queue_limit: must be >= 1, got {watch_queue_limit}")
        self.history_limit = history_limit
        self.bookmark_interval = bookmark_interval
        self.watch_queue_limit = watch_queue_limit
        self.require_token = require_token
        # HTTP DELETE of a scheduled, non-terminal pod only marks it terminating; the test calls finish_deletion.
        self.graceful_http_deletes = False
        # Called on its own thread with every pod deleted over HTTP (as the DELETE returned it): a test's controller.
        self.on_delete: Callable[[dict[str, Any]], object] | None = None
        self.on_delete_errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = INITIAL_RESOURCE_VERSION
        self._floor = INITIAL_RESOURCE_VERSION  # a watch from RV n >= floor can be served from history
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._history: deque[_Event] = deque(maxlen=history_limit)
        self._watches: set[Watch] = set()
        self._continues: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._requests: list[tuple[str, str, dict[str, str]]] = []
        self._deletions: list[tuple[str, str]] = []
        self._list_count = 0
        self._watch_count = 0
        self._stopping = False
        self._httpd: ApiHttpServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._callbacks: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._callback_thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        if self._httpd is not None or self._stopping:
            raise RuntimeError("the fake API server is already started (or stopped: it cannot be restarted)")
        self._httpd = ApiHttpServer(self)
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-apiserver", daemon=True
        )
        self._serve_thread.start()
        self._callback_thread = threading.Thread(
            target=self._run_callbacks, name="fake-apiserver-on-delete", daemon=True
        )
        self._callback_thread.start()
        return self

    def stop(self) -> None:
        """End every stream, close every connection and join every thread, within about ``STOP_TIMEOUT``."""
        httpd = self._httpd
        if httpd is None:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        with self._lock:
            self._stopping = True
            watches = list(self._watches)
            for watch in watches:
                watch.state = "stop"
                watch.cond.notify_all()
        for watch in watches:
            watch.done.wait(max(0.0, deadline - time.monotonic()))
        httpd.shutdown()
        httpd.server_close()
        httpd.close_all_connections()
        httpd.join_threads(deadline)
        if self._serve_thread is not None:
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))
        self._callbacks.put(None)
        if self._callback_thread is not None:
            self._callback_thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake API server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # --- client configuration -----------------------------------------------------------------------------------------

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig (as a dict) for ``url`` with bearer token ``fake-token`` and a current context."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake-user", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user", "namespace": "default"}}],
            "current-context": "fake",
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        return path

    def configuration(self) -> kubernetes.client.Configuration:
        """A client ``Configuration`` loaded from ``kubeconfig()`` by the client's own loader."""
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config_from_dict(self.kubeconfig(), client_configuration=configuration)
        return configuration

    # --- state, for tests ---------------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    @property
    def active_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    @property
    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        with self._lock:
            return list(self._requests)

    @property
    def deletions(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._deletions)

    @property
    def list_count(self) -> int:
        with self._lock:
            return self._list_count

    @property
    def watch_count(self) -> int:
        with self._lock:
            return self._watch_count

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            pod = self._pods.get((namespace, name))
            return copy.deepcopy(pod) if pod is not None else None

    def pods(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(self._pods[key]) for key in sorted(self._pods)]

    def wait_for_watches(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` watches are streaming."""
        return self._wait(lambda: len(self._watches) >= count, timeout)

    def wait_for_deletion(self, namespace: str, name: str, timeout: float) -> bool:
        """Wait until a DELETE of that pod has been received over HTTP (404s count too)."""
        return self._wait(lambda: (namespace, name) in self._deletions, timeout)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold the state lock across several writes: no watcher can read any of them until all are done."""
        with self._lock:
            yield

    # --- writes -------------------------------------------------------------------------------------------------------

    def create_pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Store a new pod (uid, creationTimestamp and resourceVersion assigned) and send ADDED."""
        pod = copy.deepcopy(pod)
        namespace, name = _validate_pod(pod)
        metadata = pod["metadata"]
        if "resourceVersion" in metadata:
            raise ValueError("pod.metadata.resourceVersion: must not be set on a pod to be created")
        pod.setdefault("kind", "Pod")
        pod.setdefault("apiVersion", "v1")
        metadata["namespace"] = namespace
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", _now())
        with self._lock:
            if (namespace, name) in self._pods:
                raise AlreadyExistsError(f"pod {namespace}/{name} already exists")
            return self._write("ADDED", None, pod)

    def update_pod(self, namespace: str, name: str, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """``fn`` changes a deep copy of the pod; a real change is stored and sent as MODIFIED (a no-op is not)."""
        with self._lock:
            old = self._existing(namespace, name)
            new = copy.deepcopy(old)
            fn(new)
            _validate_pod(new)
            for key in ("name", "namespace", "uid"):
                if new["metadata"].get(key) != old["metadata"].get(key):
                    raise ValueError(f"pod.metadata.{key}: cannot be changed by an update")
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return copy.deepcopy(old)
            return self._write("MODIFIED", old, new)

    def patch_pod_status(self, namespace: str, name: str, **changes: Any) -> dict[str, Any]:
        """Change a pod's state with ``make_pod``'s keywords (``phase``, ``ready``, ``waiting_reason``...)."""
        return self.update_pod(namespace, name, lambda pod: apply_state(pod, **changes))

    def delete_pod(self, namespace: str, name: str, *, graceful: bool = False) -> dict[str, Any]:
        """Immediate: DELETED. Graceful: MODIFIED with ``metadata.deletionTimestamp``; ``finish_deletion`` ends it."""
        with self._lock:
            pod = self._existing(namespace, name)
            if not graceful:
                return self._write("DELETED", pod, copy.deepcopy(pod))
            if "deletionTimestamp" in pod["metadata"]:
                return copy.deepcopy(pod)
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            return self.update_pod(
                namespace,
                name,
                lambda p: p["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=grace),
            )

    def finish_deletion(self, namespace: str, name: str) -> dict[str, Any]:
        """The end of a graceful deletion (the kubelet has stopped the containers): DELETED."""
        return self.delete_pod(namespace, name, graceful=False)

    def compact(self) -> None:
        """Forget all history: a watch from any RV before now gets a 410 ``Expired``."""
        with self._lock:
            self._history.clear()
            self._floor = self._rv

    def drop_watches(self, mode: DropMode) -> int:
        """End every current watch: ``reset`` (TCP RST), ``eof`` (no final chunk) or ``clean``; waits until done."""
        if mode not in DROP_MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(DROP_MODES)}")
        with self._lock:
            watches = [watch for watch in self._watches if watch.state == "open"]
            for watch in watches:
                watch.state = mode
                watch.cond.notify_all()
        deadline = time.monotonic() + STOP_TIMEOUT
        for watch in watches:
            watch.done.wait(max(0.0, deadline - time.monotonic()))
        return len(watches)

    def _existing(self, namespace: str, name: str) -> dict[str, Any]:
        pod = self._pods.get((namespace, name))
        if pod is None:
            raise NotFoundError(f"pod {namespace}/{name} not found")
        return pod

    def _write(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
        """Under the lock: a new RV, the store, the history and every watch's queue."""
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        key = (new["metadata"]["namespace"], new["metadata"]["name"])
        if kind == "DELETED":
            del self._pods[key]
        else:
            self._pods[key] = new
        event = _Event(self._rv, kind, old, new, dumps(new))
        if self.history_limit == 0:
            self._floor = self._rv
        else:
            if len(self._history) == self.history_limit:
                self._floor = self._history[0].resource_version
            self._history.append(event)
        for watch in self._watches:
            watch.offer(event)
        self._changed.notify_all()
        return copy.deepcopy(new)

    # --- what the HTTP layer (serving.py) calls -----------------------------------------------------------------------

    def record_request(self, method: str, path: str, query: dict[str, str]) -> None:
        with self._lock:
            self._requests.append((method, path, query))

    def serve_list(self, filter_: PodFilter, limit: int | None, token: str | None) -> dict[str, Any]:
        with self._lock:
            self._list_count += 1
            if token is not None:
                if token not in self._continues:
                    raise HttpError(400, "BadRequest", f"continue: {token!r} is not a continue token of this server")
                rv, items = self._continues.pop(token)
                if rv < self._floor:
                    raise HttpError(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter.",
                    )
            else:
                rv = self._rv
                items = [self._pods[key] for key in sorted(self._pods) if filter_.matches(self._pods[key])]
            metadata: dict[str, Any] = {"resourceVersion": str(rv)}
            if limit is not None and len(items) > limit:
                items, rest = items[:limit], items[limit:]
                next_token = uuid.uuid4().hex
                self._continues[next_token] = (rv, rest)
                metadata["continue"] = next_token
                metadata["remainingItemCount"] = len(rest)
            # List items carry no kind/apiVersion, as kube-apiserver sends them.
            plain = [
                {k: copy.deepcopy(v) for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items
            ]
            return {"kind": "PodList", "apiVersion": "v1", "metadata": metadata, "items": plain}

    def open_watch(self, filter_: PodFilter, resource_version: str | None) -> Watch | dict[str, Any]:
        """Register a watch with its initial events, or return the 410 ``Status`` for a too-old RV."""
        with self._lock:
            self._watch_count += 1
            watch = Watch(filter_, threading.Condition(self._lock), self.watch_queue_limit)
            if resource_version in (None, "", "0"):
                for key in sorted(self._pods):
                    pod = self._pods[key]
                    if filter_.matches(pod):
                        watch.initial.append(event_line("ADDED", dumps(pod)))
            else:
                since = int(resource_version)
                if since < self._floor:
                    return status_object(410, "Expired", f"too old resource version: {since} ({self._floor})")
                for event in self._history:
                    if event.resource_version > since:
                        kind = filter_.translate(event.type, event.old, event.new)
                        if kind is not None:
                            watch.initial.append(event_line(kind, event.object_json))
            if self._stopping:
                watch.state = "stop"
            self._watches.add(watch)
            self._changed.notify_all()
            return watch

    def close_watch(self, watch: Watch) -> None:
        with self._lock:
            self._watches.discard(watch)
            watch.done.set()
            self._changed.notify_all()

    def next_batch(self, watch: Watch, wake_at: float) -> tuple[bytes, str, int | None]:
        """Wait until ``wake_at`` for events or an end; return (event lines, state, bookmark RV if idle now)."""
        with self._lock:
            while watch.state == "open" and not watch.initial and not watch.live:
                remaining = wake_at - time.monotonic()
                if remaining <= 0:
                    # Idle with an empty queue under the lock: the watcher has seen everything up to the current RV.
                    return b"", "open", self._rv
                watch.cond.wait(remaining)
            lines: list[bytes] = []
            size = 0
            for source in (watch.initial, watch.live):
                while source and size < MAX_CHUNK:
                    line = source.popleft()
                    lines.append(line)
                    size += len(line)
            return b"".join(lines), watch.state, None

    def delete_over_http(
        self, namespace: str, name: str, grace: int | None, preconditions: dict[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            self._deletions.append((namespace, name))
            self._changed.notify_all()
            pod = self._pods.get((namespace, name))
            if pod is None:
                raise HttpError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
            for key in ("uid", "resourceVersion"):
                wanted = preconditions.get(key)
                if wanted is not None and wanted != pod["metadata"].get(key):
                    raise HttpError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on pods "{name}": Precondition failed: '
                        f"{key} in precondition: {wanted}, {key} in object meta: {pod['metadata'].get(key)}",
                        {"name": name, "kind": "pods"},
                    )
            # As kube-apiserver's pod strategy: an unscheduled or finished pod has nothing to stop, so goes at once.
            scheduled = bool((pod.get("spec") or {}).get("nodeName"))
            finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            graceful = self.graceful_http_deletes and grace != 0 and scheduled and not finished
            deleted = self.delete_pod(namespace, name, graceful=graceful)
        if self.on_delete is not None:
            self._callbacks.put(copy.deepcopy(deleted))
        return deleted

    def _run_callbacks(self) -> None:
        while (pod := self._callbacks.get()) is not None:
            callback = self.on_delete
            if callback is None:
                continue
            try:
                callback(pod)
            except Exception as error:  # a test's controller failing must not kill the dispatcher
                log.exception("on_delete callback failed")
                self.on_delete_errors.append(error)


def _validate_pod(pod: Any) -> tuple[str, str]:
    """Raise ``ValueError`` naming the first malformed field; return (namespace, name)."""
    if not isinstance(pod, dict):
        raise ValueError(f"pod: expected a JSON object (dict), got {type(pod).__name__}")
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError("pod.metadata: missing or not an object")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"pod.metadata.name: missing or not a non-empty string ({name!r})")
    namespace = metadata.get("namespace", "default")
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"pod.metadata.namespace: not a non-empty string ({namespace!r})")
    labels = metadata.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise ValueError("pod.metadata.labels: must map strings to strings")
    for key in ("spec", "status"):
        if key in pod and not isinstance(pod[key], dict):
            raise ValueError(f"pod.{key}: not an object")
    return namespace, name


@contextlib.contextmanager
def running_fake_apiserver(
    history_limit: int = 1000, bookmark_interval: float = 0.5, **options: Any
) -> Iterator[FakeApiServer]:
    """A started ``FakeApiServer`` on 127.0.0.1 and an ephemeral port, stopped on the way out."""
    api = FakeApiServer(history_limit, bookmark_interval, **options)
    api.start()
    try:
        yield api
    finally:
        api.stop()
