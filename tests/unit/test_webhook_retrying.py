"""When a failing delivery is tried again."""

from __future__ import annotations

import email.utils

from draas_actors.webhooks.retrying import backoff, next_delay, parse_retry_after


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    assert [backoff(n, 1.0, 10.0, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert [backoff(n, 1.0, 10.0, lambda: 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(10_000, 1.0, 600.0, lambda: 1.0) == 600.0  # no overflow however many attempts


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_after_wins_over_the_backoff_up_to_the_cap() -> None:
    assert next_delay(attempts=1, retry_after=5.0, first=1.0, cap=600.0, rng=lambda: 1.0) == 5.0
    assert next_delay(attempts=1, retry_after=5000.0, first=1.0, cap=600.0, rng=lambda: 1.0) == 600.0
    assert next_delay(attempts=3, retry_after=None, first=1.0, cap=600.0, rng=lambda: 1.0) == 4.0
