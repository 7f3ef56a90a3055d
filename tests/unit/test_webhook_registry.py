"""The webhooks' durable state (an in-memory SQLite database here): cursors only move forward, dead letters are
bounded per webhook, and a webhook's deletion takes its deliveries with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from draas_actors.webhooks.registry import DEAD, FAILED, Delivery, Registry
from draas_actors.webhooks.spec import Webhook, WebhookId, WebhookSpec, new_secret

HOOK = Webhook(WebhookId("wh_00000000000000aa"), WebhookSpec("http://127.0.0.1:9/", secret=new_secret()), 1.0, 1.0)


def _dead(cursor: int) -> Delivery:
    return Delivery(
        webhook_id=HOOK.webhook_id, cursor=cursor, event_id=f"s-{cursor}", event_type="t", state=DEAD, attempts=3,
        first_attempt=1.0, last_attempt=2.0, next_attempt=None, last_error="HTTP 500", body=b"{}",
    )


@pytest.fixture
def registry() -> Iterator[Registry]:
    r = Registry(":memory:")
    r.create(HOOK, 10)
    try:
        yield r
    finally:
        r.close()


def test_the_cursor_only_moves_forward(registry: Registry) -> None:
    registry.set_cursor(HOOK.webhook_id, 12)
    registry.set_cursor(HOOK.webhook_id, 11)  # a late, older write (a replaced thread's) changes nothing
    assert registry.cursor(HOOK.webhook_id) == 12


def test_a_dead_letter_moves_the_cursor_past_its_change_in_the_same_commit(registry: Registry) -> None:
    registry.save_delivery(_dead(11), cursor=11)
    assert registry.cursor(HOOK.webhook_id) == 11


def test_dead_letters_beyond_the_cap_forget_the_oldest(registry: Registry) -> None:
    for cursor in range(11, 16):
        registry.save_delivery(_dead(cursor), max_dead=3)
    assert [d.cursor for d in registry.deliveries(HOOK.webhook_id, DEAD, 10)] == [15, 14, 13]


def test_a_failed_delivery_is_found_again_updated_and_forgotten_once_delivered(registry: Registry) -> None:
    saved = registry.save_delivery(dataclasses.replace(_dead(11), state=FAILED, next_attempt=5.0))
    assert registry.failing(HOOK.webhook_id, 11) == saved and saved.delivery_id > 0
    registry.save_delivery(dataclasses.replace(saved, attempts=4))
    found = registry.failing(HOOK.webhook_id, 11)
    assert found is not None and found.attempts == 4
    registry.delivered(saved.delivery_id, cursor=(HOOK.webhook_id, 11))
    assert registry.deliveries(HOOK.webhook_id, None, 10) == [] and registry.cursor(HOOK.webhook_id) == 11


def test_deleting_a_webhook_deletes_its_deliveries(registry: Registry) -> None:
    registry.save_delivery(_dead(11))
    assert registry.delete(HOOK.webhook_id)
    assert registry.get(HOOK.webhook_id) is None and registry.deliveries(HOOK.webhook_id, None, 10) == []
    assert not registry.delete(HOOK.webhook_id)
