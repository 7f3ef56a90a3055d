"""Webhooks over real HTTP: admins manage them, and receivers on 127.0.0.1 get signed CloudEvents for committed
changes, in order, retried, dead-lettered and re-sent, without one slow endpoint holding up another."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.base import BaseCloudEvent

from bench.receiver import Received, receiving
from draas_actors.webhooks import WebhookSettings
from draas_actors.webhooks.event import STATUS_CHANGED, TEST
from draas_actors.webhooks.guard import AllowedHosts
from draas_actors.webhooks.sender import TIMER_NAME, Sender
from tests.helpers import HTTP_TIMEOUT, ProcessJanitor, RunningControlPlane, running_control_plane, wait_until
from tests.mounts import fill, tmpfs
from tests.webhook_support import create_webhook, push, subjects_and_statuses, verified

# max_backoff above the 1 s Retry-After one test answers with: a Retry-After is honoured up to max_backoff.
FAST = WebhookSettings(first_backoff=0.05, max_backoff=2.0, timeout=2.0, connect_timeout=1.0)


@pytest.fixture
def plane(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=FAST) as running:
        yield running


def _webhook_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("webhook-wh_")]


def test_admins_create_list_change_and_delete_webhooks_and_the_secret_is_shown_once(
    plane: RunningControlPlane,
) -> None:
    created = create_webhook(plane, "http://127.0.0.1:9/hook", description="ops",
                             filter={"platforms": ["docker"], "statuses": ["Failed"]})
    assert created["secret"].startswith("whsec_")
    webhook_id = created["id"]
    one = plane.get(f"/api/webhooks/{webhook_id}").json()
    assert "secret" not in one and one["filter"]["statuses"] == ["Failed"] and one["description"] == "ops"
    assert [w["id"] for w in plane.get("/api/webhooks").json()["webhooks"]] == [webhook_id]

    patched = requests.patch(plane.base_url + f"/api/webhooks/{webhook_id}", json={"description": "sre"},
                             headers=plane.operator_headers, timeout=HTTP_TIMEOUT)
    assert patched.status_code == 200 and patched.json()["description"] == "sre"
    assert "secret" not in patched.json()

    deleted = requests.delete(plane.base_url + f"/api/webhooks/{webhook_id}", headers=plane.operator_headers,
                              timeout=HTTP_TIMEOUT)
    assert deleted.status_code == 204
    assert plane.get(f"/api/webhooks/{webhook_id}").status_code == 404
    wait_until(lambda: not _webhook_threads(), message="the deleted webhook's thread ended")


def test_a_patched_url_and_filter_take_effect_from_the_next_change(plane: RunningControlPlane) -> None:
    with receiving() as first, receiving() as second:
        created = create_webhook(plane, first.url)
        push(plane, "moved-1", "Running")
        assert len(first.wait_for(1, 3.0)) == 1
        patched = requests.patch(
            plane.base_url + f"/api/webhooks/{created['id']}",
            json={"url": second.url, "filter": {"statuses": ["Stopped"]}},
            headers=plane.operator_headers, timeout=HTTP_TIMEOUT,
        )
        assert patched.status_code == 200, patched.text
        push(plane, "moved-1", "Stopped")
        push(plane, "moved-1", "Running")  # filtered out now
        push(plane, "moved-1", "Stopped")
        got = second.wait_for(2, 3.0)
        assert subjects_and_statuses(created["secret"], got) == [("moved-1", "Stopped"), ("moved-1", "Stopped")]
        assert len(first.received) == 1 and len(second.wait_for(3, 0.3)) == 2


def test_more_webhooks_than_max_webhooks_is_a_409(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=WebhookSettings(max_webhooks=1)) as plane:
        create_webhook(plane, "http://127.0.0.1:9/one")
        refused = plane.post("/api/webhooks", json={"url": "http://127.0.0.1:9/two"})
        assert refused.status_code == 409 and "maxWebhooks" in refused.json()["detail"]


def test_webhooks_need_the_admin_role(plane: RunningControlPlane) -> None:
    answer = requests.get(plane.base_url + "/api/webhooks", headers=plane.daemon_headers, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 403
    assert requests.get(plane.base_url + "/api/webhooks", timeout=HTTP_TIMEOUT).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "gopher://127.0.0.1/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://[fe80::1]:80/"}, "url"),
        ({"url": "http://127.0.0.1:9/", "filter": {"platforms": ["vms"]}}, "filter.platforms[0]"),
        ({"url": "http://127.0.0.1:9/", "filter": {"statuses": ["Burning"]}}, "filter.statuses[0]"),
        ({"url": "http://127.0.0.1:9/", "secret": "hunter2"}, "secret"),
    ],
)
def test_bad_webhooks_are_422_naming_the_field(plane: RunningControlPlane, body: dict[str, object], field: str) -> None:
    answer = plane.post("/api/webhooks", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert plane.get("/api/webhooks").json()["webhooks"] == []


def test_an_unknown_webhook_is_a_404_and_a_bad_query_a_422_naming_it(plane: RunningControlPlane) -> None:
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/test"), ("GET", "/deliveries"),
                         ("POST", "/deliveries/1/retry")):
        answer = requests.request(method, plane.base_url + "/api/webhooks/wh_0123456789abcdef" + path,
                                  headers=plane.operator_headers, timeout=HTTP_TIMEOUT)
        assert answer.status_code == 404 and answer.json()["field"] == "webhookId", (method, path, answer.text)
    webhook_id = create_webhook(plane, "http://127.0.0.1:9/hook")["id"]
    bad_state = plane.get(f"/api/webhooks/{webhook_id}/deliveries?state=lost")
    assert bad_state.status_code == 422 and bad_state.json()["field"] == "state"
    bad_limit = plane.get(f"/api/webhooks/{webhook_id}/deliveries?limit=0")
    assert bad_limit.status_code == 422 and bad_limit.json()["field"] == "limit"
    missing = plane.post(f"/api/webhooks/{webhook_id}/deliveries/7/retry")
    assert missing.status_code == 404 and missing.json()["field"] == "deliveryId"


def test_a_host_outside_allowed_hosts_is_refused(tmp_path: Path, janitor: ProcessJanitor) -> None:
    settings = WebhookSettings(allowed_hosts=("hooks.example.com", "10.0.0.0/8"))
    with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=settings) as running:
        answer = running.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        assert answer.status_code == 422 and answer.json()["field"] == "url"
        assert "allowedHosts" in answer.json()["detail"]
        assert running.post("/api/webhooks", json={"url": "https://hooks.example.com/x"}).status_code == 201


def test_committed_changes_arrive_signed_as_cloudevents_in_order_and_filtered(plane: RunningControlPlane) -> None:
    with receiving() as receiver:
        secret = create_webhook(plane, receiver.url, filter={"instanceIds": ["hook-a"]})["secret"]
        for status in ("Running", "Stopped", "Running", "Failed"):
            push(plane, "hook-b", status)  # filtered out
            push(plane, "hook-a", status)
        got = receiver.wait_for(4, 5.0)
        assert subjects_and_statuses(secret, got) == [
            ("hook-a", "Running"), ("hook-a", "Stopped"), ("hook-a", "Running"), ("hook-a", "Failed")
        ]
        events = [verified(secret, r) for r in got]
        assert all(e.get_type() == STATUS_CHANGED and e.get_subject() == "hook-a" for e in events)
        cursors = [_data(e)["cursor"] for e in events]
        assert cursors == sorted(cursors)
        assert [e.get_id() for e in events] == [f"{plane.cp.store_id}-{c}" for c in cursors]
        assert len(receiver.wait_for(5, 0.3)) == 4  # nothing else came

        metrics = plane.get("/metrics").text
        assert 'draas_webhook_deliveries_total{outcome="delivered"} 4.0' in metrics
        assert "draas_webhook_lag{webhook=" in metrics


def test_one_trace_id_travels_from_a_push_to_the_webhook_request(plane: RunningControlPlane) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with receiving() as receiver:
        secret = create_webhook(plane, receiver.url)["secret"]
        pushed = requests.post(
            plane.base_url + "/api/status/updates",
            json={"instanceId": "traced-1", "status": "Running", "source": "webhook-test", "platform": "docker"},
            headers={**plane.daemon_headers, "traceparent": trace}, timeout=HTTP_TIMEOUT,
        )
        assert pushed.status_code == 202, pushed.text
        push(plane, "untraced-1", "Running")
        traced, untraced = receiver.wait_for(2, 5.0)
        # The trace id (its second part) travels; the parent span may be the control plane's own when an SDK is on.
        assert traced.headers["traceparent"].split("-")[1] == trace.split("-")[1]
        extension = verified(secret, traced).get_extension("traceparent")
        assert isinstance(extension, str) and extension.split("-")[1] == trace.split("-")[1]
        assert "traceparent" not in untraced.headers
        assert verified(secret, untraced).get_extension("traceparent") is None


def test_a_failing_endpoint_gets_the_same_event_again_until_it_takes_it(plane: RunningControlPlane) -> None:
    answers = iter([(500, {}), (503, {"Retry-After": "1"}), (204, {})])

    def answer(received: Received) -> tuple[int, dict[str, str]]:
        return next(answers, (204, {}))

    with receiving(answer) as receiver:
        secret = create_webhook(plane, receiver.url)["secret"]
        push(plane, "retry-1", "Running")
        push(plane, "retry-1", "Stopped")
        got = receiver.wait_for(4, 6.0)
        ids = [r.headers["webhook-id"] for r in got]
        assert ids[0] == ids[1] == ids[2] != ids[3]
        assert got[2].at - got[1].at >= 0.95  # the 503's Retry-After: 1
        assert subjects_and_statuses(secret, [got[2], got[3]]) == [("retry-1", "Running"), ("retry-1", "Stopped")]
        assert plane.get(f"/api/webhooks/{_only_id(plane)}/deliveries?state=failed").json()["deliveries"] == []


def test_past_the_horizon_a_change_is_dead_lettered_and_an_admin_can_send_it_again(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    settings = WebhookSettings(retry_horizon=0.5, first_backoff=0.05, max_backoff=0.1, timeout=2.0)
    refusing = threading.Event()
    refusing.set()

    def answer(received: Received) -> tuple[int, dict[str, str]]:
        data = received.body
        return (500, {}) if refusing.is_set() and b'"dead-1"' in data else (204, {})

    with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=settings) as plane, \
            receiving(answer) as receiver:
        secret = create_webhook(plane, receiver.url)["secret"]
        webhook_id = _only_id(plane)
        push(plane, "dead-1", "Running")
        push(plane, "live-1", "Running")
        # The next change goes through once the first one is dead.
        wait_until(lambda: any(b'"live-1"' in r.body for r in receiver.received), 5.0, message="live-1 delivered")
        dead = plane.get(f"/api/webhooks/{webhook_id}/deliveries?state=dead").json()["deliveries"]
        assert len(dead) == 1 and dead[0]["state"] == "dead" and dead[0]["attempts"] >= 2
        assert dead[0]["lastError"].startswith("HTTP 500")
        metrics = plane.get("/metrics").text
        assert 'draas_webhook_deliveries_total{outcome="dead"} 1.0' in metrics
        assert 'draas_webhook_deliveries_total{outcome="http_error"}' in metrics

        refusing.clear()
        retried = plane.post(f"/api/webhooks/{webhook_id}/deliveries/{dead[0]['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["result"]["delivered"] is True and retried.json()["delivery"]["state"] == "delivered"
        last = receiver.received[-1]
        assert last.headers["webhook-id"] == dead[0]["eventId"]
        assert verified(secret, last).get_subject() == "dead-1"
        assert plane.get(f"/api/webhooks/{webhook_id}/deliveries?state=dead").json()["deliveries"] == []
        again = plane.post(f"/api/webhooks/{webhook_id}/deliveries/{dead[0]['id']}/retry")
        assert again.status_code == 404 and again.json()["field"] == "deliveryId"


def test_a_test_event_is_sent_at_once_and_says_how_it_went(plane: RunningControlPlane) -> None:
    with receiving() as receiver:
        created = create_webhook(plane, receiver.url)
        answer = plane.post(f"/api/webhooks/{created['id']}/test")
        assert answer.status_code == 200, answer.text
        assert answer.json()["delivered"] is True and answer.json()["status"] == 204
        (got,) = receiver.wait_for(1, 2.0)
        event = verified(created["secret"], got)
        assert event.get_type() == TEST and event.get_id() == answer.json()["eventId"]
    refused = plane.post(f"/api/webhooks/{created['id']}/test")  # the receiver is gone
    assert refused.status_code == 200 and refused.json()["outcome"] == "connection_error"


def test_a_redirect_is_not_followed(plane: RunningControlPlane) -> None:
    with receiving() as elsewhere, receiving(lambda r: (302, {"Location": elsewhere.url})) as receiver:
        created = create_webhook(plane, receiver.url)
        answer = plane.post(f"/api/webhooks/{created['id']}/test")
        assert answer.json()["delivered"] is False and answer.json()["status"] == 302
        assert elsewhere.received == []


def test_an_endpoint_that_never_answers_holds_up_no_other_and_is_cut_off_at_the_total_timeout(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    settings = WebhookSettings(timeout=1.0, first_backoff=0.05, max_backoff=0.1)
    with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=settings) as plane, \
            receiving(hold=True) as silent, receiving() as healthy:
        create_webhook(plane, silent.url)
        secret = create_webhook(plane, healthy.url)["secret"]
        started = time.monotonic()
        for status in ("Running", "Stopped", "Running"):
            push(plane, "both-1", status)
        got = healthy.wait_for(3, 2.0)
        assert [s for _, s in subjects_and_statuses(secret, got)] == ["Running", "Stopped", "Running"]
        assert got[-1].at - started < 2.0  # not behind the silent one's attempts (3 x 1 s timeouts at least)
        wait_until(lambda: len(silent.received) >= 2, 5.0, message="the silent endpoint's attempt was cut off")
        metrics = plane.get("/metrics").text
        assert 'draas_webhook_deliveries_total{outcome="timeout"}' in metrics


def test_a_peer_that_drips_its_answer_is_cut_off_at_the_total_timeout() -> None:
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 200:  # never ends its headers
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        sender = Sender(AllowedHosts(), connect_timeout=1.0, timeout=1.0)
        started = time.monotonic()
        result = sender.send(f"http://127.0.0.1:{listener.getsockname()[1]}/hook", {}, b"{}")
        took = time.monotonic() - started
    finally:
        stop.set()
        dripper.join(5.0)
        listener.close()
    assert result.outcome == "timeout", result
    assert 0.9 <= took < 3.0  # each byte came within the socket timeout: only the total cut it off


def test_stopping_the_control_plane_ends_every_delivery_thread_even_mid_request(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    settings = WebhookSettings(timeout=30.0)
    with receiving(hold=True) as silent:
        with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=settings) as plane:
            create_webhook(plane, silent.url)
            push(plane, "held-1", "Running")
            assert silent.wait_for(1, 3.0)
            assert _webhook_threads()
            started = time.monotonic()
        assert time.monotonic() - started < 5.0
        assert _webhook_threads() == []
        assert not [t for t in threading.enumerate() if t.name == TIMER_NAME]  # no attempt's timer either


def test_webhooks_and_their_cursor_outlive_a_restart(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with receiving() as receiver:
        with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=FAST) as plane:
            created = create_webhook(plane, receiver.url)
            push(plane, "again-1", "Running")
            assert len(receiver.wait_for(1, 3.0)) == 1
        with running_control_plane(tmp_path / "data", janitor=janitor, webhooks=FAST) as plane:
            assert [w["id"] for w in plane.get("/api/webhooks").json()["webhooks"]] == [created["id"]]
            push(plane, "again-1", "Stopped")
            got = receiver.wait_for(2, 3.0)
            assert subjects_and_statuses(created["secret"], got) == [("again-1", "Running"), ("again-1", "Stopped")]
            assert len(receiver.wait_for(3, 0.3)) == 2  # the first change was not sent again


def test_a_webhook_the_store_cannot_commit_is_a_503_never_a_false_201(tmp_path: Path, janitor: ProcessJanitor) -> None:
    with tmpfs(tmp_path / "data", size="6m") as data_dir, \
            running_control_plane(data_dir, janitor=janitor, webhooks=FAST) as plane:
        created = [create_webhook(plane, "http://127.0.0.1:9/hook")["id"]]
        fill(data_dir)
        refused = None
        for _ in range(500):  # the WAL's last free pages take a few commits; bounded
            answer = plane.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook", "description": "x" * 1000})
            if answer.status_code != 201:
                refused = answer
                break
            created.append(answer.json()["id"])
        assert refused is not None, "the disk never filled up"
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        listed = [w["id"] for w in plane.get("/api/webhooks").json()["webhooks"]]
        assert listed == created


def _data(event: BaseCloudEvent) -> dict[str, Any]:
    data = event.get_data()
    assert isinstance(data, dict)
    return data


def _only_id(plane: RunningControlPlane) -> str:
    (webhook,) = plane.get("/api/webhooks").json()["webhooks"]
    webhook_id: str = webhook["id"]
    return webhook_id
