"""Rate limits: one token bucket per identity; excess -> 429 with ``Retry-After``.

Pushes cost one token per update: ``RateLimit`` (middleware, after authentication) takes one token before the
body is even parsed, so a flood is refused at the cost of a dictionary lookup; the push resource then calls
``charge_items`` for the rest of a batch. Daemons get their identity's ``rate``/``burst`` or ``[limits]
pushRate``/``pushBurst``; operators a separate, more generous bucket (``operatorRate``/``operatorBurst``), one
token per request, against a stolen or runaway operator key.

The bucket is written here rather than taken from a library: it is twenty lines, needs an injectable clock,
"debt" for a batch larger than the burst, and a wait time for ``Retry-After``; the maintained Python limiters
(``limits``, ``pyrate-limiter``) bring storage backends and either lack the wait time or a partial take.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import falcon

from ..security import DAEMON, Identity, LimitSettings
from .dispatch import IGNORED_RETRY_AFTER

Clock = Callable[[], float]
_EPSILON = 1e-9  # refill arithmetic in floats must not refuse a take that is due to the nanosecond


PENALTY_SECONDS = 60.0  # how long a caller that ignored Retry-After keeps the small burst
PENALTY_BURST_DIVISOR = 20  # its burst while penalised: burst // 20 (20 of the default 400)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; thread-safe, O(1) per call.

    A take larger than the burst is granted when the bucket is full and leaves it in debt, so a batch of any
    size can pass but the long-run rate still holds: the next take waits until the debt is paid back.

    A caller refused again before the ``Retry-After`` it was given has ignored it (a client that honours it is
    refused once, then waits). For ``PENALTY_SECONDS`` its burst shrinks to ``burst // PENALTY_BURST_DIVISOR``:
    its long-run rate is unchanged, but what it saves up while it is held can no longer arrive as one burst of
    hundreds of updates that the control plane must apply while well-behaved daemons wait behind them.
    """

    __slots__ = ("_clock", "_lock", "_penalty_until", "_retry_at", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._retry_at = -math.inf  # the caller was told to come back no earlier than this
        self._penalty_until = -math.inf
        self._lock = threading.Lock()

    def penalize(self) -> None:
        """The caller ignored a Retry-After: the small burst for ``PENALTY_SECONDS`` from now."""
        with self._lock:
            now = self._clock()
            self._penalty_until = now + PENALTY_SECONDS
            self._tokens = min(self._tokens, float(self.capacity(now)))

    def capacity(self, now: float) -> int:
        """The burst in force at ``now``: smaller while the caller is penalised for ignoring Retry-After."""
        if now < self._penalty_until:
            return max(1, self.burst // PENALTY_BURST_DIVISOR)
        return self.burst

    def take(self, count: int = 1, *, taken: int = 0) -> float:
        """Take ``count`` tokens: 0.0 when granted, else the seconds until they would be (nothing is taken).

        ``taken`` is what the same request already took (the middleware's one token), so that a batch's rest
        is judged as one request of ``taken + count`` items.
        """
        with self._lock:
            now = self._clock()
            burst = self.capacity(now)
            self._tokens = min(float(burst), self._tokens + max(0.0, now - self._stamp) * self.rate)
            self._stamp = now
            need = min(count + taken, burst) - taken
            if self._tokens + _EPSILON >= need:
                self._tokens -= count
                return 0.0
            if now < self._retry_at:
                self._penalty_until = now + PENALTY_SECONDS
                self._tokens = min(self._tokens, float(self.capacity(now)))
            wait = (need - self._tokens) / self.rate
            self._retry_at = max(self._retry_at, now + retry_after(wait))
            return wait

    @property
    def tokens(self) -> float:
        """Tokens left as of the last take (negative while in debt); for tests and diagnostics."""
        with self._lock:
            return self._tokens


class RateLimiter:
    """One bucket per identity (kind and name), made on first use; identities are configured, so it is bounded."""

    def __init__(self, limits: LimitSettings, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, identity: Identity) -> TokenBucket:
        key = (identity.kind, identity.name)
        found = self._buckets.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                if identity.kind == DAEMON:
                    rate, burst = self.limits.push_rate, self.limits.push_burst
                else:
                    rate, burst = self.limits.operator_rate, self.limits.operator_burst
                found = TokenBucket(
                    identity.rate if identity.rate is not None else rate,
                    identity.burst if identity.burst is not None else burst,
                    self.clock,
                )
                self._buckets[key] = found
            return found


class RateLimited(falcon.HTTPTooManyRequests):
    field = "rate"


def retry_after(wait: float) -> int:
    """Whole seconds for ``Retry-After``, at least 1 (a client that retries at 0 s would only be refused again)."""
    return max(1, math.ceil(wait))


class RateLimit:
    """falcon middleware: one token per authenticated request; public routes are not limited."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        identity: Identity | None = getattr(req.context, "identity", None)
        if identity is None:
            return
        bucket = self.limiter.bucket(identity)
        if req.env.get(IGNORED_RETRY_AFTER):
            bucket.penalize()
        wait = bucket.take(1)
        if wait:
            raise _refusal(identity, wait, bucket)
        req.context.rate_bucket = bucket


def charge_items(req: falcon.Request, items: int) -> None:
    """Take the rest of a batch's ``items`` (the middleware took one); 429 when the bucket cannot pay."""
    bucket: TokenBucket | None = getattr(req.context, "rate_bucket", None)
    if bucket is None or items <= 1:
        return
    wait = bucket.take(items - 1, taken=1)
    if wait:
        raise _refusal(req.context.identity, wait, bucket, items)


def _refusal(identity: Identity, wait: float, bucket: TokenBucket, items: int = 1) -> RateLimited:
    what = f"a batch of {items} updates" if items > 1 else "this request"
    return RateLimited(
        title="rate limit exceeded",
        description=(
            f"{identity.name} may send {bucket.rate:g} per second (burst {bucket.burst}); "
            f"{what} would exceed it: retry after {retry_after(wait)} s"
        ),
        retry_after=retry_after(wait),
    )
