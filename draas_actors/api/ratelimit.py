"""Rate limits: token buckets per identity; excess -> 429 with ``Retry-After``.

A daemon has two buckets. The update bucket (``rate``/``burst``, or ``[limits] pushRate``/``pushBurst``) counts
updates: a batch costs one token per item, and its default burst (2,000) lets a resync of 1,000 instances
through with room for the events right after it (docs/security.md, "The burst covers a resync"). The request
bucket counts requests whatever their size: ``requestRate`` (by default twice the update rate) with a small burst
(``requestBurst``, or ``[limits] pushRequestBurst``, 10). Most of what an update costs the control plane is the
request around it (waitress, the app, the hand-offs between actor threads), so hundreds of single-update requests at
once would hold the interpreter for a quarter of a second while other daemons' pushes wait; the same updates in one
batch cost a fraction of that. The push client sends singles one at a time and a batch when a backlog has built
up, so it stays within both; a caller that fires single requests as fast as it can is refused after ten.
(Measured in bench/push_flood.py: with the update bucket alone a flooding identity's first 400 updates put the
good daemon's p99 at 3-4x its p99 alone; with the request bucket, about 1x.)

``RateLimit`` (middleware, after authentication) takes a request token and the first update token before the
body is even parsed, so a flood is refused at the cost of a dictionary lookup; the push resource then calls
``charge_items`` for the rest of a batch. Operators get one separate, more generous bucket (``operatorRate``/
``operatorBurst``), one token per request, against a stolen or runaway operator key.

The bucket is written here rather than taken from a library: it is twenty lines, needs an injectable clock,
"debt" for a batch larger than the burst, and a wait time for ``Retry-After``; the maintained Python limiters
(``limits``, ``pyrate-limiter``) bring storage backends and either lack the wait time or a partial take.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import falcon

from ..security import DAEMON, Identity, LimitSettings

Clock = Callable[[], float]
_EPSILON = 1e-9  # refill arithmetic in floats must not refuse a take that is due to the nanosecond

REQUEST_RATE_FACTOR = 2.0  # a daemon's requests per second, unless it says: twice its updates per second


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; thread-safe, O(1) per call.

    A take larger than the burst is granted when the bucket is full and leaves it in debt, so a batch of any
    size can pass but the long-run rate still holds: the next take waits until the debt is paid back.
    """

    __slots__ = ("_clock", "_lock", "_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self, count: int = 1, *, taken: int = 0) -> float:
        """Take ``count`` tokens: 0.0 when granted, else the seconds until they would be (nothing is taken).

        ``taken`` is what the same request already took (the middleware's one token), so that a batch's rest
        is judged as one request of ``taken + count`` items.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + max(0.0, now - self._stamp) * self.rate)
            self._stamp = now
            need = min(count + taken, self.burst) - taken
            if self._tokens + _EPSILON >= need:
                self._tokens -= count
                return 0.0
            return (need - self._tokens) / self.rate

    @property
    def tokens(self) -> float:
        """Tokens left as of the last take (negative while in debt); for tests and diagnostics."""
        with self._lock:
            return self._tokens


@dataclass(frozen=True)
class Buckets:
    """An identity's buckets: updates (operators: requests), and for daemons requests whatever their size."""

    updates: TokenBucket
    requests: TokenBucket | None


class RateLimiter:
    """The buckets of each identity (kind and name), made on first use; identities are configured, so it is bounded."""

    def __init__(self, limits: LimitSettings, clock: Clock = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str], Buckets] = {}
        self._lock = threading.Lock()

    def buckets(self, identity: Identity) -> Buckets:
        key = (identity.kind, identity.name)
        found = self._buckets.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = self._make(identity)
            return found

    def _make(self, identity: Identity) -> Buckets:
        limits = self.limits
        if identity.kind != DAEMON:
            return Buckets(TokenBucket(limits.operator_rate, limits.operator_burst, self.clock), None)
        rate = identity.rate if identity.rate is not None else limits.push_rate
        updates = TokenBucket(rate, identity.burst if identity.burst is not None else limits.push_burst, self.clock)
        requests = TokenBucket(
            identity.request_rate if identity.request_rate is not None else REQUEST_RATE_FACTOR * rate,
            identity.request_burst if identity.request_burst is not None else limits.push_request_burst,
            self.clock,
        )
        return Buckets(updates, requests)


class RateLimited(falcon.HTTPTooManyRequests):
    def __init__(self, field: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.field = field


def retry_after(wait: float) -> int:
    """Whole seconds for ``Retry-After``, at least 1 (a client that retries at 0 s would only be refused again)."""
    return max(1, math.ceil(wait))


class RateLimit:
    """falcon middleware: a request token and one update token per authenticated request; public routes are free.

    The request bucket is asked first: a refusal there leaves the update bucket untouched.
    """

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        identity: Identity | None = getattr(req.context, "identity", None)
        if identity is None:
            return
        buckets = self.limiter.buckets(identity)
        if buckets.requests is not None:
            wait = buckets.requests.take(1)
            if wait:
                raise _request_refusal(identity, wait, buckets.requests)
        wait = buckets.updates.take(1)
        if wait:
            raise _refusal(identity, wait, buckets.updates)
        req.context.rate_bucket = buckets.updates


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
    unit = "updates" if identity.kind == DAEMON else "requests"
    return RateLimited(
        "rate",
        title="rate limit exceeded",
        description=(
            f"{identity.name} may send {bucket.rate:g} {unit} per second (burst {bucket.burst}); "
            f"{what} would exceed it: retry after {retry_after(wait)} s"
        ),
        retry_after=retry_after(wait),
    )


def _request_refusal(identity: Identity, wait: float, bucket: TokenBucket) -> RateLimited:
    return RateLimited(
        "requestRate",
        title="rate limit exceeded",
        description=(
            f"{identity.name} may send {bucket.rate:g} requests per second ({bucket.burst} at once), whatever "
            f"their size; send updates in batches to send more: retry after {retry_after(wait)} s"
        ),
        retry_after=retry_after(wait),
    )
