from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from draas_actors.errors import InvalidInput, MalformedInput
from draas_actors.messages import StatusChanged, StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord, ProcessSpec, Runtime
from draas_actors.wire import (
    change_view,
    format_time,
    instance_view,
    parse_registration,
    parse_status_update,
    parse_status_updates,
)

RECEIVED = 1_700_000_000.0
GOOD: dict[str, Any] = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"}


def _invalid(body: Any, **kwargs: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_status_update(body, received_at=RECEIVED, **kwargs)
    return caught.value


# -- single status updates ----------------------------------------------------------------------------


def test_a_minimal_update_becomes_a_report_observed_when_received() -> None:
    report = parse_status_update(GOOD, received_at=RECEIVED)
    assert report == StatusReport(
        instance_id=InstanceId("web-1"),
        status=Status.RUNNING,
        source="DockerDaemon",
        observed_at=RECEIVED,
        metadata={},
        platform=None,
    )


@pytest.mark.parametrize("missing", ["instanceId", "status", "source"])
def test_a_missing_required_field_is_named(missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    error = _invalid(body)
    assert error.field == missing
    assert "required" in error.message


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"instanceId": 5}, "instanceId"),
        ({"instanceId": ""}, "instanceId"),
        ({"instanceId": "-starts-with-a-dash"}, "instanceId"),
        ({"status": 3}, "status"),
        ({"source": ["a"]}, "source"),
        ({"source": ""}, "source"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata.nested"),
        ({"platform": "vm"}, "platform"),
        ({"observedAt": True}, "observedAt"),
        ({"observedAt": [1]}, "observedAt"),
    ],
)
def test_a_field_of_the_wrong_type_or_shape_is_named(override: dict[str, Any], field: str) -> None:
    assert _invalid({**GOOD, **override}).field == field


def test_an_unknown_extra_field_is_named() -> None:
    error = _invalid({**GOOD, "colour": "blue"})
    assert error.field == "colour"
    assert "colour" in error.message


def test_an_unknown_status_is_invalid_input_on_the_status_field() -> None:
    error = _invalid({**GOOD, "status": "Exploded"})
    assert error.field == "status"
    assert "Exploded" in error.message
    assert "Running" in error.message  # says what would have been accepted


@pytest.mark.parametrize(("alias", "status"), [("Created", Status.PENDING), ("Error", Status.FAILED)])
def test_the_upstream_status_names_are_accepted_as_aliases(alias: str, status: Status) -> None:
    assert parse_status_update({**GOOD, "status": alias}, received_at=RECEIVED).status is status


@pytest.mark.parametrize("status", list(Status))
def test_every_canonical_status_is_accepted(status: Status) -> None:
    assert parse_status_update({**GOOD, "status": status.value}, received_at=RECEIVED).status is status


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        ("2024-01-02T03:04:05Z", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()),
        ("2024-01-02T03:04:05.250Z", dt.datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=dt.UTC).timestamp()),
        ("2024-01-02T05:04:05+02:00", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()),
        ("2024-01-01T22:04:05-05:00", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()),
        (1_600_000_000, 1_600_000_000.0),
        (1_600_000_000.75, 1_600_000_000.75),
    ],
)
def test_observed_at_is_read_as_rfc_3339_or_epoch_seconds(observed: Any, expected: float) -> None:
    received = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()  # after all of them: none is ahead of the clock
    report = parse_status_update({**GOOD, "observedAt": observed}, received_at=received)
    assert report.observed_at == pytest.approx(expected)


@pytest.mark.parametrize("observed", ["yesterday", "2024-13-45T00:00:00Z", ""])
def test_an_unreadable_observed_at_is_named(observed: str) -> None:
    error = _invalid({**GOOD, "observedAt": observed})
    assert error.field == "observedAt"


def test_metadata_scalars_are_turned_into_text() -> None:
    metadata = {"text": "x", "int": 3, "float": 1.5, "yes": True, "no": False, "nothing": None}
    report = parse_status_update({**GOOD, "metadata": metadata}, received_at=RECEIVED)
    assert report.metadata == {"text": "x", "int": "3", "float": "1.5", "yes": "true", "no": "false", "nothing": ""}


