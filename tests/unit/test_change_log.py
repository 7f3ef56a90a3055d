"""cli.ChangeLog: moves to Failed always at INFO, at most 20 other changes a second at INFO, the rest at DEBUG with
a periodic count line."""

from __future__ import annotations

import logging

import pytest

from draas_actors.cli import ChangeLog
from draas_actors.messages import StatusChanged
from draas_actors.model import InstanceId, Platform, Status


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def lines() -> Lines:
    return Lines()


def logger_with(lines: Lines, name: str) -> logging.Logger:
    logger = logging.getLogger(f"test-change-log.{name}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.handlers = [lines]
    return logger


def change(i: int, new: Status = Status.RUNNING) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId(f"i-{i}"), platform=Platform.DOCKER, old_status=Status.STOPPED, new_status=new,
        source="test", timestamp=0.0, metadata={},
    )


def test_the_first_twenty_changes_of_a_second_are_info_and_the_rest_debug(lines: Lines) -> None:
    clock = FakeClock()
    change_log = ChangeLog(logger_with(lines, "rate"), clock=clock)

    for i in range(50):
        change_log(change(i))

    assert len(lines.at(logging.INFO)) == 20
    assert len(lines.at(logging.DEBUG)) == 30
    assert lines.at(logging.INFO)[0] == "instance i-0: Stopped -> Running (source test)"


def test_a_move_to_failed_is_info_even_when_the_second_is_used_up(lines: Lines) -> None:
    clock = FakeClock()
    change_log = ChangeLog(logger_with(lines, "failed"), clock=clock)
    for i in range(20):
        change_log(change(i))

    change_log(change(99, Status.FAILED))
    change_log(change(100))

    assert lines.at(logging.INFO)[-1] == "instance i-99: Stopped -> Failed (source test)"
    assert lines.at(logging.DEBUG) == ["instance i-100: Stopped -> Running (source test)"]


def test_a_new_second_allows_twenty_more_at_info(lines: Lines) -> None:
    clock = FakeClock()
    change_log = ChangeLog(logger_with(lines, "second"), clock=clock)
    for i in range(25):
        change_log(change(i))

    clock.now += 1.0
    for i in range(25):
        change_log(change(i))

    assert len(lines.at(logging.INFO)) == 40
    assert len(lines.at(logging.DEBUG)) == 10


def test_the_changes_sent_to_debug_are_counted_in_one_info_line_per_period_and_at_close(lines: Lines) -> None:
    clock = FakeClock()
    change_log = ChangeLog(logger_with(lines, "count"), clock=clock, summary_every=10.0)
    for i in range(25):
        change_log(change(i))  # 5 to DEBUG

    clock.now += 10.0
    change_log(change(1))  # a new period: the count line comes first
    counts = [line for line in lines.at(logging.INFO) if "logged at DEBUG only" in line]
    expected = (
        "5 more changes in the last 10 s were logged at DEBUG only (at most 20 a second at INFO, besides moves "
        "to Failed)"
    )
    assert counts == [expected]

    for i in range(30):
        change_log(change(i))  # 1 + 30 in this second: 11 to DEBUG
    clock.now += 2.0
    change_log.close()
    assert [line for line in lines.at(logging.INFO) if "logged at DEBUG only" in line][-1].startswith(
        "11 more changes in the last 2 s"
    )


def test_nothing_sent_to_debug_means_no_count_line(lines: Lines) -> None:
    clock = FakeClock()
    change_log = ChangeLog(logger_with(lines, "none"), clock=clock)
    change_log(change(1))
    clock.now += 60.0
    change_log(change(2))
    change_log.close()

    assert lines.at(logging.INFO) == [
        "instance i-1: Stopped -> Running (source test)",
        "instance i-2: Stopped -> Running (source test)",
    ]
