from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest

from draas_actors.errors import InvalidInput, MalformedInput
from draas_actors.messages import StatusChanged, StatusReport
from draas_actors.model import ChangeKind, InstanceId, Platform, Status, StopCause
from draas_actors.policy import RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord, ProcessSpec, Runtime
from draas_actors.wire import (
    change_view,
    format_time,
    instance_view,
    parse_registration,
    parse_status_update,
    parse_status_updates,
    pod_key,
    update_warnings,
    upstream_change_view,
)

ROOT = Path(__file__).resolve().parents[2]
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


def _malformed(body: Any, **kwargs: Any) -> MalformedInput:
    with pytest.raises(MalformedInput) as caught:
        parse_status_update(body, received_at=RECEIVED, **kwargs)
    return caught.value


def test_a_missing_status_is_invalid_input_naming_it() -> None:
    error = _invalid({k: v for k, v in GOOD.items() if k != "status"})
    assert error.field == "status"
    assert "required" in error.message


@pytest.mark.parametrize("name", ["instanceId", "source"])
@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_a_missing_null_or_blank_instance_id_or_source_is_malformed_naming_it_as_upstream(
    name: str, value: str | None
) -> None:
    body = {**GOOD, name: value} if value is not None else {k: v for k, v in GOOD.items() if k != name}
    error = _malformed(body)
    assert error.field == name
    assert name in error.message
    assert _malformed({**GOOD, name: None}).field == name
    # Before any other refusal: upstream checks these two first.
    assert _malformed({**body, "status": "Exploded", "platform": "vm"}).field == name


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"instanceId": 5}, "instanceId"),
        ({"instanceId": "-starts-with-a-dash"}, "instanceId"),
        ({"status": 5}, "status"),
        ({"status": -1}, "status"),
        ({"status": 1.5}, "status"),
        ({"status": True}, "status"),
        ({"source": ["a"]}, "source"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata.nested"),
        ({"platform": "vm"}, "platform"),
        ({"observedAt": True}, "observedAt"),
        ({"observedAt": [1]}, "observedAt"),
    ],
)
def test_a_field_of_the_wrong_type_or_shape_is_named(override: dict[str, Any], field: str) -> None:
    assert _invalid({**GOOD, **override}).field == field


def test_an_unknown_property_is_ignored_and_named_in_a_warning() -> None:
    body = {**GOOD, "colour": "blue", "Foo": 1}
    report = parse_status_update(body, received_at=RECEIVED)
    assert report == parse_status_update(GOOD, received_at=RECEIVED)
    assert update_warnings(body) == ["unknown property 'colour' ignored", "unknown property 'Foo' ignored"]
    assert update_warnings(GOOD) == []


def test_many_unknown_properties_give_a_bounded_list_of_warnings() -> None:
    body = {**GOOD, **{f"extra{i}": i for i in range(100)}}
    warnings = update_warnings(body)
    assert len(warnings) == 17
    assert warnings[-1] == "84 more unknown properties ignored"


@pytest.mark.parametrize("spelling", [str.lower, str.upper, lambda name: name[0].upper() + name[1:]])
def test_property_names_match_in_any_case_as_asp_net_binds_them(spelling: Any) -> None:
    body = {spelling(name): value for name, value in
            {**GOOD, "metadata": {"containerId": "c1"}, "observedAt": RECEIVED - 1, "platform": "docker"}.items()}
    report = parse_status_update(body, received_at=RECEIVED)
    assert (report.instance_id, report.status, report.source) == ("web-1", Status.RUNNING, "DockerDaemon")
    assert (report.metadata, report.observed_at, report.platform) == ({"containerId": "c1"}, RECEIVED - 1,
                                                                       Platform.DOCKER)
    assert update_warnings(body) == []


def test_one_property_given_in_two_spellings_is_refused_naming_it() -> None:
    error = _invalid({**GOOD, "InstanceId": "web-2"})
    assert error.field == "instanceId"
    assert "'instanceId' and 'InstanceId'" in error.message


@pytest.mark.parametrize(
    ("status", "expected"),
    [("running", Status.RUNNING), ("STOPPED", Status.STOPPED), ("error", Status.FAILED), ("cReAtEd", Status.PENDING),
     (0, Status.PENDING), (1, Status.RUNNING), (2, Status.STOPPED), (3, Status.FAILED), (1.0, Status.RUNNING)],
)
def test_a_status_is_read_in_any_case_or_as_upstream_s_enum_number(status: Any, expected: Status) -> None:
    report = parse_status_update({**GOOD, "status": status}, received_at=RECEIVED)
    assert (report.kind, report.status) == (ChangeKind.STATUS, expected)


@pytest.mark.parametrize("status", ["ConfigurationChanged", "configurationchanged", 4])
def test_configuration_changed_is_a_report_of_kind_configuration(status: Any) -> None:
    report = parse_status_update({**GOOD, "status": status}, received_at=RECEIVED)
    assert report.kind is ChangeKind.CONFIGURATION


def test_null_metadata_is_no_metadata() -> None:
    assert parse_status_update({**GOOD, "metadata": None}, received_at=RECEIVED).metadata == {}


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
    results = parse_status_updates([{**GOOD, "status": 9}, {**GOOD, "instanceId": "web-2"}], received_at=RECEIVED)
    assert isinstance(results[0], InvalidInput) and results[0].field == "[0].status"
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
            RestartPolicy(**cast(dict[str, Any], {field: number}))


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
        "kind": "status",
        "instanceId": "web-1",
        "platform": "docker",
        "oldStatus": "Running",
        "newStatus": "Failed",
        "source": "DockerDaemon",
        "timestamp": "2024-01-02T03:04:05.678Z",
        "metadata": {"exitCode": "1"},
        "traceparent": None,
    }


