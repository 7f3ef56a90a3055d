"""The pure parts of the Kubernetes platform (error words) and the shared action pool."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client.exceptions import ApiException

from draas_actors.platforms.actions import ActionFailed, ActionPool
from draas_actors.platforms.kubernetes import describe_api_error, is_retryable

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
