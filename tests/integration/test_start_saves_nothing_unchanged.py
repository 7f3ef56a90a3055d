"""A control plane started on a store writes nothing back for the instances whose resume changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

from draas_actors.messages import GetInstance, StatusReport
from draas_actors.model import InstanceId, Platform, Status
from draas_actors.system import ControlPlane, SystemSettings

OBSERVED = 5


def test_stored_instances_are_not_saved_again_by_a_start(tmp_path: Path) -> None:
    settings = SystemSettings(data_dir=tmp_path, sweep_interval=60.0)
    first = ControlPlane(settings)
    first.start()
    try:
        now = time.time()
        outcomes = first.submit(tuple(
            StatusReport(instance_id=InstanceId(f"c{i}"), status=Status.RUNNING, source="docker-daemon",
                         observed_at=now, platform=Platform.DOCKER)
            for i in range(OBSERVED)
        ))
        assert isinstance(outcomes, tuple)
        stored = {r.instance_id: r for r in first.list_instances()}
    finally:
        first.stop(timeout=5)
    assert len(stored) == OBSERVED

    again = ControlPlane(settings)
    again.start()
    try:
        # Each actor answers after its Resume: what it holds then is what its resume made of the stored record.
        for entry in again.directory.snapshot().values():
            entry.ref.ask(GetInstance(), timeout=5)
        resumed = {r.instance_id: r for r in again.list_instances()}
    finally:
        again.stop(timeout=5)
    # Saved again, each would have a new version and updatedAt (50,000 store writes at a start at the size).
    assert {i: (r.version, r.updated_at) for i, r in resumed.items()} == {
        i: (r.version, r.updated_at) for i, r in stored.items()
    }