def test_the_upstream_change_view_is_upstream_s_status_change_record() -> None:
    change = StatusChanged(
        instance_id=InstanceId("web-1"), platform=Platform.DOCKER, old_status=Status.RUNNING,
        new_status=Status.FAILED, source="DockerDaemon",
        timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC).timestamp(), metadata={"exitCode": "1"},
        cursor=42,
    )
    assert upstream_change_view(change) == {
        "instanceId": "web-1", "oldStatus": "Running", "newStatus": "Failed", "source": "DockerDaemon",
        "timestamp": "2024-01-02T03:04:05.678Z", "metadata": {"exitCode": "1"},
    }
    configured = StatusChanged(**{**change.__dict__, "new_status": Status.RUNNING, "kind": ChangeKind.CONFIGURATION})
    assert upstream_change_view(configured)["oldStatus"] == "Running"
    assert upstream_change_view(configured)["newStatus"] == "ConfigurationChanged"
    assert change_view(configured)["kind"] == "configuration"


@pytest.mark.parametrize("observed", [float("nan"), float("inf"), float("-inf"), 1e308, -1e308])
def test_an_observed_at_that_is_no_time_is_refused_naming_it(observed: float) -> None:
    body = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", "observedAt": observed}
    with pytest.raises(InvalidInput) as caught:
        parse_status_update(body)
    assert caught.value.field == "observedAt"


def test_a_setting_prints_the_same_way_whether_written_as_an_integer_or_left_at_its_default() -> None:
    # The demo in config/draas.toml writes window = 300 and stopTimeout = 5; the defaults are 300.0 and 10.0.
    demo = tomllib.loads((ROOT / "config" / "draas.toml").read_text())["instances"][0]
    assert demo["restartPolicy"]["window"] == 300 and isinstance(demo["restartPolicy"]["window"], int)
    written = {
        "instanceId": "w", "platform": "process", "process": {"command": ["true"], "stopTimeout": 10},
        "restartPolicy": {"window": 300, "initialBackoff": 0, "multiplier": 2, "maxBackoff": 30, "jitter": 0,
                          "resetAfter": 10, "maxRestarts": 10.0},
    }
    defaults = {"instanceId": "d", "platform": "process", "process": {"command": ["true"]}}
    views = [instance_view(parse_registration(body)) for body in (demo, written, defaults)]
    for view in views:
        policy = view["restartPolicy"]
        for name in ("initialBackoff", "multiplier", "maxBackoff", "jitter", "resetAfter", "window"):
            assert type(policy[name]) is float, (name, policy[name])
        assert type(policy["maxRestarts"]) is int and type(view["process"]["stopTimeout"]) is float
    assert '"window": 300.0' in json.dumps(views[0]) and '"window": 300.0' in json.dumps(views[2])
    assert json.dumps(views[1]["restartPolicy"]) == json.dumps({**views[2]["restartPolicy"], "initialBackoff": 0.0,
                                                                "jitter": 0.0})


# -- typed facts of a report -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [137, "137", " 137", 137.0])
def test_an_exit_code_in_metadata_becomes_the_reports_typed_exit_code(code: Any) -> None:
    report = parse_status_update({**GOOD, "status": "Failed", "metadata": {"exitCode": code}}, received_at=RECEIVED)
    assert report.exit_code == 137
    assert report.metadata["exitCode"] == str(code)  # the wire's metadata is kept as it came


def test_a_report_without_an_exit_code_has_none() -> None:
    assert parse_status_update(GOOD, received_at=RECEIVED).exit_code is None
    for none in (None, "", "  "):
        assert parse_status_update({**GOOD, "metadata": {"exitCode": none}}, received_at=RECEIVED).exit_code is None


@pytest.mark.parametrize("code", ["oops", True, 1.5, "1.5", "0x1"])
def test_an_exit_code_that_is_no_integer_is_refused_naming_it(code: Any) -> None:
    error = _invalid({**GOOD, "status": "Failed", "metadata": {"exitCode": code}})
    assert error.field == "metadata.exitCode"
    assert "metadata.exitCode" in error.message


def test_an_exit_code_in_a_batch_item_is_named_with_its_index() -> None:
    results = parse_status_updates([GOOD, {**GOOD, "metadata": {"exitCode": "x"}}], received_at=RECEIVED)
    assert isinstance(results[1], InvalidInput) and results[1].field == "[1].metadata.exitCode"


def test_the_workload_a_report_is_about_is_its_pod_or_its_container() -> None:
    def workload(metadata: dict[str, Any]) -> str | None:
        return parse_status_update({**GOOD, "metadata": metadata}, received_at=RECEIVED).workload_id

    assert workload({"podName": "web-a", "namespace": "shop"}) == "shop/web-a"
    assert workload({"podName": "web-a"}) == "default/web-a"
    assert workload({"containerId": "abc123"}) == "abc123"
    assert workload({"containerId": ""}) is None
    assert workload({"pid": "42"}) is None


def test_a_pod_key_is_namespace_and_name_with_kubernetes_default_namespace() -> None:
    assert pod_key({"podName": "web-a", "namespace": "shop"}) == "shop/web-a"
    assert pod_key({"podName": "web-a"}) == "default/web-a"
    assert pod_key({"namespace": "shop"}) is None
    assert pod_key({"podName": ""}) is None


def test_an_instance_view_shows_why_it_last_stopped() -> None:
    record = InstanceRecord(instance_id=InstanceId("p1"), platform=Platform.PROCESS)
    assert instance_view(record)["lastStopCause"] is None
    assert instance_view(record.replace(last_stop_cause=StopCause.SHUTDOWN))["lastStopCause"] == "shutdown"
