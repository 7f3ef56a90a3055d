"""The Docker daemon's pure parts: event and listing mappers, the engine's clock, and its settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemons.docker_daemon import DEFAULT_LABEL_FILTER, load_settings
from daemons.docker_mapping import (
    INSTANCE_LABEL,
    EngineTime,
    Skip,
    StatusUpdate,
    event_time,
    exit_code_from_status,
    map_event,
    map_listing,
    parse_engine_time,
    removed_update,
    same_container_state,
)
from draas_actors.errors import ConfigError
from draas_actors.model import Status
from draas_actors.wire import parse_status_update

CONTAINER = "3f" * 32
TIME_NANO = 1_795_740_722_732_995_776


def event(action: str, **attributes: str) -> dict[str, Any]:
    """An event as the engine (API 1.41) sends it, labels among the attributes."""
    return {
        "status": action,
        "id": CONTAINER,
        "from": "draas-test-busybox:latest",
        "Type": "container",
        "Action": action,
        "Actor": {
            "ID": CONTAINER,
            "Attributes": {
                "draas.managed": "true",
                INSTANCE_LABEL: "web-1",
                "image": "draas-test-busybox:latest",
                "name": "web_1",
                **attributes,
            },
        },
        "scope": "local",
        "time": TIME_NANO // 1_000_000_000,
        "timeNano": TIME_NANO,
    }


def mapped(value: StatusUpdate | Skip) -> StatusUpdate:
    assert isinstance(value, StatusUpdate), value
    return value


# -- events ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "attributes", "status", "reason"),
    [
        ("create", {}, Status.PENDING, "created"),
        ("start", {}, Status.RUNNING, "started"),
        ("restart", {}, Status.RUNNING, "restarted"),
        ("unpause", {}, Status.RUNNING, "unpaused"),
        ("die", {"exitCode": "0"}, Status.STOPPED, "exited with code 0"),
        ("die", {"exitCode": "3"}, Status.FAILED, "exited with code 3"),
        ("die", {"exitCode": "137"}, Status.FAILED, "exited with code 137"),
        ("kill", {"signal": "9"}, Status.FAILED, "killed by signal 9"),
        ("oom", {}, Status.FAILED, "out of memory (OOM)"),
        ("health_status: unhealthy", {}, Status.UNHEALTHY, "health check failing"),
        ("health_status: healthy", {}, Status.RUNNING, "health check passing"),
        ("pause", {}, Status.STOPPED, "paused"),
        ("destroy", {}, Status.REMOVED, "removed"),
    ],
)
def test_each_mapped_event_gives_its_status_and_reason(
    action: str, attributes: dict[str, str], status: Status, reason: str
) -> None:
    update = mapped(map_event(event(action, **attributes)))
    assert update.status is status
    assert update.instance_id == "web-1"
    assert update.workload_id == CONTAINER
    assert update.metadata["reason"] == reason
    assert update.metadata["eventAction"] == action
    assert update.metadata["containerId"] == CONTAINER
    assert update.metadata["imageName"] == "draas-test-busybox:latest"
    assert update.metadata["containerName"] == "web_1"


def test_the_exit_code_is_in_the_metadata_only_when_the_event_has_one() -> None:
    assert mapped(map_event(event("die", exitCode="137"))).metadata["exitCode"] == 137
    assert "exitCode" not in mapped(map_event(event("start"))).metadata


def test_a_die_without_an_exit_code_is_a_failure() -> None:
    update = mapped(map_event(event("die")))
    assert update.status is Status.FAILED
    assert "exitCode" not in update.metadata


@pytest.mark.parametrize(
    "action",
    ["stop", "attach", "commit", "rename", "resize", "top", "update", "exec_create: sh -c true", "exec_die",
     "health_status: starting", "export", ""],
)
def test_other_actions_are_ignored(action: str) -> None:
    assert map_event(event(action)) is Skip.IGNORED_ACTION


def test_an_event_of_another_type_is_skipped() -> None:
    assert map_event({**event("create"), "Type": "image"}) is Skip.NOT_A_CONTAINER


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_labelled_container_without_an_instance_id_is_skipped(value: str | None) -> None:
    raw = event("start")
    if value is None:
        del raw["Actor"]["Attributes"][INSTANCE_LABEL]
    else:
        raw["Actor"]["Attributes"][INSTANCE_LABEL] = value
    assert map_event(raw) is Skip.NO_INSTANCE_ID


@pytest.mark.parametrize("value", ["team/web-1", "-web", "web 1"])
def test_a_container_whose_instance_id_the_api_would_refuse_is_skipped_event_or_listed(value: str) -> None:
    raw = event("start")
    raw["Actor"]["Attributes"][INSTANCE_LABEL] = value
    listed = row("running", "Up 1 second")
    listed["Labels"][INSTANCE_LABEL] = value

    assert map_event(raw) is Skip.INVALID_INSTANCE_ID
    assert map_listing(listed, 0.0) is Skip.INVALID_INSTANCE_ID


def test_observed_at_comes_from_time_nano_to_the_microsecond() -> None:
    update = mapped(map_event(event("start")))
    assert update.observed_at == pytest.approx(TIME_NANO / 1e9, abs=1e-6)
    assert event_time({"time": 1_700_000_000}) == 1_700_000_000.0


def test_events_a_nanosecond_apart_never_go_backwards() -> None:
    times = [event_time({"timeNano": TIME_NANO + n}) for n in range(0, 2000, 7)]
    assert times == sorted(times)


def test_an_older_engine_event_without_actor_still_maps() -> None:
    raw = {"status": "start", "id": CONTAINER, "from": "img", "time": 1_700_000_000}
    update = map_event(raw)
    # Without Actor attributes there are no labels, so no instance id: skipped, not crashed.
    assert update is Skip.NO_INSTANCE_ID


def test_the_wire_form_is_accepted_by_the_control_planes_parser() -> None:
    update = mapped(map_event(event("die", exitCode="1")))
    body = update.to_wire()
    assert body["source"] == "DockerDaemon"
    assert body["platform"] == "docker"
    report = parse_status_update(body, received_at=TIME_NANO / 1e9 + 0.5)  # received just after it happened
    assert report.status is Status.FAILED
    assert report.observed_at == pytest.approx(TIME_NANO / 1e9, abs=1e-6)
    assert report.metadata["exitCode"] == "1"
    assert report.metadata["eventAction"] == "die"


# -- the listing ------------------------------------------------------------------------------------


def row(state: str, status: str, **labels: str) -> dict[str, Any]:
    """A row of GET /containers/json?all=1 (the fields the mapper reads)."""
    return {
        "Id": CONTAINER,
        "Names": ["/web_1"],
        "Image": "draas-test-busybox:latest",
        "State": state,
        "Status": status,
        "Labels": {"draas.managed": "true", INSTANCE_LABEL: "web-1", **labels},
    }


@pytest.mark.parametrize(
    ("state", "status_text", "status", "exit_code"),
    [
        ("created", "Created", Status.PENDING, None),
        ("running", "Up 3 seconds", Status.RUNNING, None),
        ("running", "Up 3 seconds (healthy)", Status.RUNNING, None),
        ("running", "Up 3 seconds (health: starting)", Status.RUNNING, None),
        ("running", "Up 3 seconds (unhealthy)", Status.UNHEALTHY, None),
        ("paused", "Up 3 seconds (Paused)", Status.STOPPED, None),
        ("restarting", "Restarting (1) 2 seconds ago", Status.RESTARTING, None),
        ("exited", "Exited (0) 5 seconds ago", Status.STOPPED, 0),
        ("exited", "Exited (1) Less than a second ago", Status.FAILED, 1),
        ("exited", "Exited (137) About a minute ago", Status.FAILED, 137),
        ("dead", "Dead", Status.FAILED, None),
        ("removing", "Removal In Progress", Status.STOPPING, None),
    ],
)
def test_each_listing_state_gives_its_status(
    state: str, status_text: str, status: Status, exit_code: int | None
) -> None:
    update = mapped(map_listing(row(state, status_text), 1_700_000_000.5))
    assert update.status is status
    assert update.observed_at == 1_700_000_000.5
    assert update.metadata["containerState"] == state
    assert update.metadata["containerId"] == CONTAINER
    assert update.metadata["containerName"] == "web_1"
    assert update.metadata.get("exitCode") == exit_code


def test_a_paused_container_says_so_in_its_reason() -> None:
    assert mapped(map_listing(row("paused", "Up 1 second (Paused)"), 0.0)).metadata["reason"] == "paused"


def test_an_unknown_listing_state_is_skipped() -> None:
    assert map_listing(row("teleporting", "?"), 0.0) is Skip.UNKNOWN_STATE


def test_a_listed_container_without_an_instance_id_is_skipped() -> None:
    listed = row("running", "Up 1 second")
    del listed["Labels"][INSTANCE_LABEL]
    assert map_listing(listed, 0.0) is Skip.NO_INSTANCE_ID


@pytest.mark.parametrize(
    ("text", "code"),
    [("Exited (0) 1 second ago", 0), ("Exited (255) 1 hour ago", 255), ("Exited (-1) now", -1),
     ("Up 2 minutes", None), ("", None)],
)
def test_the_exit_code_is_read_from_the_status_text(text: str, code: int | None) -> None:
    assert exit_code_from_status(text) == code


def test_a_vanished_container_is_reported_removed() -> None:
    update = removed_update(container_id=CONTAINER, instance_id="web-1", observed_at=5.0, reason="gone", image="i")
    assert update.status is Status.REMOVED
    assert update.to_wire()["metadata"] == {"containerId": CONTAINER, "imageName": "i", "reason": "gone"}


# -- what counts as changed at a resync --------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "attributes", "state", "status_text"),
    [
        ("start", {}, "running", "Up 2 seconds"),
        ("health_status: healthy", {}, "running", "Up 2 minutes (healthy)"),
        ("pause", {}, "paused", "Up 2 seconds (Paused)"),
        ("die", {"exitCode": "0"}, "exited", "Exited (0) 1 second ago"),
        ("die", {"exitCode": "3"}, "exited", "Exited (3) 1 hour ago"),
        ("create", {}, "created", "Created"),
    ],
)
def test_a_listing_of_the_state_an_event_reported_is_the_same_state(
    action: str, attributes: dict[str, str], state: str, status_text: str
) -> None:
    reported = mapped(map_event(event(action, **attributes)))
    listed = mapped(map_listing(row(state, status_text), 1_800_000_000.0))
    assert reported.metadata != listed.metadata  # eventAction against containerState: not what decides
    assert same_container_state(reported, listed)


@pytest.mark.parametrize(
    ("action", "attributes", "state", "status_text"),
    [
        ("start", {}, "exited", "Exited (0) 1 second ago"),  # another status
        ("die", {"exitCode": "3"}, "exited", "Exited (4) 1 second ago"),  # another exit code
        ("pause", {}, "exited", "Exited (0) 1 second ago"),  # Stopped both times, but an exit now
        ("start", {}, "running", "Up 2 seconds (unhealthy)"),
    ],
)
def test_another_status_or_exit_code_is_a_change(
    action: str, attributes: dict[str, str], state: str, status_text: str
) -> None:
    reported = mapped(map_event(event(action, **attributes)))
    assert not same_container_state(reported, mapped(map_listing(row(state, status_text), 0.0)))


def test_the_same_state_in_another_container_is_a_change() -> None:
    reported = mapped(map_listing(row("running", "Up 1 second"), 0.0))
    moved = mapped(map_listing({**row("running", "Up 1 second"), "Id": "4a" * 32}, 0.0))
    assert not same_container_state(reported, moved)


# -- the engine's clock ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("2026-11-27T00:52:02.717456732Z", 1_795_740_722_717_456_732),
        ("2026-11-27T00:52:02Z", 1_795_740_722_000_000_000),
        ("2026-11-27T00:52:02.5Z", 1_795_740_722_500_000_000),
        ("2026-11-27T01:52:02.717456732+01:00", 1_795_740_722_717_456_732),
        ("2026-11-26T19:22:02.000000001-05:30", 1_795_740_722_000_000_001),
        ("2026-11-27T00:52:02.1234567891234Z", 1_795_740_722_123_456_789),
    ],
)
def test_the_engine_time_keeps_every_nanosecond(text: str, nanos: int) -> None:
    assert parse_engine_time(text).nanos == nanos


@pytest.mark.parametrize("text", ["", "yesterday", "2026-11-27 00:52:02", "2026-11-27T00:52:02"])
def test_a_bad_engine_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_engine_time(text)


def test_the_since_parameter_is_seconds_dot_nanoseconds() -> None:
    assert EngineTime(1_795_740_722_000_000_042).since_param == "1795740722.000000042"
    assert EngineTime(1_795_740_722_717_456_732).seconds == pytest.approx(1_795_740_722.717456732)


# -- settings ---------------------------------------------------------------------------------------

BASE = {"CONTROL_PLANE_URL": "http://127.0.0.1:8088", "DRAAS_API_KEY": "k" * 32}


def test_settings_have_defaults_for_all_but_the_url_and_key() -> None:
    settings = load_settings(BASE)
    assert settings.control_plane_url == "http://127.0.0.1:8088"
    assert settings.label_filter == (DEFAULT_LABEL_FILTER,)
    assert settings.spool_path == Path("var/docker-daemon.spool")
    push = settings.push_settings()
    assert (push.url, push.api_key, push.spool_path) == ("http://127.0.0.1:8088", "k" * 32, settings.spool_path)


def test_the_label_filter_takes_several_labels() -> None:
    settings = load_settings({**BASE, "DRAAS_LABEL_FILTER": "team=a, draas.managed=true,monitored"})
    assert settings.label_filter == ("team=a", "draas.managed=true", "monitored")


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"CONTROL_PLANE_URL": ""}, "CONTROL_PLANE_URL"),
        ({"CONTROL_PLANE_URL": "127.0.0.1:8088"}, "CONTROL_PLANE_URL"),
        ({"CONTROL_PLANE_URL": "ftp://host"}, "CONTROL_PLANE_URL"),
        ({"DRAAS_API_KEY": " "}, "DRAAS_API_KEY"),
        ({"DRAAS_LABEL_FILTER": ""}, "DRAAS_LABEL_FILTER"),
        ({"DRAAS_LABEL_FILTER": "a=b,,c"}, "DRAAS_LABEL_FILTER"),
        ({"DRAAS_LABEL_FILTER": "=x"}, "DRAAS_LABEL_FILTER"),
        ({"DRAAS_SPOOL_MAX_ITEMS": "0"}, "DRAAS_SPOOL_MAX_ITEMS"),
        ({"DRAAS_SPOOL_MAX_ITEMS": "1.5"}, "DRAAS_SPOOL_MAX_ITEMS"),
        ({"DRAAS_SHUTDOWN_FLUSH_SECONDS": "-1"}, "DRAAS_SHUTDOWN_FLUSH_SECONDS"),
        ({"DRAAS_RECONNECT_MAX_SECONDS": "nan"}, "DRAAS_RECONNECT_MAX_SECONDS"),
        ({"DRAAS_LOG_LEVEL": "LOUD"}, "DRAAS_LOG_LEVEL"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(override: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **override})
    assert caught.value.field == variable
    assert caught.value.message.startswith(variable)
