"""``fast_replace`` makes what ``dataclasses.replace`` makes, for the classes on the push path, and refuses others."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from draas_actors.commit import Receipt
from draas_actors.frozen import fast_replace
from draas_actors.messages import Publish, SaveRecord, StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.records import InstanceRecord


def fields_of(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


RECORD = InstanceRecord(
    instance_id=InstanceId("web-1"), platform=Platform.DOCKER, status=Status.RUNNING, metadata={"a": "b"}
)
REPORT = StatusReport(
    instance_id=InstanceId("web-1"), status=Status.STOPPED, source="docker", observed_at=12.5, metadata={"x": "y"}
)


@pytest.mark.parametrize("obj, changes", [
    (RECORD, {"status": Status.STOPPED, "version": 7, "metadata": {"c": "d"}}),
    (RECORD, {}),
    (REPORT, {"ticket": Receipt(1).ticket(0)}),
    (Publish(change=None, record=RECORD), {"ack": Receipt(1).ticket(0).ack(None)}),
    (SaveRecord(RECORD), {"ack": Receipt(1).ticket(0).ack(None)}),
])
def test_it_makes_what_dataclasses_replace_makes(obj: Any, changes: dict[str, Any]) -> None:
    fast, slow = fast_replace(obj, **changes), dataclasses.replace(obj, **changes)
    assert type(fast) is type(slow) and fields_of(fast) == fields_of(slow) and fast == slow
    assert fast is not obj and fields_of(obj) == fields_of(dataclasses.replace(obj))  # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.version = 1  # still frozen


def test_an_unknown_field_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="'stauts'"):
        fast_replace(RECORD, stauts=Status.FAILED)


def test_a_class_whose_init_does_more_is_refused() -> None:
    @dataclass(frozen=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n")

    with pytest.raises(TypeError, match="would skip what __init__ does"):
        fast_replace(Checked(1), n=-1)
