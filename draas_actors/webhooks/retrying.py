"""When to try a failing delivery again: pure arithmetic, with the clock and the randomness given."""

from __future__ import annotations

import email.utils
from collections.abc import Callable


def backoff(attempts: int, first: float, cap: float, rng: Callable[[], float]) -> float:
    """Seconds to wait after ``attempts`` failed attempts: ``first`` doubled each time up to ``cap``, with "equal
    jitter" (between half and all of it), so that the endpoints a shared outage failed do not retry in step."""
    base = min(cap, first * 2.0 ** min(attempts - 1, 62))
    return base / 2 + base / 2 * rng()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - now)


def next_delay(
    *, attempts: int, retry_after: float | None, first: float, cap: float, rng: Callable[[], float]
) -> float:
    """The wait before the next attempt: what the endpoint asked for (``Retry-After`` on a 429 or 503, at most
    ``cap``), else the backoff."""
    if retry_after is not None:
        return min(cap, retry_after)
    return backoff(attempts, first, cap, rng)


__all__ = ["backoff", "next_delay", "parse_retry_after"]