def test_an_explicit_platform_is_carried_for_auto_creation() -> None:
    report = parse_status_update({**GOOD, "platform": "kubernetes"}, received_at=RECEIVED)
    assert report.platform is Platform.KUBERNETES


@pytest.mark.parametrize("body", ["text", 3, None, [GOOD], True])
def test_a_body_that_is_not_an_object_is_malformed(body: Any) -> None:
    with pytest.raises(MalformedInput):
        parse_status_update(body, received_at=RECEIVED)


def test_errors_under_a_prefix_name_the_item() -> None:
    error = _invalid({**GOOD, "status": "Nope"}, prefix="[4]")
    assert error.field == "[4].status"


# -- batches ------------------------------------------------------------------------------------------


def test_a_batch_gives_one_result_per_item_and_names_the_bad_items_fields() -> None:
    results = parse_status_updates(
        [GOOD, {**GOOD, "status": "Exploded"}, {"status": "Running", "source": "x"}, "not an object"],
        received_at=RECEIVED,
    )
    assert len(results) == 4
    assert isinstance(results[0], StatusReport)
    assert [r.field for r in results[1:] if isinstance(r, InvalidInput)] == ["[1].status", "[2].instanceId", "[3]"]
    assert all(isinstance(r, InvalidInput) for r in results[1:])


def test_a_good_item_after_a_bad_one_is_still_parsed() -> None:
    results = parse_status_updates([{**GOOD, "colour": 1}, {**GOOD, "instanceId": "web-2"}], received_at=RECEIVED)
    assert isinstance(results[0], InvalidInput) and results[0].field == "[0].colour"
    assert isinstance(results[1], StatusReport) and results[1].instance_id == "web-2"


# -- registrations ------------------------------------------------------------------------------------


def _invalid_registration(body: Any, prefix: str = "") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_registration(body, prefix=prefix)
    return caught.value


def test_a_process_with_a_command_is_registered_with_its_spec() -> None:
    record = parse_registration(
        {
            "instanceId": "worker",
            "platform": "process",
            "process": {"command": ["sleep", "60"], "cwd": "/tmp", "env": {"A": "1"}, "stopTimeout": 2.5},
        }
    )
    assert record.instance_id == "worker"
    assert record.platform is Platform.PROCESS
    assert record.status is Status.PENDING
    assert record.process == ProcessSpec(command=("sleep", "60"), cwd="/tmp", env={"A": "1"}, stop_timeout=2.5)
    assert record.restart_policy == RestartPolicy()


def test_a_process_with_a_pid_is_registered_for_adoption() -> None:
    record = parse_registration({"instanceId": "adopted", "platform": "process", "process": {"pid": 4242}})
    assert record.process is not None
    assert record.process.adopt_pid == 4242
    assert record.process.command == ()


def test_a_pid_written_as_a_whole_float_is_adopted_as_an_int() -> None:
    # JSON Schema counts 4242.0 as an integer; psutil does not (found by the API fuzz test: a 500).
    record = parse_registration({"instanceId": "adopted", "platform": "process", "process": {"pid": 4242.0}})
    assert record.process is not None
    assert record.process.adopt_pid == 4242 and type(record.process.adopt_pid) is int


def test_a_process_with_neither_command_nor_pid_names_process_command() -> None:
    error = _invalid_registration({"instanceId": "p", "platform": "process", "process": {"cwd": "/tmp"}})
    assert error.field == "process.command"


def test_a_process_instance_without_a_process_section_names_it() -> None:
    assert _invalid_registration({"instanceId": "p", "platform": "process"}).field == "process"


def test_a_process_section_on_a_docker_instance_is_refused() -> None:
    error = _invalid_registration({"instanceId": "d", "platform": "docker", "process": {"command": ["x"]}})
    assert error.field == "process"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "docker"}, "instanceId"),
        ({"instanceId": "x"}, "platform"),
        ({"instanceId": "x", "platform": "vm"}, "platform"),
        ({"instanceId": "x", "platform": "docker", "extra": 1}, "extra"),
        ({"instanceId": "x", "platform": "process", "process": {"command": []}}, "process.command"),
        ({"instanceId": "x", "platform": "process", "process": {"command": "ls"}}, "process.command"),
        ({"instanceId": "x", "platform": "process", "process": {"command": ["ls", 3]}}, "process.command[1]"),
        ({"instanceId": "x", "platform": "process", "process": {"command": ["ls"], "env": {"A": 1}}}, "process.env.A"),
        ({"instanceId": "x", "platform": "process", "process": {"pid": 0}}, "process.pid"),
        ({"instanceId": "x", "platform": "process", "process": {"pid": 1, "user": "root"}}, "process.user"),
    ],
)
def test_a_bad_registration_names_the_field(body: dict[str, Any], field: str) -> None:
    assert _invalid_registration(body).field == field


