"""Commit tickets: a receipt is done only when every item is settled, and a failure or a timeout is a 503."""

from __future__ import annotations

import threading

import pytest

from draas_actors.commit import Outcome, Receipt, barrier
from draas_actors.errors import Unavailable


def test_a_receipt_is_done_once_every_item_is_settled_with_its_outcome() -> None:
    receipt = Receipt(3)
    acks = [receipt.ticket(i).ack(outcome) for i, outcome in enumerate([Outcome.APPLIED, Outcome.STALE, None])]
    for ack in acks[:2]:
        ack.committed()
    with pytest.raises(Unavailable):
        receipt.wait(0.01)  # one item is not settled yet
    settled = threading.Thread(target=acks[2].committed)
    settled.start()
    assert receipt.wait(5.0) == [Outcome.APPLIED, Outcome.STALE, None]
    settled.join()


def test_a_failed_commit_fails_the_whole_receipt_as_unavailable() -> None:
    receipt = Receipt(2)
    receipt.ticket(0).ack(Outcome.APPLIED).committed()
    receipt.ticket(1).ack(Outcome.APPLIED).failed("database or disk is full")
    with pytest.raises(Unavailable) as refused:
        receipt.wait(5.0)
    assert "disk is full" in refused.value.message and "nothing was acknowledged" in refused.value.message


def test_an_empty_receipt_and_a_settled_barrier_need_no_wait() -> None:
    assert Receipt(0).wait(0.0) == []
    receipt, sync = barrier()
    sync.ack.committed()
    assert receipt.wait(0.0) == [Outcome.APPLIED]


def test_a_receipt_can_be_waited_for_by_several_threads_and_again_once_done() -> None:
    receipt = Receipt(1)
    answers: list[list[Outcome | None]] = []
    waiters = [threading.Thread(target=lambda: answers.append(receipt.wait(5.0))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    receipt.ticket(0).ack(Outcome.STALE).committed()
    for waiter in waiters:
        waiter.join(5.0)
    assert answers == [[Outcome.STALE]] * 3 and receipt.wait(0.0) == [Outcome.STALE]
    receipt.fail("late")  # after it is done: the latch stays open, a later wait hears the failure
    with pytest.raises(Unavailable):
        receipt.wait(0.0)
