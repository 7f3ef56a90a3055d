"""What a process instance leaves behind: no zombie of its own after a DELETE, and no descendant after a stop, a
DELETE or a restart. Each command writes the PIDs of the children it forks to a file, so the test knows them by PID.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil
import requests

from draas_actors.platforms.process import ProcessPlatform
from draas_actors.records import ProcessSpec
from tests.helpers import ProcessJanitor, RunningControlPlane, wait_until

# A child that survives its shell's SIGTERM (the ignored signal is inherited through exec), so that only a kill of
# what is left of the group after the main process ended can end it.
STUBBORN_CHILD = "(trap '' TERM; exec sleep 300) & echo $! >> {pids}"


def gone(pid: int) -> bool:
    """Ended and reaped: a zombie still counts as there (somebody owes it a wait)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


def read_pids(path: Path, count: int, plane: RunningControlPlane) -> list[int]:
    """The first ``count`` PIDs the command wrote, each handed to the janitor so that a failure leaks nothing."""

    def written() -> list[int] | None:
        try:
            lines = path.read_text().split()
        except FileNotFoundError:
            return None
        return [int(line) for line in lines] if len(lines) >= count else None

    pids = wait_until(written, 5.0, 0.02, f"{count} PIDs in {path.name}")
    assert pids is not None
    for pid in pids:
        plane.janitor.track(pid)
    return pids


def wait_gone(pids: list[int], what: str) -> None:
    wait_until(lambda: all(gone(pid) for pid in pids), 5.0, 0.02, f"{what} {pids} ended and reaped")


def register(plane: RunningControlPlane, instance_id: str, script: str, **extra: Any) -> dict[str, Any]:
    """A process instance running ``sh -c script``, stopped within half a second."""
    command = ["sh", "-c", script]
    body = {"instanceId": instance_id, "platform": "process", "process": {"command": command, "stopTimeout": 0.5}}
    return plane.register({**body, **extra})


def delete(plane: RunningControlPlane, instance_id: str) -> None:
    response = requests.delete(
        f"{plane.base_url}/api/instances/{instance_id}", headers=plane.operator_headers, timeout=5
    )
    assert response.status_code == 204, response.text


def test_deleting_running_processes_leaves_no_zombie(plane: RunningControlPlane) -> None:
    pids = []
    for round_ in range(5):
        view = plane.register(
            {"instanceId": f"z{round_}", "platform": "process",
             "process": {"command": ["sleep", "300"], "stopTimeout": 5}}
        )
        pids.append(plane.janitor.track(view["runtime"]["pid"]))
        delete(plane, f"z{round_}")
    wait_gone(pids, "the deleted instances' processes")


def test_a_child_left_behind_by_a_command_that_exits_is_killed(plane: RunningControlPlane, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    register(plane, "forks", f"sleep 300 & echo $! >> {pids_file}; exit 0", restartPolicy={"mode": "never"})
    [child] = read_pids(pids_file, 1, plane)
    plane.wait_for("forks", lambda v: v["status"] == "Stopped")
    wait_gone([child], "the child of the exited command")


def test_every_restart_kills_what_the_previous_run_left(plane: RunningControlPlane, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    register(
        plane, "loop", f"{STUBBORN_CHILD.format(pids=pids_file)}; exit 1",
        restartPolicy={"mode": "on-failure", "maxRestarts": 2, "initialBackoff": 0.01},
    )
    plane.wait_for("loop", lambda v: v["status"] == "Failed" and v["nextRestartAt"] is None and v["restartCount"] == 2)
    children = read_pids(pids_file, 3, plane)
    wait_gone(children, "the children of every run")


def test_stopping_kills_a_child_that_outlives_its_parent(plane: RunningControlPlane, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    view = register(plane, "stop-me", f"{STUBBORN_CHILD.format(pids=pids_file)}; wait")
    plane.janitor.track(view["runtime"]["pid"])
    [child] = read_pids(pids_file, 1, plane)
    response = plane.post("/api/instances/stop-me/stop")
    assert response.status_code == 202, response.text
    plane.wait_for("stop-me", lambda v: v["status"] == "Stopped")
    wait_gone([view["runtime"]["pid"], child], "the shell and its child")


def test_deleting_kills_a_child_that_outlives_its_parent(plane: RunningControlPlane, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    view = register(plane, "delete-me", f"{STUBBORN_CHILD.format(pids=pids_file)}; wait")
    main = plane.janitor.track(view["runtime"]["pid"])
    [child] = read_pids(pids_file, 1, plane)
    delete(plane, "delete-me")
    wait_gone([main, child], "the shell and its child")


def test_the_control_plane_is_left_with_no_zombie_child(plane: RunningControlPlane, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    register(plane, "many", f"for i in 1 2 3; do sleep 300 & echo $! >> {pids_file}; done; exit 0",
             restartPolicy={"mode": "never"})
    children = read_pids(pids_file, 3, plane)
    plane.wait_for("many", lambda v: v["status"] == "Stopped")
    wait_gone(children, "the three children")
    zombies = [
        child.pid for child in psutil.Process(os.getpid()).children()
        if child.pid in children and child.status() == psutil.STATUS_ZOMBIE
    ]
    assert zombies == []


def is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_sweep_reaps_a_released_child_and_the_leftovers_that_no_watch_covers(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    # No monitor here: what its sweep calls when a watch was lost (a monitor restarted after a DELETE).
    platform = ProcessPlatform(tmp_path / "logs")
    pids_file = tmp_path / "pids"
    sleeper = platform.spawn("released", ProcessSpec(command=("sleep", "300")))
    forks = platform.spawn("forks", ProcessSpec(command=("sh", "-c", f"sleep 300 & echo $! > {pids_file}; exit 0")))
    janitor.track(sleeper.pid)
    janitor.track(forks.pid)
    assert platform.release(sleeper.pid)
    os.kill(sleeper.pid, signal.SIGKILL)
    wait_until(lambda: is_zombie(sleeper.pid) and is_zombie(forks.pid), 5.0, 0.01, "both ended, not reaped")
    child = int(
        wait_until(lambda: pids_file.read_text().strip() if pids_file.exists() else None, 5.0, 0.01, "child PID")
    )
    janitor.track(child)

    assert platform.reap_released() == 1
    assert platform.reap(forks.pid) == 0  # kills what is left of its group: the sleep, now ours
    # reap() reaps the leftover itself if it has died by then; otherwise the sweep's call does, once it has.
    wait_until(lambda: platform.reap_leftovers() >= 0 and gone(child), 5.0, 0.01, "the child killed and reaped")

    assert all(gone(pid) for pid in (sleeper.pid, forks.pid, child))
    assert platform.leftovers() == []
