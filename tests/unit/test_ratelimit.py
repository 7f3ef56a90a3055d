"""The token bucket and the per-identity limiter, on an injected clock."""

from __future__ import annotations

import threading

import pytest

from draas_actors.api.ratelimit import RateLimiter, TokenBucket, retry_after
from draas_actors.security import LimitSettings, daemon_identity, operator_identity


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_grants_its_burst_and_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=5, clock=clock)

    granted = [bucket.take() for _ in range(5)]
    refused = bucket.take()

    assert granted == [0.0] * 5
    assert refused == pytest.approx(0.1)


def test_a_refused_take_takes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=2, clock=clock)
    bucket.take(2)

    for _ in range(100):
        assert bucket.take() > 0
    clock.now += 1.0

    assert bucket.take() == 0.0


def test_tokens_come_back_at_the_rate_but_never_beyond_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=10, clock=clock)
    bucket.take(10)

    clock.now += 0.05
    assert bucket.take(5) == 0.0
    assert bucket.take() > 0
    clock.now += 3600
    assert [bucket.take() for _ in range(11)].count(0.0) == 10


def test_a_batch_larger_than_the_burst_passes_a_full_bucket_and_leaves_it_in_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=400, clock=clock)

    assert bucket.take(500) == 0.0
    assert bucket.tokens == pytest.approx(-100.0)
    # The debt is paid back before anything else passes: (1 - -100) / 100 s.
    assert bucket.take() == pytest.approx(1.01)
    clock.now += 1.01
    assert bucket.take() == 0.0


def test_a_batch_larger_than_the_burst_waits_for_a_full_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=400, clock=clock)
    bucket.take(100)

    assert bucket.take(500) == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.take(500) == 0.0


def test_the_rest_of_a_batch_is_judged_with_the_token_the_middleware_took() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=400, clock=clock)

    assert bucket.take(1) == 0.0
    # 499 more after 1 taken: one request of 500 items, allowed on the (then) full bucket.
    assert bucket.take(499, taken=1) == 0.0
    assert bucket.tokens == pytest.approx(-100.0)


def test_the_rest_of_a_batch_is_refused_when_the_bucket_cannot_pay_it() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=20, clock=clock)
    bucket.take(15)
    assert bucket.take(1) == 0.0

    wait = bucket.take(9, taken=1)

    assert wait == pytest.approx(0.5)  # 10 in all, 1 taken: 9 more needed and 4 left
    assert bucket.tokens == pytest.approx(4.0)


def test_a_clock_that_steps_back_adds_no_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=1, clock=clock)
    bucket.take()
    clock.now -= 100

    assert bucket.take() == pytest.approx(0.1)


def test_concurrent_takes_never_grant_more_than_the_bucket_holds() -> None:
    bucket = TokenBucket(rate=1e-9, burst=1000, clock=FakeClock())
    granted: list[int] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        granted.append(sum(1 for _ in range(500) if bucket.take() == 0.0))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sum(granted) == 1000


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


@pytest.mark.parametrize(("wait", "seconds"), [(0.001, 1), (0.999, 1), (1.0, 1), (1.2, 2), (30.5, 31)])
def test_retry_after_is_whole_seconds_and_at_least_one(wait: float, seconds: int) -> None:
    assert retry_after(wait) == seconds


def test_each_identity_has_its_own_bucket_with_its_own_or_the_default_limits() -> None:
    limits = LimitSettings(push_rate=5.0, push_burst=7, operator_rate=50.0, operator_burst=70)
    limiter = RateLimiter(limits, clock=FakeClock())
    rogue, good = daemon_identity("rogue"), daemon_identity("good", rate=1000.0, burst=2000)

    for _ in range(7):
        assert limiter.buckets(rogue).updates.take() == 0.0

    assert limiter.buckets(rogue).updates.take() > 0
    assert limiter.buckets(good).updates.take() == 0.0
    assert (limiter.buckets(rogue).updates.rate, limiter.buckets(rogue).updates.burst) == (5.0, 7)
    assert (limiter.buckets(good).updates.rate, limiter.buckets(good).updates.burst) == (1000.0, 2000)
    admin = limiter.buckets(operator_identity("alice")).updates
    assert (admin.rate, admin.burst) == (50.0, 70)
    assert limiter.buckets(rogue).updates is limiter.buckets(daemon_identity("rogue")).updates


def test_a_daemon_also_has_a_request_bucket_at_twice_its_rate_with_a_small_burst_unless_it_says() -> None:
    limits = LimitSettings(push_rate=5.0, push_burst=7, push_request_burst=3)
    limiter = RateLimiter(limits, clock=FakeClock())
    plain = limiter.buckets(daemon_identity("plain"))
    fast = limiter.buckets(daemon_identity("fast", rate=100.0))
    own = limiter.buckets(daemon_identity("own", rate=100.0, request_rate=20.0, request_burst=50))

    assert plain.requests is not None and fast.requests is not None and own.requests is not None
    assert (plain.requests.rate, plain.requests.burst) == (10.0, 3)
    assert (fast.requests.rate, fast.requests.burst) == (200.0, 3)  # follows the identity's own rate
    assert (own.requests.rate, own.requests.burst) == (20.0, 50)
    assert limiter.buckets(operator_identity("alice")).requests is None  # operators: one bucket, per request