def test_a_registration_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedInput):
        parse_registration(["instanceId", "x"])


def test_restart_policy_fields_are_mapped_from_their_wire_names() -> None:
    record = parse_registration(
        {
            "instanceId": "d",
            "platform": "docker",
            "restartPolicy": {
                "mode": "unless-stopped",
                "successExitCodes": [0, 3],
                "initialBackoff": 0.5,
                "multiplier": 3,
                "maxBackoff": 20,
                "jitter": 0.1,
                "resetAfter": 15,
                "maxRestarts": 7,
                "window": 120,
            },
        }
    )
    assert record.restart_policy == RestartPolicy(
        mode=RestartMode.UNLESS_STOPPED,
        success_exit_codes=frozenset({0, 3}),
        initial_backoff=0.5,
        multiplier=3,
        max_backoff=20,
        jitter=0.1,
        reset_after=15,
        max_restarts=7,
        window=120,
    )


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"jitter": 1.5}, "restartPolicy.jitter"),
        ({"jitter": 1}, "restartPolicy.jitter"),
        ({"mode": "sometimes"}, "restartPolicy.mode"),
        ({"multiplier": 0.5}, "restartPolicy.multiplier"),
        ({"maxRestarts": 1.5}, "restartPolicy.maxRestarts"),
        ({"window": 0}, "restartPolicy.window"),
        ({"successExitCodes": ["0"]}, "restartPolicy.successExitCodes[0]"),
        ({"backoff": 1}, "restartPolicy.backoff"),
        ({"initialBackoff": 5, "maxBackoff": 1}, "restartPolicy.maxBackoff"),
    ],
)
def test_a_bad_restart_policy_value_is_named(policy: dict[str, Any], field: str) -> None:
    assert _invalid_registration({"instanceId": "d", "platform": "docker", "restartPolicy": policy}).field == field


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"initialBackoff": float("inf")}, "restartPolicy.initialBackoff"),
        ({"maxBackoff": float("inf")}, "restartPolicy.maxBackoff"),
        ({"resetAfter": float("inf")}, "restartPolicy.resetAfter"),
        ({"window": float("inf")}, "restartPolicy.window"),
        ({"multiplier": float("inf")}, "restartPolicy.multiplier"),
        ({"jitter": float("inf")}, "restartPolicy.jitter"),
        ({"maxRestarts": float("inf")}, "restartPolicy.maxRestarts"),
        ({"initialBackoff": float("nan")}, "restartPolicy.initialBackoff"),
        ({"initialBackoff": 1e10}, "restartPolicy.initialBackoff"),
        ({"multiplier": 1e4}, "restartPolicy.multiplier"),
        ({"maxRestarts": 10**6}, "restartPolicy.maxRestarts"),
        ({"successExitCodes": [10**30]}, "restartPolicy.successExitCodes[0]"),
    ],
)
def test_a_policy_number_out_of_bounds_is_named(policy: dict[str, Any], field: str) -> None:
    # json.loads reads 1e999 as inf, which a view would echo as a bare Infinity (not JSON).
    assert _invalid_registration({"instanceId": "d", "platform": "docker", "restartPolicy": policy}).field == field


@pytest.mark.parametrize("field", ["initial_backoff", "max_backoff", "reset_after", "window", "multiplier", "jitter"])
def test_a_policy_refuses_a_non_finite_number_from_any_source(field: str) -> None:
    # The config loader builds policies too (TOML has inf and nan).
    for number in (float("inf"), float("nan")):
        with pytest.raises(ValueError):
            RestartPolicy(**{field: number})


@pytest.mark.parametrize(("process", "field"), [({"stopTimeout": float("inf")}, "process.stopTimeout"),
                                                ({"stopTimeout": 1e10}, "process.stopTimeout"),
                                                ({"pid": 10**12}, "process.pid")])
