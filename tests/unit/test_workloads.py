"""The platform-specific halves of an instance (``draas_actors/workloads``), driven through a fake host."""

from __future__ import annotations

import pytest

from draas_actors.model import Status
from draas_actors.workloads.pod import PodVerdict, judge_pod_report

CURRENT = "default/web-a"
OTHER = "default/web-b"
GOING = [Status.STOPPING, Status.STOPPED, Status.FAILED, Status.REMOVED, Status.RESTARTING, Status.UNKNOWN]
THERE = [Status.PENDING, Status.STARTING, Status.RUNNING, Status.UNHEALTHY]

# -- which pod a report is about -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_every_report_about_the_current_pod_applies(status: Status) -> None:
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", list(Status))
def test_the_first_pod_reported_applies_whatever_it_says(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=None, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", list(Status))
def test_a_report_that_names_no_pod_applies(status: Status) -> None:
    assert judge_pod_report(None, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.APPLY


@pytest.mark.parametrize("status", THERE)
def test_another_pod_that_is_there_takes_over(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=()) is PodVerdict.APPLY


@pytest.mark.parametrize("status", GOING)
def test_another_pod_that_is_going_or_gone_changes_nothing(status: Status) -> None:
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=()) is PodVerdict.IGNORE


@pytest.mark.parametrize("status", [s for s in GOING if s is not Status.REMOVED])
def test_a_pod_we_deleted_is_never_an_exit(status: Status) -> None:
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.IGNORE
    assert judge_pod_report(OTHER, status, current=CURRENT, deleted=[OTHER]) is PodVerdict.IGNORE


def test_the_removal_of_the_pod_we_deleted_matters_only_while_nothing_replaced_it() -> None:
    assert judge_pod_report(CURRENT, Status.REMOVED, current=CURRENT, deleted=[CURRENT]) is PodVerdict.GONE
    assert judge_pod_report(OTHER, Status.REMOVED, current=CURRENT, deleted=[OTHER]) is PodVerdict.IGNORE


@pytest.mark.parametrize("status", THERE)
def test_a_pod_we_deleted_that_is_there_again_is_a_new_pod_of_the_same_name(status: Status) -> None:
    # A StatefulSet recreates web-0 as web-0.
    assert judge_pod_report(CURRENT, status, current=CURRENT, deleted=[CURRENT]) is PodVerdict.RECREATED


