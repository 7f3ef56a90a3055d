from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from draas_actors.model import InstanceId, Platform, Status, StopCause
from draas_actors.policy import RestartHistory, RestartMode, RestartPolicy
from draas_actors.records import InstanceRecord, ProcessSpec, Runtime, record_from_json, record_to_dict, record_to_json

# Every field, and every field of every nested record, differs from its default: a round trip of this record
# exercises all of them (the first test checks that, so a new field must be given a value here).
FULL = InstanceRecord(
    instance_id=InstanceId("web-1"),
    platform=Platform.PROCESS,
    status=Status.FAILED,
    status_since=1_700_000_001.25,
    operator_stopped=True,
    process=ProcessSpec(command=("sleep", "60"), cwd="/srv", env={"MODE": "test"}, adopt_pid=4242, stop_timeout=2.5),
    restart_policy=RestartPolicy(
        mode=RestartMode.ALWAYS,
        success_exit_codes=frozenset({3, 0, 143}),
        initial_backoff=0.5,
        multiplier=3.0,
        max_backoff=60.0,
        jitter=0.1,
        reset_after=20.0,
        max_restarts=5,
        window=120.0,
    ),
    runtime=Runtime(pid=4243, create_time=1_700_000_000.5, started_at=1_700_000_000.75, child=True, own_group=True),
    restart_count=3,
    history=RestartHistory(restart_times=(1_700_000_000.0, 1_700_000_001.0), series=2),
    last_exit_code=137,
    last_reason="exited with code 137",
    last_stop_cause=StopCause.CRASHED,
    next_restart_at=1_700_000_002.0,
    last_observed={"DockerDaemon": 1_700_000_000.5, "monitor": 1_700_000_001.0},
    stale_dropped=4,
    rejected_transitions=5,
    metadata={"reason": "OOMKilled", "exitCode": "137"},
    created_at=1_699_999_999.0,
    updated_at=1_700_000_001.5,
    workload_id="3f2a9c",
    last_exit_at=1_700_000_001.0,
    version=17,
)
MINIMAL = InstanceRecord(instance_id=InstanceId("db-1"), platform=Platform.DOCKER)


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _fields_left_at_default(record: Any, path: str = "") -> list[str]:
    left = []
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if value == _default(field):
            left.append(path + field.name)
        if dataclasses.is_dataclass(value):
            left += _fields_left_at_default(value, f"{path}{field.name}.")
    return left


def _as_asdict_encoded_it(record: InstanceRecord) -> str:
    """The encoding the store used to write (``dataclasses.asdict``): stored records must read the same."""

    def plain(value: Any) -> Any:
        if isinstance(value, frozenset):
            return sorted(value)
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeError(type(value).__name__)

    return json.dumps(dataclasses.asdict(record), default=plain, separators=(",", ":"))


def test_the_full_record_sets_every_field_and_every_nested_field() -> None:
    assert _fields_left_at_default(FULL) == []


@pytest.mark.parametrize("record", [FULL, MINIMAL], ids=["full", "minimal"])
def test_a_record_survives_the_json_round_trip_unchanged(record: InstanceRecord) -> None:
    assert record_from_json(record_to_json(record)) == record


@pytest.mark.parametrize("record", [FULL, MINIMAL], ids=["full", "minimal"])
def test_a_record_is_encoded_byte_for_byte_as_the_generic_asdict_encoding_was(record: InstanceRecord) -> None:
    assert record_to_json(record) == _as_asdict_encoded_it(record)


def test_the_encoding_holds_only_plain_json_values_with_sets_sorted() -> None:
    encoded = record_to_dict(FULL)
    assert json.loads(json.dumps(encoded)) == encoded
    assert type(encoded["status"]) is str and type(encoded["restart_policy"]["mode"]) is str
    assert encoded["restart_policy"]["success_exit_codes"] == [0, 3, 143]


def test_a_record_written_before_the_newer_fields_existed_still_loads_with_their_defaults() -> None:
    stored = json.loads(record_to_json(FULL))
    for newer in ("workload_id", "last_exit_at"):
        del stored[newer]
    del stored["runtime"]["own_group"]
    loaded = record_from_json(json.dumps(stored))
    assert FULL.runtime is not None
    assert loaded.workload_id is None and loaded.last_exit_at is None
    assert loaded.runtime == dataclasses.replace(FULL.runtime, own_group=False)


# -- records saved before lastStopCause existed ---------------------------------------------------------------


def _stored_before_causes(record: InstanceRecord) -> str:
    raw = record_to_dict(record)
    del raw["last_stop_cause"]
    return json.dumps(raw)


@pytest.mark.parametrize(
    ("status", "reason", "cause"),
    [
        (Status.STOPPED, "stopped at control-plane shutdown", StopCause.SHUTDOWN),
        (Status.STOPPED, "stopped by operator", StopCause.OPERATOR),
        (Status.FAILED, "exited with code 1; restart budget exhausted", StopCause.GAVE_UP),
        (Status.FAILED, "instance actor crashed 3 times within 60s: boom", StopCause.ESCALATED),
        (Status.FAILED, "spawn failed: [Errno 2] No such file", StopCause.START_FAILED),
        (Status.FAILED, "docker start failed: no such container", StopCause.ACTION_FAILED),
        (Status.REMOVED, "pod a/b was deleted to restart the instance and no pod replaced it within 5s",
         StopCause.DELETED),
        (Status.FAILED, "exited with code 3", StopCause.CRASHED),
        (Status.STOPPED, "exited with code 0", StopCause.EXITED),
        (Status.RUNNING, None, None),
    ],
)
def test_an_old_records_stop_cause_is_read_once_from_its_reason(
    status: Status, reason: str | None, cause: StopCause | None
) -> None:
    old = MINIMAL.replace(status=status, last_reason=reason)
    loaded = record_from_json(_stored_before_causes(old))
    assert loaded.last_stop_cause is cause
    # Saved again, the cause is its own field: rewording the reason no longer changes it.
    reworded = json.loads(record_to_json(loaded))
    reworded["last_reason"] = "something else entirely"
    assert record_from_json(json.dumps(reworded)).last_stop_cause is cause
