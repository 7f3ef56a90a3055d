"""The fake Kubernetes API server, seen through the real ``kubernetes`` client over real HTTP on 127.0.0.1.

Each test checks one behaviour a pod watcher could tell apart from kube-apiserver's watch cache, so that the daemon's
tests against the fake mean something. Watches run in threads (``WatchRun``) with a server timeout and a request
timeout, so that a broken fake fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
import requests
import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.helpers import wait_until
from tests.kube.fake_apiserver import (
    FakeApiServer,
    NotFoundError,
    running_fake_apiserver,
)
from tests.kube.pods import make_pod, state_of

pytestmark = pytest.mark.kubernetes

REQUEST_TIMEOUT = 10.0
AUTH = {"Authorization": "Bearer fake-token"}


@dataclass
class WatchRun:
    """One ``Watch.stream`` consumed in a thread: what it yielded and how it ended."""

    events: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    watcher: watch.Watch = field(default_factory=watch.Watch)

    def seen(self) -> list[tuple[str, str]]:
        """(type, pod name) of every event but bookmarks."""
        return [(e["type"], e["raw_object"]["metadata"]["name"]) for e in self.events if e["type"] != "BOOKMARK"]

    def wait_seen(self, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        wait_until(lambda: len(self.seen()) >= count or self.done.is_set(), timeout, message=f"{count} events")
        return self.seen()

    def wait_done(self, timeout: float = 5.0) -> None:
        assert self.done.wait(timeout), "the watch stream did not end"


@dataclass
class Cluster:
    api: FakeApiServer
    # The client's models declare every field Optional; these tests read what the fake server filled in, and an
    # assert per attribute would drown what they check. Typed Any on purpose.
    v1: Any
    runs: list[tuple[WatchRun, threading.Thread]] = field(default_factory=list)

    def watch(self, namespace: str | None = None, **kwargs: Any) -> WatchRun:
        """Start watching pods (all namespaces unless ``namespace``) in a thread; ``stream`` gets ``kwargs``."""
        run = WatchRun()
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        function = self.v1.list_pod_for_all_namespaces
        if namespace is not None:
            function, kwargs = self.v1.list_namespaced_pod, {"namespace": namespace, **kwargs}

        def consume() -> None:
            try:
                for event in run.watcher.stream(function, **kwargs):
                    run.events.append(event)
            except BaseException as error:  # the test asserts on it
                run.error = error
            finally:
                run.done.set()

        thread = threading.Thread(target=consume, name="test-watch", daemon=True)
        self.runs.append((run, thread))
        thread.start()
        return run

    def raw(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.api.url + path, params=params, headers=AUTH, stream=True, timeout=REQUEST_TIMEOUT)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_fake_apiserver(history_limit=1000, bookmark_interval=0.1) as api:
        cluster = Cluster(api, kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(api.configuration())))
        try:
            yield cluster
        finally:
            api.stop()
            for run, thread in cluster.runs:
                run.watcher.stop()
                thread.join(5.0)
                assert not thread.is_alive(), "a watch thread outlived the server"


# --- lists ------------------------------------------------------------------------------------------------------


def test_a_list_carries_the_global_resource_version_and_each_pod_the_version_of_its_last_write(
    cluster: Cluster,
) -> None:
    api = cluster.api
    first = api.create_pod(make_pod("alpha"))
    second = api.create_pod(make_pod("beta", namespace="other"))
    changed = api.patch_pod_status("default", "alpha", ready=False)

    pods = cluster.v1.list_pod_for_all_namespaces()

    assert int(first["metadata"]["resourceVersion"]) < int(second["metadata"]["resourceVersion"])
    assert int(changed["metadata"]["resourceVersion"]) > int(second["metadata"]["resourceVersion"])
    assert pods.metadata.resource_version == api.resource_version == changed["metadata"]["resourceVersion"]
    assert [(p.metadata.namespace, p.metadata.name, p.metadata.resource_version) for p in pods.items] == [
        ("default", "alpha", changed["metadata"]["resourceVersion"]),
        ("other", "beta", second["metadata"]["resourceVersion"]),
    ]
    assert [p.metadata.name for p in cluster.v1.list_namespaced_pod("other").items] == ["beta"]
    raw = cluster.raw("/api/v1/pods").json()
    assert (raw["kind"], raw["apiVersion"]) == ("PodList", "v1")
    assert api.list_count == 3
    assert api.requests[:2] == [("GET", "/api/v1/pods", {}), ("GET", "/api/v1/namespaces/other/pods", {})]


def test_a_list_with_a_limit_pages_through_one_consistent_snapshot(cluster: Cluster) -> None:
    for index in range(5):
        cluster.api.create_pod(make_pod(f"pod-{index}"))
    first = cluster.v1.list_pod_for_all_namespaces(limit=2)
    cluster.api.delete_pod("default", "pod-4")
    rest = cluster.v1.list_pod_for_all_namespaces(limit=10, _continue=first.metadata._continue)

    assert [p.metadata.name for p in first.items] == ["pod-0", "pod-1"]
    assert first.metadata.remaining_item_count == 3
    assert [p.metadata.name for p in rest.items] == ["pod-2", "pod-3", "pod-4"]
    assert rest.metadata.resource_version == first.metadata.resource_version


def test_get_of_one_pod_and_of_the_version_answer_like_the_api_server(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha", namespace="ns-1"))

    pod = cluster.v1.read_namespaced_pod("alpha", "ns-1")
    with pytest.raises(ApiException) as missing:
        cluster.v1.read_namespaced_pod("ghost", "ns-1")
    version = kubernetes.client.VersionApi(cluster.v1.api_client).get_code()

    assert pod.metadata.name == "alpha" and pod.status.phase == "Running"
    assert missing.value.status == 404
    assert version.major == "1"


# --- watches ----------------------------------------------------------------------------------------------------


def test_a_watch_from_zero_first_sends_every_current_pod_as_added_then_live_events(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))
    api.create_pod(make_pod("beta"))

    run = cluster.watch(resource_version="0", timeout_seconds=30)
    assert run.wait_seen(2) == [("ADDED", "alpha"), ("ADDED", "beta")]
    api.create_pod(make_pod("gamma"))
    api.patch_pod_status("default", "alpha", phase="Failed")
    api.delete_pod("default", "beta")

    assert run.wait_seen(5)[2:] == [("ADDED", "gamma"), ("MODIFIED", "alpha"), ("DELETED", "beta")]
    deleted = run.events[-1]["object"]
    assert deleted.metadata.resource_version == api.resource_version  # a deletion has its own RV
    assert run.events[3]["object"].status.phase == "Failed"


def test_a_watch_without_a_resource_version_also_starts_with_the_current_pods(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha"))

    run = cluster.watch(timeout_seconds=30)

    assert run.wait_seen(1) == [("ADDED", "alpha")]


def test_a_watch_from_a_resource_version_replays_only_the_events_after_it(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))
    api.create_pod(make_pod("beta"))
    since = api.resource_version
    api.patch_pod_status("default", "alpha", ready=False)
    api.create_pod(make_pod("gamma"))
    api.delete_pod("default", "beta")

    run = cluster.watch(resource_version=since, timeout_seconds=30)

    assert run.wait_seen(3) == [("MODIFIED", "alpha"), ("ADDED", "gamma"), ("DELETED", "beta")]
    versions = [int(e["object"].metadata.resource_version) for e in run.events]
    assert versions == sorted(versions) and versions[0] > int(since)
    api.create_pod(make_pod("delta"))
    assert run.wait_seen(4)[3] == ("ADDED", "delta")


def test_a_watch_from_a_resource_version_newer_than_the_current_one_streams_later_events(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    future = str(int(cluster.api.resource_version) + 100)

    run = cluster.watch(resource_version=future, timeout_seconds=30)
    assert cluster.api.wait_for_watches(1, 5.0)
    cluster.api.create_pod(make_pod("beta"))

    assert run.wait_seen(1) == [("ADDED", "beta")]


def test_a_watch_from_a_compacted_resource_version_raises_410_after_the_clients_one_silent_retry(
    cluster: Cluster,
) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))
    old = api.resource_version
    api.patch_pod_status("default", "alpha", ready=False)
    api.compact()

    # Without timeout_seconds the client retries once with the same RV before raising.
    run = cluster.watch(resource_version=old)
    run.wait_done()

    assert isinstance(run.error, ApiException) and run.error.status == 410
    assert f"too old resource version: {old} ({api.resource_version})" in str(run.error.reason)
    assert api.watch_count == 2
    assert run.events == []


def test_an_expired_watch_read_raw_is_200_then_one_error_event_then_a_clean_end(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    old = cluster.api.resource_version
    cluster.api.create_pod(make_pod("beta"))
    cluster.api.compact()

    with cluster.raw("/api/v1/pods", watch="true", resourceVersion=old) as response:
        lines = [line for line in response.iter_lines() if line]  # raises if the stream ends without its last chunk

    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    assert {k: event["object"][k] for k in ("kind", "status", "reason", "code")} == {
        "kind": "Status",
        "status": "Failure",
        "reason": "Expired",
        "code": 410,
    }


def test_events_beyond_the_history_limit_expire_like_a_compaction() -> None:
    with running_fake_apiserver(history_limit=3, bookmark_interval=0.1) as api:
        before = api.resource_version
        api.create_pod(make_pod("alpha"))
        created = api.resource_version
        for ready in (False, True, False):
            api.patch_pod_status("default", "alpha", ready=ready)
        expired, kept = (
            requests.get(
                api.url + "/api/v1/pods",
                params={"watch": "1", "resourceVersion": since, "timeoutSeconds": "1"},
                headers=AUTH,
                timeout=REQUEST_TIMEOUT,
            )
            for since in (before, created)
        )

    # Three events are kept (the three changes): a watch from the creation still sees them all, one from before not.
    expired_events = [json.loads(line) for line in expired.text.splitlines()]
    assert [(e["type"], e["object"]["code"]) for e in expired_events] == [("ERROR", 410)]
    assert expired_events[0]["object"]["message"] == f"too old resource version: {before} ({created})"
    assert [json.loads(line)["type"] for line in kept.text.splitlines()] == ["MODIFIED"] * 3


def test_a_watcher_that_falls_too_far_behind_gets_a_410_error() -> None:
    with running_fake_apiserver(bookmark_interval=0.1, watch_queue_limit=3) as api:
        api.create_pod(make_pod("alpha"))
        with requests.get(
            api.url + "/api/v1/pods",
            params={"watch": "true", "resourceVersion": api.resource_version, "timeoutSeconds": "5"},
            headers=AUTH,
            stream=True,
            timeout=REQUEST_TIMEOUT,
        ) as response:
            assert api.wait_for_watches(1, 5.0)
            with api.atomic():  # the watch cannot drain while the lock is held
                for restarts in range(1, 6):
                    api.patch_pod_status("default", "alpha", restart_count=restarts)
            lines = [json.loads(line) for line in response.iter_lines() if line]

    assert [(line["type"], line["object"].get("code")) for line in lines] == [("ERROR", 410)]


def test_label_selectors_filter_lists_and_watches_and_a_pod_starting_or_ceasing_to_match_is_added_or_deleted(
    cluster: Cluster,
) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))
    api.create_pod(make_pod("stranger", labels={"app": "other", "managed-by": "draas"}))

    selector = "app=drasi,managed-by=draas"
    assert [p.metadata.name for p in cluster.v1.list_pod_for_all_namespaces(label_selector=selector).items] == ["alpha"]
    run = cluster.watch(label_selector=selector, resource_version="0", timeout_seconds=30)
    assert run.wait_seen(1) == [("ADDED", "alpha")]

    api.update_pod("default", "alpha", lambda pod: pod["metadata"]["labels"].update({"app": "retired"}))
    api.patch_pod_status("default", "alpha", ready=False)  # not matching: not sent
    api.update_pod("default", "stranger", lambda pod: pod["metadata"]["labels"].update({"app": "drasi"}))
    api.patch_pod_status("default", "stranger", ready=False)

    assert run.wait_seen(4) == [
        ("ADDED", "alpha"),
        ("DELETED", "alpha"),
        ("ADDED", "stranger"),
        ("MODIFIED", "stranger"),
    ]
    assert run.events[1]["object"].metadata.labels["app"] == "retired"  # DELETED carries the new state


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", ["a", "b", "c"]),
        ("tier=web", ["a"]),
        ("tier==web", ["a"]),
        ("tier!=web", ["b", "c"]),
        ("tier in (web, db)", ["a", "b"]),
        ("tier notin (web,db)", ["c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier,shard>1", ["b"]),
        ("example.com/zone=eu, tier in (db)", ["b"]),
    ],
)
def test_label_selector_operators_match_like_kubernetes(cluster: Cluster, selector: str, expected: list[str]) -> None:
    cluster.api.create_pod(make_pod("a", labels={"tier": "web", "shard": "1"}))
    cluster.api.create_pod(make_pod("b", labels={"tier": "db", "shard": "2", "example.com/zone": "eu"}))
    cluster.api.create_pod(make_pod("c", labels={}))

    pods = cluster.v1.list_pod_for_all_namespaces(label_selector=selector).items

    assert [p.metadata.name for p in pods] == expected


@pytest.mark.parametrize(
    ("parameter", "selector", "named"),
    [
        ("label_selector", "app in (drasi", "labelSelector"),
        ("label_selector", "app=drasi,,x", "labelSelector"),
        ("field_selector", "spec.nodeName", "fieldSelector"),
        ("field_selector", "spec.hostname=x", "field label not supported: spec.hostname"),
    ],
)
def test_a_selector_that_does_not_parse_is_a_400_status_naming_it(
    cluster: Cluster, parameter: str, selector: str, named: str
) -> None:
    with pytest.raises(ApiException) as listing:
        cluster.v1.list_pod_for_all_namespaces(**{parameter: selector})
    with pytest.raises(ApiException) as watching:
        next(
            iter(
                watch.Watch().stream(cluster.v1.list_pod_for_all_namespaces, timeout_seconds=1, **{parameter: selector})
            )
        )

    for error in (listing.value, watching.value):
        assert error.status == 400
        assert named in _text(error.body)
        assert selector in _text(error.body)


def _text(body: str | bytes | None) -> str:
    return body.decode() if isinstance(body, bytes) else str(body)


def test_a_field_selector_on_the_node_name_sees_a_pod_once_it_is_scheduled_there(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("here", node_name="node-1"))
    api.create_pod(make_pod("there", node_name="node-2"))
    api.create_pod(make_pod("waiting", phase="Pending", node_name=None, pod_ip=None))

    listed = cluster.v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1").items
    run = cluster.watch(field_selector="spec.nodeName=node-1", resource_version="0", timeout_seconds=30)
    assert run.wait_seen(1) == [("ADDED", "here")]
    api.patch_pod_status("default", "there", ready=False)
    api.patch_pod_status("default", "waiting", node_name="node-1")

    assert [p.metadata.name for p in listed] == ["here"]
    assert run.wait_seen(2) == [("ADDED", "here"), ("ADDED", "waiting")]
    assert [
        p.metadata.name for p in cluster.v1.list_pod_for_all_namespaces(field_selector="spec.nodeName!=node-1").items
    ] == ["there"]
    by_name = cluster.v1.list_pod_for_all_namespaces(field_selector="metadata.namespace=default,metadata.name=there")
    assert [p.metadata.name for p in by_name.items] == ["there"]


def test_bookmarks_carry_the_current_resource_version_and_come_only_when_asked_for(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    current = cluster.api.resource_version

    with_bookmarks = cluster.watch(resource_version=current, allow_watch_bookmarks=True, timeout_seconds=1)
    without = cluster.watch(resource_version=current, timeout_seconds=1)
    with_bookmarks.wait_done()
    without.wait_done()

    bookmarks = [e for e in with_bookmarks.events if e["type"] == "BOOKMARK"]
    assert len(bookmarks) >= 3  # every 0.1 s during one second
    assert all(
        e["raw_object"] == {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": current}}
        for e in bookmarks
    )
    assert with_bookmarks.watcher.resource_version == current
    assert without.events == [] and without.error is None


def test_timeout_seconds_ends_the_stream_cleanly_after_that_long(cluster: Cluster) -> None:
    started = time.monotonic()
    run = cluster.watch(resource_version="0", timeout_seconds=1)
    run.wait_done(5.0)
    elapsed = time.monotonic() - started

    assert run.error is None
    assert 0.9 <= elapsed < 3.0
    with cluster.raw("/api/v1/pods", watch="true", timeoutSeconds="1") as response:
        assert list(response.iter_lines()) == []  # a stream without its final chunk would raise here


@pytest.mark.parametrize("mode", ["reset", "eof"])
def test_a_watch_dropped_by_reset_or_eof_raises_a_protocol_error_in_the_client(cluster: Cluster, mode: str) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    run = cluster.watch(resource_version="0", timeout_seconds=30)
    assert run.wait_seen(1) == [("ADDED", "alpha")]

    assert cluster.api.drop_watches(mode) == 1  # type: ignore[arg-type]
    run.wait_done()

    assert isinstance(run.error, urllib3.exceptions.ProtocolError), repr(run.error)
    reset = any(isinstance(arg, ConnectionResetError) for arg in run.error.args)
    assert reset == (mode == "reset"), repr(run.error)  # an EOF is "Response ended prematurely", not a reset
    assert cluster.api.active_watches == 0


def test_a_watch_dropped_cleanly_just_ends_in_the_client(cluster: Cluster) -> None:
    run = cluster.watch(resource_version="0", timeout_seconds=30)
    assert cluster.api.wait_for_watches(1, 5.0)

    assert cluster.api.drop_watches("clean") == 1
    run.wait_done()

    assert run.error is None
    assert cluster.api.active_watches == 0


def test_drop_watches_counts_what_it_dropped_and_refuses_a_mode_that_does_not_exist(cluster: Cluster) -> None:
    assert cluster.api.drop_watches("reset") == 0
    with pytest.raises(ValueError, match="mode: 'rst'"):
        cluster.api.drop_watches("rst")  # type: ignore[arg-type]


def test_a_client_that_stops_watching_is_no_longer_counted_as_a_watch(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    run = cluster.watch(resource_version="0", timeout_seconds=30)
    assert run.wait_seen(1) == [("ADDED", "alpha")]  # the client holds the response now, so stop() can close it

    run.watcher.stop()
    run.wait_done()

    assert wait_until(lambda: cluster.api.active_watches == 0, 2.0, message="the watch is forgotten")


def test_stopping_the_server_ends_every_stream_and_returns_quickly() -> None:
    before = set(threading.enumerate())
    api = FakeApiServer(bookmark_interval=0.1).start()
    try:
        v1 = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(api.configuration()))
        cluster = Cluster(api, v1)
        runs = [cluster.watch(resource_version="0", timeout_seconds=30) for _ in range(3)]
        assert api.wait_for_watches(3, 5.0)
        started = time.monotonic()
    finally:
        api.stop()
    stopped_in = time.monotonic() - started

    for run in runs:
        run.wait_done()
    assert stopped_in < 2.0
    assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("fake-apiserver")] == []


def test_an_informer_resuming_from_its_last_version_after_every_drop_and_overflow_ends_with_the_true_state() -> None:
    """The property the daemon relies on: resume-from-RV plus relist-on-410 never loses or invents a change."""
    with running_fake_apiserver(history_limit=50, bookmark_interval=0.05, watch_queue_limit=15) as api:
        informer = Informer(kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(api.configuration())))
        thread = threading.Thread(target=informer.run, name="test-informer", daemon=True)
        thread.start()
        try:
            changes = PodChurn(api)
            drops = 0
            for round_ in range(9):
                # A stream the informer is reading (it has had an event, if only a bookmark), so a drop hits it.
                informer.wait_for_new_stream(f"round {round_}: a new stream")
                changes.make(10)
                if round_ in (4, 8):
                    with api.atomic():  # more than the watch's queue in one burst: ERROR 410, relist
                        changes.make(20)
                else:
                    mode = ("reset", "eof", "clean")[round_ % 3]
                    assert api.drop_watches(mode) == 1  # type: ignore[arg-type]
                    drops += mode != "clean"

            def converged() -> bool:
                truth = {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in api.pods()}
                return informer.snapshot() == truth

            wait_until(converged, 5.0, message="the informer's view equals the server's pods")
        finally:
            informer.stop.set()
            api.stop()
            thread.join(5.0)

    assert informer.failure is None, repr(informer.failure)
    assert informer.protocol_errors == drops == 5
    assert informer.relists >= 3  # the first list, then one per overflow


@dataclass
class Informer:
    """A minimal list-then-watch loop, as the daemon runs it: resume from the last RV, relist on 410."""

    v1: Any  # see Cluster.v1
    stop: threading.Event = field(default_factory=threading.Event)
    state: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    protocol_errors: int = 0
    relists: int = 0
    established: int = 0  # streams that have yielded at least one event
    failure: BaseException | None = None

    def wait_for_new_stream(self, message: str) -> None:
        seen = self.established
        wait_until(lambda: self.established > seen, 5.0, message=message)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.state)

    def run(self) -> None:
        resource_version: str | None = None
        deadline = time.monotonic() + 30.0
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                if resource_version is None:
                    resource_version = self._relist()
                first = True
                try:
                    for event in watch.Watch().stream(
                        self.v1.list_pod_for_all_namespaces,
                        resource_version=resource_version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=1,
                        _request_timeout=REQUEST_TIMEOUT,
                    ):
                        resource_version = self._apply(event)
                        if first:
                            first = False
                            with self.lock:
                                self.established += 1
                except ApiException as error:
                    if error.status != 410:
                        raise
                    resource_version = None
                except urllib3.exceptions.ProtocolError:
                    with self.lock:
                        self.protocol_errors += 1
        except BaseException as error:  # the test asserts on it
            self.failure = error

    def _relist(self) -> str:
        listing = self.v1.list_pod_for_all_namespaces()
        with self.lock:
            self.relists += 1
            self.state = {p.metadata.name: p.metadata.resource_version for p in listing.items}
        return str(listing.metadata.resource_version)

    def _apply(self, event: dict[str, Any]) -> str:
        metadata = event["raw_object"]["metadata"]
        with self.lock:
            if event["type"] == "DELETED":
                self.state.pop(metadata["name"], None)
            elif event["type"] != "BOOKMARK":
                self.state[metadata["name"]] = metadata["resourceVersion"]
        return str(metadata["resourceVersion"])


@dataclass
class PodChurn:
    """Deterministic pseudo-random creates, status changes and deletes over ten pod names."""

    api: FakeApiServer
    random: random.Random = field(default_factory=lambda: random.Random(4))

    def make(self, count: int) -> None:
        for _ in range(count):
            name = f"pod-{self.random.randrange(10)}"
            pod = self.api.get_pod("default", name)
            if pod is None:
                self.api.create_pod(make_pod(name))
            elif self.random.random() < 0.2:
                self.api.delete_pod("default", name)
            else:
                restarts = state_of(pod).restart_count + 1
                self.api.patch_pod_status("default", name, restart_count=restarts, ready=self.random.random() < 0.5)


# --- deletes ----------------------------------------------------------------------------------------------------


def test_a_delete_over_http_is_immediate_by_default_and_recorded(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))
    run = cluster.watch(resource_version=api.resource_version, timeout_seconds=30)
    assert api.wait_for_watches(1, 5.0)

    returned = cluster.v1.delete_namespaced_pod("alpha", "default")

    assert returned.metadata.name == "alpha"
    assert api.get_pod("default", "alpha") is None
    assert api.deletions == [("default", "alpha")]
    assert api.wait_for_deletion("default", "alpha", 1.0)
    assert run.wait_seen(1) == [("DELETED", "alpha")]


def test_a_graceful_delete_over_http_marks_the_pod_terminating_until_the_deletion_is_finished(
    cluster: Cluster,
) -> None:
    api = cluster.api
    api.graceful_http_deletes = True
    api.create_pod(make_pod("alpha"))
    run = cluster.watch(resource_version=api.resource_version, timeout_seconds=30)
    assert api.wait_for_watches(1, 5.0)

    returned = cluster.v1.delete_namespaced_pod("alpha", "default")
    assert run.wait_seen(1) == [("MODIFIED", "alpha")]
    terminating = api.get_pod("default", "alpha")
    api.finish_deletion("default", "alpha")

    assert returned.metadata.deletion_timestamp is not None
    assert terminating is not None and "deletionTimestamp" in terminating["metadata"]
    assert run.events[0]["object"].metadata.deletion_timestamp is not None
    assert run.wait_seen(2) == [("MODIFIED", "alpha"), ("DELETED", "alpha")]
    assert api.get_pod("default", "alpha") is None


@pytest.mark.parametrize(
    ("pod", "options"),
    [
        (make_pod("alpha"), kubernetes.client.V1DeleteOptions(grace_period_seconds=0)),
        (make_pod("alpha", phase="Pending", node_name=None, pod_ip=None), None),
        (make_pod("alpha", phase="Succeeded"), None),
    ],
    ids=["grace-period-zero", "unscheduled", "finished"],
)
def test_a_delete_over_http_is_immediate_even_when_graceful_for_a_forced_unscheduled_or_finished_pod(
    cluster: Cluster, pod: dict[str, Any], options: kubernetes.client.V1DeleteOptions | None
) -> None:
    cluster.api.graceful_http_deletes = True
    cluster.api.create_pod(pod)

    cluster.v1.delete_namespaced_pod("alpha", "default", body=options)

    assert cluster.api.get_pod("default", "alpha") is None


def test_a_delete_of_a_missing_pod_is_a_404_status_and_still_recorded(cluster: Cluster) -> None:
    with pytest.raises(ApiException) as error:
        cluster.v1.delete_namespaced_pod("ghost", "default")

    assert error.value.status == 404
    assert "NotFound" in str(error.value.body)
    assert cluster.api.deletions == [("default", "ghost")]
    with pytest.raises(NotFoundError):
        cluster.api.delete_pod("default", "ghost")


def test_a_delete_with_a_stale_uid_precondition_is_a_409_conflict(cluster: Cluster) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    options = kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid="not-it"))

    with pytest.raises(ApiException) as error:
        cluster.v1.delete_namespaced_pod("alpha", "default", body=options)

    assert error.value.status == 409
    assert cluster.api.get_pod("default", "alpha") is not None


def test_on_delete_lets_a_test_act_as_the_controller_that_recreates_the_pod(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("web-1", instance_id="web"))
    api.on_delete = lambda pod: api.create_pod(
        make_pod("web-2", instance_id=pod["metadata"]["labels"]["draas.instanceId"])
    )

    cluster.v1.delete_namespaced_pod("web-1", "default")

    replacement = wait_until(lambda: api.get_pod("default", "web-2"), 5.0, message="the replacement pod")
    assert replacement["metadata"]["labels"]["draas.instanceId"] == "web"
    assert api.on_delete_errors == []


# --- configuration and pods -------------------------------------------------------------------------------------


def test_the_kubeconfig_loads_with_the_clients_loader_and_authenticates(cluster: Cluster, tmp_path: Path) -> None:
    cluster.api.create_pod(make_pod("alpha"))
    path = cluster.api.write_kubeconfig(tmp_path / "kubeconfig")
    configuration = kubernetes.client.Configuration()

    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    v1: Any = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))  # Any: see Cluster.v1

    assert configuration.host == cluster.api.url
    assert [p.metadata.name for p in v1.list_pod_for_all_namespaces().items] == ["alpha"]
    unauthenticated = requests.get(cluster.api.url + "/api/v1/pods", timeout=REQUEST_TIMEOUT)
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"ready": False},
        {"phase": "Pending", "node_name": None, "pod_ip": None},
        {"phase": "Pending"},
        {"waiting_reason": "CrashLoopBackOff", "restart_count": 4},
        {"phase": "Succeeded"},
        {"phase": "Failed", "terminated_exit_code": 137, "reason": "OOMKilled"},
        {"phase": "Unknown", "reason": "NodeLost"},
    ],
)
def test_make_pod_builds_pods_the_client_deserialises_and_the_state_reads_back(
    cluster: Cluster, options: dict[str, Any]
) -> None:
    created = cluster.api.create_pod(make_pod("alpha", **options))
    pod = cluster.v1.read_namespaced_pod("alpha", "default")

    state = state_of(created)
    assert {key: getattr(state, key) for key in options} == options
    assert pod.status.phase == options.get("phase", "Running")
    assert pod.metadata.labels["draas.instanceId"] == "alpha"
    ready = next(c.status for c in pod.status.conditions if c.type == "Ready") if pod.spec.node_name else None
    if options.get("phase", "Running") == "Running" and "waiting_reason" not in options:
        assert ready == ("False" if options.get("ready") is False else "True")
        assert pod.status.container_statuses[0].state.running is not None
    if "waiting_reason" in options:
        assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
        assert pod.status.container_statuses[0].restart_count == 4
        assert ready == "False"
    if "terminated_exit_code" in options:
        assert pod.status.container_statuses[0].state.terminated.exit_code == 137
        assert pod.status.reason == "OOMKilled"


def test_patch_pod_status_means_what_make_pod_means(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))

    crashing = api.patch_pod_status("default", "alpha", waiting_reason="CrashLoopBackOff", restart_count=2)
    recovered = api.patch_pod_status("default", "alpha", waiting_reason=None)
    unchanged = api.patch_pod_status("default", "alpha", waiting_reason=None)

    assert crashing["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert crashing["status"]["containerStatuses"][0]["ready"] is False
    assert recovered["status"]["containerStatuses"][0]["ready"] is True
    assert recovered["status"]["containerStatuses"][0]["restartCount"] == 2
    assert unchanged["metadata"]["resourceVersion"] == recovered["metadata"]["resourceVersion"]  # a no-op is no write


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"phase": "Exploded"}, "phase"),
        ({"restart_count": -1}, "restart_count"),
        ({"node_name": "Node_1"}, "node_name"),
        ({"waiting_reason": "CrashLoopBackOff", "terminated_exit_code": 1}, "waiting_reason, terminated_exit_code"),
        ({"instance_id": "not a label value!"}, "instance_id"),
        ({"namespace": "Default"}, "namespace"),
    ],
)
def test_make_pod_refuses_bad_input_naming_the_argument(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named}"):
        make_pod("alpha", **options)


def test_malformed_pods_and_changes_are_refused_naming_the_field(cluster: Cluster) -> None:
    api = cluster.api
    api.create_pod(make_pod("alpha"))

    with pytest.raises(ValueError, match=r"pod\.metadata\.name"):
        api.create_pod({"metadata": {}})
    with pytest.raises(ValueError, match="already exists"):
        api.create_pod(make_pod("alpha"))
    with pytest.raises(ValueError, match=r"pod\.metadata\.uid"):
        api.update_pod("default", "alpha", lambda pod: pod["metadata"].update(uid="other"))
    with pytest.raises(ValueError, match="phse"):
        api.patch_pod_status("default", "alpha", phse="Running")
    with pytest.raises(NotFoundError):
        api.patch_pod_status("default", "ghost", phase="Running")
    assert cluster.v1.list_pod_for_all_namespaces().metadata.resource_version == api.resource_version
