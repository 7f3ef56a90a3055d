from __future__ import annotations

import pytest

from draas_actors.model import (
    TRANSITIONS,
    Platform,
    Status,
    can_transition,
    guess_platform,
    parse_status,
)


def test_every_status_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_no_status_transitions_to_itself() -> None:
    for old, allowed in TRANSITIONS.items():
        assert old not in allowed


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (Status.PENDING, Status.RUNNING),
        (Status.RUNNING, Status.FAILED),
        (Status.FAILED, Status.RESTARTING),
        (Status.RESTARTING, Status.RUNNING),
        (Status.RUNNING, Status.STOPPING),
        (Status.STOPPING, Status.STOPPED),
        (Status.STOPPED, Status.RUNNING),
        (Status.REMOVED, Status.PENDING),
        (Status.UNKNOWN, Status.RUNNING),
        (Status.FAILED, Status.STOPPED),
    ],
)
def test_lifecycle_transitions_are_allowed(old: Status, new: Status) -> None:
    assert can_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (Status.REMOVED, Status.STOPPED),
        (Status.REMOVED, Status.FAILED),
        (Status.REMOVED, Status.UNHEALTHY),
        (Status.STOPPED, Status.STOPPING),
        (Status.STOPPED, Status.UNHEALTHY),
        (Status.STOPPING, Status.PENDING),
        (Status.FAILED, Status.STOPPING),
    ],
)
def test_late_echoes_of_an_earlier_life_are_refused(old: Status, new: Status) -> None:
    assert not can_transition(old, new)


def test_upstream_names_map_to_canonical_statuses() -> None:
    assert parse_status("Created") is Status.PENDING
    assert parse_status("Error") is Status.FAILED
    assert parse_status("Running") is Status.RUNNING


def test_an_unknown_status_name_raises() -> None:
    with pytest.raises(ValueError):
        parse_status("Exploded")


def test_platform_is_guessed_from_upstream_source_names() -> None:
    assert guess_platform("DockerDaemon") is Platform.DOCKER
    assert guess_platform("AKSDaemon") is Platform.KUBERNETES
    assert guess_platform("someone") is None
