"""Restart policy and backoff maths: pure functions, no clocks, no randomness of their own.

Defaults, compared with the peers an operator already knows:

- supervisord restarts "unexpected" exits (``autorestart=unexpected``, ``exitcodes=0``) immediately while the
  process had reached RUNNING, and gives up after ``startretries=3`` quick failures.
- Docker doubles a delay from 100 ms on each restart and resets it once the container ran 10 s; ``on-failure``
  takes an optional retry cap, other modes never give up.
- Kubernetes backs off 10 s, 20 s, 40 s ... capped at 5 min, reset after 10 min of good running, and never gives up.

We restart on failure (``on-failure``), the first restart of a series at once (a crash after a long healthy run
should not wait), then Docker's doubling from 100 ms, capped at 30 s, with +/-20 % jitter so that many instances
crashing together do not restart in lock-step. A series resets after 10 s of running (Docker's figure). A crash
loop gives up after 10 restarts within 5 minutes, which the doubling reaches after about 51 s (0.1 + 0.2 + ... +
25.6 s, each delay +/-20 %): long enough to ride out a dependency's brief outage, short enough that an operator is
told within a minute that something is broken.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

BUDGET_EXHAUSTED = "restart budget exhausted"  # the reason a policy gives up with, at the end of lastReason


class RestartMode(str, enum.Enum):
    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    mode: RestartMode = RestartMode.ON_FAILURE
    success_exit_codes: frozenset[int] = frozenset({0})
    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.2
    reset_after: float = 10.0
    max_restarts: int = 10
    window: float = 300.0

    def __post_init__(self) -> None:
        # Infinity would pass the range checks below (NaN fails them all): refused here for every source of a policy.
        numbers = {
            "initialBackoff": self.initial_backoff, "multiplier": self.multiplier, "maxBackoff": self.max_backoff,
            "jitter": self.jitter, "resetAfter": self.reset_after, "window": self.window,
        }
        for field, number in numbers.items():
            if not math.isfinite(number):
                raise ValueError(f"restartPolicy.{field} is out of range")
        checks = {
            "initialBackoff": self.initial_backoff >= 0,
            "multiplier": self.multiplier >= 1,
            "maxBackoff": self.max_backoff >= self.initial_backoff,
            "jitter": 0 <= self.jitter < 1,
            "resetAfter": self.reset_after >= 0,
            "maxRestarts": self.max_restarts >= 0,
            "window": self.window > 0,
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(f"restartPolicy.{field} is out of range")


@dataclass(frozen=True, kw_only=True)
class RestartHistory:
    """What the policy remembers between restarts (persisted with the instance)."""

    restart_times: tuple[float, ...] = ()  # wall-clock times of restarts, pruned to the window
    series: int = 0  # restarts since the instance last ran for reset_after


@dataclass(frozen=True)
class Restart:
    delay: float
    history: RestartHistory


@dataclass(frozen=True)
class GiveUp:
    reason: str
    history: RestartHistory


def is_failure(policy: RestartPolicy, exit_code: int | None) -> bool:
    """An exit is a failure unless its code is a success code; an unknown code counts as failure."""
    return exit_code is None or exit_code not in policy.success_exit_codes


def wants_restart(policy: RestartPolicy, *, exit_code: int | None, operator_stopped: bool) -> bool:
    """Whether the policy restarts an instance that has just exited."""
    if operator_stopped or policy.mode is RestartMode.NEVER:
        return False
    if policy.mode is RestartMode.ON_FAILURE:
        return is_failure(policy, exit_code)
    return True


def starts_with_control_plane(policy: RestartPolicy, *, operator_stopped: bool) -> bool:
    """Docker's distinction: ``always`` undoes an operator's stop when the control plane starts again."""
    return policy.mode is RestartMode.ALWAYS or (
        policy.mode is RestartMode.UNLESS_STOPPED and not operator_stopped
    )


def backoff_delay(policy: RestartPolicy, series: int, rand: float) -> float:
    """Delay before restart number ``series`` (1-based) of a series; ``rand`` is uniform in [0, 1).

    The first restart of a series is immediate; then ``initial * multiplier**(n-2)``, capped, with
    symmetric jitter of ``+/- jitter`` of the base, never above ``max_backoff``.
    """
    if series <= 1:
        return 0.0
    try:
        grown = policy.initial_backoff * policy.multiplier ** (series - 2)
    except OverflowError:  # a crash loop whose budget never runs out: the series is long past the cap
        grown = math.inf if policy.initial_backoff > 0 else 0.0
    base = min(policy.max_backoff, grown)
    jittered = base * (1.0 + policy.jitter * (2.0 * rand - 1.0))
    return max(0.0, min(policy.max_backoff, jittered))


def plan_restart(
    policy: RestartPolicy, history: RestartHistory, *, now: float, ran_for: float, rand: float
) -> Restart | GiveUp:
    """Decide the next restart after an exit the policy wants restarted."""
    recent = tuple(t for t in history.restart_times if t > now - policy.window)
    series = 0 if ran_for >= policy.reset_after else history.series
    if len(recent) >= policy.max_restarts:
        return GiveUp(
            BUDGET_EXHAUSTED,
            dataclasses.replace(history, restart_times=recent, series=series),
        )
    series += 1
    delay = backoff_delay(policy, series, rand)
    return Restart(delay, RestartHistory(restart_times=(*recent, now + delay), series=series))
