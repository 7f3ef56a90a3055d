"""Instances from the settings file ([[instances]]): what they show, across restarts of the control plane."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from draas_actors.records import InstanceRecord
from draas_actors.system import ControlPlane, SystemSettings
from draas_actors.wire import instance_view, parse_registration, parse_time
from tests.helpers import ProcessJanitor, wait_until

CONFIGURED = {
    "instanceId": "configured-sleeper",
    "platform": "process",
    "process": {"command": ["sleep", "300"], "stopTimeout": 1},
}


@contextlib.contextmanager
def started(data_dir: Path, configured: InstanceRecord, janitor: ProcessJanitor) -> Iterator[ControlPlane]:
    cp = ControlPlane(SystemSettings(data_dir=data_dir, sweep_interval=60.0))
    try:
        cp.start(configured=[configured])
        yield cp
    finally:
        with contextlib.suppress(Exception):
            for record in cp.list_instances():
                if record.runtime is not None:
                    janitor.track(record.runtime.pid)
        cp.stop(stop_processes=True, timeout=5.0)


def running_view(cp: ControlPlane, janitor: ProcessJanitor) -> dict[str, object]:
    def check() -> InstanceRecord | None:
        record = cp.get_instance("configured-sleeper")
        return record if record.status.value == "Running" else None

    record = wait_until(check, 5.0, 0.02, "the configured instance runs")
    assert record.runtime is not None
    janitor.track(record.runtime.pid)
    return instance_view(record)


def test_a_configured_instance_shows_when_it_was_created_and_keeps_it_across_restarts(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    configured = parse_registration(CONFIGURED)
    before = time.time()
    with started(tmp_path, configured, janitor) as cp:
        first = running_view(cp, janitor)
    after = time.time()
    created = parse_time(first["createdAt"], field="createdAt")
    assert before - 0.001 <= created <= after, first["createdAt"]  # not 1970-01-01
    assert first["updatedAt"] is not None and parse_time(first["updatedAt"], field="updatedAt") >= created

    with started(tmp_path, configured, janitor) as cp:
        second = running_view(cp, janitor)
    assert second["createdAt"] == first["createdAt"]
