"""The pure parts of the Kubernetes platform (which pod a report is about, error words) and the shared action pool."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client.exceptions import ApiException

from draas_actors.model import Status
from draas_actors.platforms.actions import ActionFailed, ActionPool
from draas_actors.platforms.kubernetes import (
    PodVerdict,
    describe_api_error,
    is_retryable,
    judge_pod_report,
    pod_key,
)

CURRENT = "default/web-a"
OTHER = "default/web-b"
GOING = [Status.STOPPING, Status.STOPPED, Status.FAILED, Status.REMOVED, Status.RESTARTING, Status.UNKNOWN]
THERE = [Status.PENDING, Status.STARTING, Status.RUNNING, Status.UNHEALTHY]

# -- which pod a report is about -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_every_report_about_the_current_pod_applies(status: Status) -> None:
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", list(Status))
def test_the_first_pod_reported_applies_whatever_it_says(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=None, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", list(Status))
def test_a_report_that_names_no_pod_applies(status: Status) -> None:
    assert judge_pod_report(None, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.APPLY


@pytest.mark.parametrize("status", THERE)
def test_another_pod_that_is_there_takes_over(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", GOING)
def test_another_pod_that_is_going_or_gone_changes_nothing(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=()) is PodVerdict.IGNORE


@pytest.mark.parametrize("status", [s for s in GOING if s is not Status.REMOVED])
def test_a_pod_we_deleted_is_never_an_exit(status: Status) -> None:
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.IGNORE
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=[OTHER]) is PodVerdict.IGNORE


def test_the_removal_of_the_pod_we_deleted_matters_only_while_nothing_replaced_it() -> None:
    assert judge_pod_report(CURRENT, Status.REMOVED, current=CURRENT, deleted=[CURRENT]) is PodVerdict.GONE
    assert judge_pod_report(OTHER, Status.REMOVED, current=CURRENT, deleted=[OTHER]) is PodVerdict.IGNORE


@pytest.mark.parametrize("status", THERE)
def test_a_pod_we_deleted_that_is_there_again_is_a_new_pod_of_the_same_name(status: Status) -> None:
    # A StatefulSet recreates web-0 as web-0.
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.RECREATED


def test_a_pod_key_is_namespace_and_name_with_kubernetes_default_namespace() -> None:
    assert pod_key({"podName": "web-a", "namespace": "shop"}) == "shop/web-a"
    assert pod_key({"podName": "web-a"}) == "default/web-a"
    assert pod_key({"namespace": "shop"}) is None
    assert pod_key({"podName": ""}) is None


# -- what a failed call says ---------------------------------------------------------------------------------


def test_an_api_error_is_described_by_its_status_and_message() -> None:
    body = '{"kind":"Status","code":403,"message":"pods \\"web-a\\" is forbidden: no delete"}'
    error = ApiException(status=403, reason="Forbidden", body=body)
    assert describe_api_error(error) == 'HTTP 403 Forbidden: pods "web-a" is forbidden: no delete'


def test_an_api_error_without_a_json_body_keeps_the_start_of_its_text() -> None:
    assert describe_api_error(ApiException(status=502, reason="Bad Gateway", body="upstream down")) == (
        "HTTP 502 Bad Gateway: upstream down"
    )
    assert describe_api_error(ApiException(status=500, reason="Internal Server Error")) == (
        "HTTP 500 Internal Server Error"
    )


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (409, False), (422, False), (408, True), (429, True), (500, True),
     (503, True), (None, True)],
)
def test_refusals_are_not_retried_and_server_trouble_is(status: int | None, retryable: bool) -> None:
    assert is_retryable(status) is retryable


# -- the action pool both platforms use ----------------------------------------------------------------------


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closed = False


class Failures:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] = []
        self.event = threading.Event()

    def __call__(self, action: str, error: str, retryable: bool) -> None:
        self.seen.append((action, error, retryable))
        self.event.set()

    def wait(self) -> tuple[str, str, bool]:
        assert self.event.wait(5.0), "no failure was reported"
        self.event.clear()
        return self.seen[-1]


def test_the_pool_connects_once_on_first_use_and_closes_the_client() -> None:
    connects: list[FakeClient] = []

    def connect() -> FakeClient:
        connects.append(FakeClient())
        return connects[-1]

    pool: ActionPool[FakeClient] = ActionPool(
        "test", connect=connect, disconnect=lambda c: setattr(c, "closed", True), failures=(OSError,), workers=1
    )
    assert connects == []  # nothing is made until an action needs it
    done = threading.Event()

    def second(client: FakeClient) -> None:
        client.calls.append("two")
        done.set()

    pool.submit("one", Failures(), lambda client: client.calls.append("one"))
    pool.submit("two", Failures(), second)
    assert done.wait(5.0)
    pool.close()
    (client,) = connects
    assert client.calls == ["one", "two"]
    assert client.closed


def test_a_failed_connection_is_reported_and_tried_again_on_the_next_action() -> None:
    attempts: list[int] = []

    def connect() -> FakeClient:
        attempts.append(1)
        if len(attempts) == 1:
            raise ActionFailed("cannot load the kubeconfig", retryable=False)
        return FakeClient()

    pool: ActionPool[FakeClient] = ActionPool("test", connect=connect, disconnect=lambda c: None, failures=())
    failures = Failures()
    try:
        pool.submit("delete", failures, lambda client: None)
        assert failures.wait() == ("delete", "cannot load the kubeconfig", False)
        done = threading.Event()
        pool.submit("delete", failures, lambda client: done.set())
        assert done.wait(5.0)
    finally:
        pool.close()
    assert len(attempts) == 2
    assert len(failures.seen) == 1


def test_declared_failures_are_retryable_and_anything_else_is_reported_as_unexpected() -> None:
    pool: ActionPool[FakeClient] = ActionPool(
        "test", connect=FakeClient, disconnect=lambda c: None, failures=(OSError,)
    )
    failures = Failures()

    def refused(client: FakeClient) -> None:
        raise ConnectionRefusedError("connection refused")

    def buggy(client: FakeClient) -> None:
        raise KeyError("metadata")

    try:
        pool.submit("start", failures, refused)
        assert failures.wait() == ("start", "connection refused", True)
        pool.submit("delete", failures, buggy)
        assert failures.wait() == ("delete", "unexpected error: KeyError('metadata')", False)
    finally:
        pool.close()