def test_a_process_number_out_of_bounds_is_named(process: dict[str, Any], field: str) -> None:
    body = {"instanceId": "p", "platform": "process", "process": {"command": ["true"], **process}}
    assert _invalid_registration(body).field == field


def test_a_policy_error_under_a_prefix_names_the_full_path() -> None:
    body = {"instanceId": "d", "platform": "docker", "restartPolicy": {"initialBackoff": 5, "maxBackoff": 1}}
    error = _invalid_registration(body, prefix="instances[2]")
    assert error.field == "instances[2].restartPolicy.maxBackoff"
    assert error.field in error.message


# -- views --------------------------------------------------------------------------------------------


def _process_record() -> InstanceRecord:
    return InstanceRecord(
        instance_id=InstanceId("worker"),
        platform=Platform.PROCESS,
        status=Status.RUNNING,
        status_since=RECEIVED,
        process=ProcessSpec(command=("run",), env={"DB_PASSWORD": "hunter2-secret", "MODE": "prod-value"}),
        runtime=Runtime(pid=1234, create_time=RECEIVED - 5, started_at=RECEIVED - 5, child=True),
        restart_count=2,
        last_exit_code=3,
        next_restart_at=RECEIVED + 1.5,
        created_at=RECEIVED - 60,
        updated_at=RECEIVED,
    )


def test_the_instance_view_names_env_keys_but_never_their_values() -> None:
    view = instance_view(_process_record())
    text = json.dumps(view)
    assert "hunter2-secret" not in text
    assert "prod-value" not in text
    assert view["process"]["envKeys"] == ["DB_PASSWORD", "MODE"]
    assert "env" not in view["process"]


@pytest.mark.parametrize(
    ("epoch", "text"),
    [(1e33, "9999-12-31T23:59:59.999Z"), (253402300800.0, "9999-12-31T23:59:59.999Z"),
     (-1e20, "0001-01-01T00:00:00.000Z"), (0.0, "1970-01-01T00:00:00.000Z")],
)
def test_a_time_beyond_what_a_datetime_holds_is_shown_as_the_end_of_its_range(epoch: float, text: str) -> None:
    # Found by the API fuzz test: a valid policy (initialBackoff 1e33) put nextRestartAt past year 9999, and every
    # view of the instance, the list included, was a 500.
    assert format_time(epoch) == text


def test_the_instance_view_explains_the_instance() -> None:
    view = instance_view(_process_record())
    assert view["instanceId"] == "worker"
    assert view["platform"] == "process"
    assert view["status"] == "Running"
    assert view["restartCount"] == 2
    assert view["lastExitCode"] == 3
    assert view["nextRestartAt"] == format_time(RECEIVED + 1.5)
    assert view["runtime"]["pid"] == 1234
    assert view["restartPolicy"]["mode"] == "on-failure"
    assert view["restartPolicy"]["successExitCodes"] == [0]
    json.dumps(view)  # the whole view is JSON


def test_an_instance_without_process_or_runtime_shows_them_as_null() -> None:
    view = instance_view(InstanceRecord(instance_id=InstanceId("d"), platform=Platform.DOCKER))
    assert view["process"] is None
    assert view["runtime"] is None
    assert view["nextRestartAt"] is None


def test_the_change_view_has_the_change_feed_shape() -> None:
    change = StatusChanged(
        instance_id=InstanceId("web-1"),
        platform=Platform.DOCKER,
        old_status=Status.RUNNING,
        new_status=Status.FAILED,
        source="DockerDaemon",
        timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC).timestamp(),
        metadata={"exitCode": "1"},
        cursor=42,
    )
    assert change_view(change) == {
        "cursor": 42,
        "instanceId": "web-1",
        "platform": "docker",
        "oldStatus": "Running",
        "newStatus": "Failed",
        "source": "DockerDaemon",
        "timestamp": "2024-01-02T03:04:05.678Z",
        "metadata": {"exitCode": "1"},
    }


@pytest.mark.parametrize("observed", [float("nan"), float("inf"), float("-inf"), 1e308, -1e308])
def test_an_observed_at_that_is_no_time_is_refused_naming_it(observed: float) -> None:
    body = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "observedAt": observed}
    with pytest.raises(InvalidInput) as caught:
        parse_status_update(body)
    assert caught.value.field == "observedAt"
