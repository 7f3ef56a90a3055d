"""The fair queue behind waitress's worker threads: callers take turns, each within its limit and its hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from draas_actors.api.dispatch import (
    BATCH_BYTES,
    FairQueue,
    caller_of,
    caller_of_environ,
)


@dataclass
class FakeRequest:
    headers: dict[str, str]
    content_length: int = 0


@dataclass
class FakeChannel:
    """What the dispatcher reads of a waitress channel: its pending requests and its peer address."""

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    addr: tuple[str, int] = ("10.0.0.1", 5000)
    body_bytes: int = 0

    @property
    def requests(self) -> list[FakeRequest]:
        return [FakeRequest(self.headers, self.body_bytes)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def task(name: str, key: str, body_bytes: int = 0) -> FakeChannel:
    return FakeChannel(name, {"X_API_KEY": key}, body_bytes=body_bytes)


def names(queue: FairQueue, count: int) -> list[str]:
    taken: list[Any] = [queue.take() for _ in range(count)]
    return [t.name for _, t in taken]


def test_callers_take_turns_whatever_order_their_requests_came_in() -> None:
    queue = FairQueue(per_caller=10)
    for i in range(3):
        queue.append(task(f"rogue{i}", "rogue-key"))
    queue.append(task("good", "good-key"))

    assert names(queue, 4) == ["rogue0", "good", "rogue1", "rogue2"]
    assert len(queue) == 0


def test_a_caller_at_its_limit_waits_until_one_of_its_requests_is_done() -> None:
    queue = FairQueue(per_caller=2)
    for i in range(4):
        queue.append(task(f"rogue{i}", "rogue-key"))

    assert names(queue, 2) == ["rogue0", "rogue1"]
    assert not queue.runnable()
    with pytest.raises(LookupError):
        queue.take()
    queue.append(task("good", "good-key"))
    assert names(queue, 1) == ["good"]

    queue.done(caller_of(task("x", "rogue-key")))

    assert queue.runnable()
    assert names(queue, 1) == ["rogue2"]


def test_a_held_caller_waits_out_its_hold_while_others_go_ahead() -> None:
    clock = FakeClock()
    queue = FairQueue(per_caller=2, clock=clock)
    queue.append(task("rogue", "rogue-key"))
    queue.hold(caller_of(task("x", "rogue-key")), 1.0)
    queue.append(task("good", "good-key"))

    assert names(queue, 1) == ["good"]
    assert not queue.runnable()
    assert queue.next_release() == pytest.approx(1.0)
    clock.now += 1.0
    assert names(queue, 1) == ["rogue"]
    assert queue.next_release() is None


def test_shutdown_can_drain_every_task_regardless_of_limits_and_holds() -> None:
    queue = FairQueue(per_caller=1)
    for i in range(3):
        queue.append(task(f"t{i}", "k"))
    queue.hold(caller_of(task("x", "k")), 60.0)

    drained = [queue.popleft().name for _ in range(3)]

    assert drained == ["t0", "t1", "t2"] and len(queue) == 0


def test_a_caller_is_its_credential_else_its_address_the_same_from_a_channel_or_an_environment() -> None:
    by_key = FakeChannel("a", {"X_API_KEY": "k1"})
    by_bearer = FakeChannel("b", {"AUTHORIZATION": "Bearer k2"})
    by_cert = FakeChannel("c", {"X_CLIENT_SUBJECT": "CN=host"})
    anonymous = FakeChannel("d", {}, ("10.1.2.3", 4000))

    assert len({caller_of(c) for c in (by_key, by_bearer, by_cert, anonymous)}) == 4
    assert caller_of(by_key) == caller_of_environ({"HTTP_X_API_KEY": "k1", "REMOTE_ADDR": "10.0.0.1"})
    assert caller_of(by_bearer) == caller_of_environ({"HTTP_AUTHORIZATION": "Bearer k2"})
    assert caller_of(anonymous) == caller_of_environ({"REMOTE_ADDR": "10.1.2.3"})


def test_a_batch_counts_by_its_size_so_a_caller_has_one_large_batch_in_service_at_a_time() -> None:
    queue = FairQueue(per_caller=2)
    queue.append(task("batch0", "rogue-key", body_bytes=BATCH_BYTES * 25))
    queue.append(task("batch1", "rogue-key", body_bytes=BATCH_BYTES * 25))
    queue.append(task("good", "good-key", body_bytes=120))

    assert names(queue, 2) == ["batch0", "good"]
    assert not queue.runnable()  # batch1 waits: batch0 holds both of the rogue's threads
    queue.done(caller_of(task("x", "rogue-key")), queue.weight(task("batch0", "rogue-key", BATCH_BYTES * 25)))
    assert names(queue, 1) == ["batch1"]


def test_single_updates_still_get_per_caller_threads_and_a_batch_waits_for_room() -> None:
    queue = FairQueue(per_caller=2)
    queue.append(task("single0", "k", body_bytes=200))
    queue.append(task("batch", "k", body_bytes=BATCH_BYTES))
    queue.append(task("single1", "k", body_bytes=200))

    assert queue.weight(task("single", "k", 200)) == 1
    assert queue.weight(task("batch", "k", BATCH_BYTES)) == 2
    assert names(queue, 1) == ["single0"]
    assert not queue.runnable()  # the batch (2) does not fit beside a single (1) within 2
    queue.done(caller_of(task("x", "k")), 1)
    assert names(queue, 1) == ["batch"]  # alone, it may always start


def test_a_caller_refused_again_soon_after_its_hold_is_held_twice_as_long_up_to_eight_times() -> None:
    clock = FakeClock()
    queue = FairQueue(per_caller=2, clock=clock)
    caller = caller_of(task("x", "rogue-key"))

    lengths = []
    for _ in range(5):
        lengths.append(queue.hold(caller, 1.0))
        clock.now = queue.held[caller] + 0.1  # released, and refused again at once

    assert lengths == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_a_caller_that_stays_within_its_limit_for_a_hold_length_starts_again_at_the_first_hold() -> None:
    clock = FakeClock()
    queue = FairQueue(per_caller=2, clock=clock)
    caller = caller_of(task("x", "k"))
    assert queue.hold(caller, 1.0) == 1.0
    clock.now += 1.5
    assert queue.hold(caller, 1.0) == 2.0

    clock.now += 2.0 + 2.0  # its 2 s hold ended 2 s ago without a refusal

    assert queue.hold(caller, 1.0) == 1.0
