"""run.py end to end: a real subprocess, real HTTP, real processes, real signals, the same data dir twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import wait_until

from .conftest import (
    REPO_ROOT,
    SHIPPED_CONFIG,
    STOP_TIMEOUT,
    ControlPlaneProcess,
    ManagedPid,
    RunPy,
    clean_environment,
    write_config,
)

SLEEP = ["sleep", "300"]


def register_sleep(control_plane: ControlPlaneProcess, instance_id: str) -> ManagedPid:
    """Register a ``sleep 300`` process instance and return its process once it is Running."""
    response = control_plane.request(
        "POST",
        "/api/instances",
        json={"instanceId": instance_id, "platform": "process", "process": {"command": SLEEP, "stopTimeout": 2}},
    )
    assert response.status_code == 201, response.text
    view = wait_until(
        lambda: (v := control_plane.instance(instance_id))["status"] == "Running" and v,
        timeout=5,
        message=f"{instance_id} Running",
    )
    pid = view["runtime"]["pid"]
    process = psutil.Process(pid)
    assert process.cmdline() == SLEEP
    return ManagedPid(pid, process.create_time())


def transitions(changes: list[dict[str, Any]], instance_id: str) -> list[tuple[str, str]]:
    return [(c["oldStatus"], c["newStatus"]) for c in changes if c["instanceId"] == instance_id]


def follow_until(
    control_plane: ControlPlaneProcess, after: int, instance_id: str, expected: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Follow the change feed from ``after`` with cursors until ``expected`` has appeared, in order."""
    seen: list[dict[str, Any]] = []
    cursor = after

    def arrived() -> bool:
        nonlocal cursor
        page = control_plane.changes_after(cursor)
        if page:
            cursor = page[-1]["cursor"]
            seen.extend(page)
        return transitions(seen, instance_id)[: len(expected)] == expected

    wait_until(arrived, timeout=5, interval=0.05, message=f"{instance_id}: {expected} in the change feed")
    return seen


def kill_9(managed: ManagedPid) -> None:
    assert managed.is_alive()
    os.kill(managed.pid, signal.SIGKILL)


def test_a_killed_process_is_seen_failing_and_restarted_in_the_change_feed_and_the_log(
    run_py: RunPy, config: Path
) -> None:
    control_plane = run_py.start(config=config)
    first = register_sleep(control_plane, "e2e-sleeper")
    start = follow_until(control_plane, 0, "e2e-sleeper", [("Pending", "Running")])

    kill_9(first)

    changes = follow_until(
        control_plane,
        start[-1]["cursor"],
        "e2e-sleeper",
        [("Running", "Failed"), ("Failed", "Restarting"), ("Restarting", "Running")],
    )
    cursors = [c["cursor"] for c in start + changes]
    assert cursors == sorted(set(cursors))
    failed = changes[0]
    assert failed["source"] == "process-monitor"
    assert failed["metadata"]["exitCode"] == "-9"
    view = control_plane.instance("e2e-sleeper")
    assert view["status"] == "Running"
    assert view["restartCount"] == 1
    assert view["lastExitCode"] == -9
    assert view["runtime"]["pid"] != first.pid
    assert psutil.Process(view["runtime"]["pid"]).cmdline() == SLEEP
    lines = [
        "instance e2e-sleeper: Running -> Failed (source process-monitor)",
        "instance e2e-sleeper: Failed -> Restarting (source restart-policy)",
        "instance e2e-sleeper: Restarting -> Running (source restart-policy)",
    ]
    # run.py logs through a bus subscriber, on its own thread: the lines may trail the change feed.
    wait_until(
        lambda: all(line in control_plane.log() for line in lines), timeout=5, message="the lines in run.py's log"
    )


def test_a_restart_on_the_same_data_dir_keeps_instances_and_change_log_and_re_adopts_the_process(
    run_py: RunPy, config: Path
) -> None:
    first_run = run_py.start(config=config)
    managed = register_sleep(first_run, "e2e-survivor")
    before = first_run.instance("e2e-survivor")
    changes_before = follow_until(first_run, 0, "e2e-survivor", [("Pending", "Running")])

    started = time.monotonic()
    assert run_py.stop(first_run, signal.SIGTERM) == 0, first_run.log()
    assert time.monotonic() - started < STOP_TIMEOUT
    assert managed.is_alive(), "the default shutdown must leave managed processes running"
    assert "SIGTERM received: stopping" in first_run.log()

    second_run = run_py.start(config=config, data_dir=first_run.data_dir)
    after = wait_until(
        lambda: (v := second_run.instance("e2e-survivor"))["metadata"].get("reason") == "re-adopted" and v,
        timeout=5,
        message="e2e-survivor re-adopted",
    )
    assert after["status"] == "Running"
    assert after["runtime"]["pid"] == managed.pid
    assert after["runtime"]["child"] is False
    assert after["restartCount"] == before["restartCount"]
    assert after["createdAt"] == before["createdAt"]
    assert managed.is_alive()
    # Nothing was started in its place: the new run.py has no child processes at all.
    assert psutil.Process(second_run.process.pid).children() == []
    assert [i["instanceId"] for i in second_run.instances()] == ["e2e-survivor"]
    assert second_run.changes_after(0) == changes_before

    kill_9(managed)

    last_cursor = changes_before[-1]["cursor"]
    changes = follow_until(
        second_run,
        last_cursor,
        "e2e-survivor",
        [("Running", "Failed"), ("Failed", "Restarting"), ("Restarting", "Running")],
    )
    assert changes[0]["cursor"] == last_cursor + 1
    assert "exitCode" not in changes[0]["metadata"]
    view = second_run.instance("e2e-survivor")
    assert view["status"] == "Running"
    assert view["lastExitCode"] is None, "an adopted PID is not our child: its exit code cannot be known"
    assert view["restartCount"] == before["restartCount"] + 1
    replacement = psutil.Process(view["runtime"]["pid"])
    assert replacement.pid != managed.pid
    assert replacement.cmdline() == SLEEP
    assert replacement.ppid() == second_run.process.pid


def test_stop_processes_on_shutdown_stops_the_managed_processes_too(run_py: RunPy, tmp_path: Path) -> None:
    config = write_config(tmp_path / "stop.toml", "[shutdown]\nstopProcesses = true\ntimeout = 5\n")
    control_plane = run_py.start(config=config)
    managed = register_sleep(control_plane, "e2e-stopped")

    assert run_py.stop(control_plane, signal.SIGTERM) == 0, control_plane.log()

    wait_until(lambda: not managed.is_alive(), timeout=2, message="the managed process stopped")
    log = control_plane.log()
    assert "instance e2e-stopped: Running -> Stopping" in log
    assert "instance e2e-stopped: Stopping -> Stopped" in log

    # A shutdown stop is not an operator's stop: the next start runs the instance again (policy on-failure).
    again = run_py.start(config=config)
    view = wait_until(
        lambda: (v := again.instance("e2e-stopped"))["status"] == "Running" and v,
        timeout=5,
        message="the instance stopped at shutdown runs again after the next start",
    )
    assert view["runtime"]["pid"] != managed.pid
    assert view["operatorStopped"] is False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_run_py_cleanly_and_leaves_managed_processes_running(
    run_py: RunPy, config: Path, signum: signal.Signals
) -> None:
    control_plane = run_py.start(config=config)
    managed = register_sleep(control_plane, "e2e-signalled")
    started = time.monotonic()

    assert run_py.stop(control_plane, signum) == 0, control_plane.log()

    # Our session still holds an idle keep-alive connection: it must not hold up the shutdown.
    assert time.monotonic() - started < 4.0

    log = control_plane.log()
    assert f"{signum.name} received: stopping" in log
    assert log.rstrip().endswith("stopped")
    assert "Traceback" not in log
    assert managed.is_alive()


def test_the_shipped_config_starts_and_runs_its_demo_instance(run_py: RunPy, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    control_plane = run_py.start(config=SHIPPED_CONFIG, data_dir=data_dir, operator_key=None, daemon_key=None)

    for role in ("operator", "daemon"):
        assert (data_dir / f"{role}.key").stat().st_mode & 0o777 == 0o600
        assert (data_dir / f"{role}.key").read_text().strip() not in control_plane.log()
    demo = wait_until(
        lambda: (v := control_plane.instance("demo-ticker"))["status"] == "Running" and v,
        timeout=5,
        message="demo-ticker Running",
    )
    assert demo["restartPolicy"]["mode"] == "on-failure"
    assert psutil.Process(demo["runtime"]["pid"]).ppid() == control_plane.process.pid
    ready = control_plane.request("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    assert control_plane.request("GET", "/api/instances", key="not-the-operator-key").status_code == 401


@pytest.mark.parametrize(
    ("config_text", "field"),
    [
        ("[server]\nprot = 8080\n", "server.prot"),
        (
            (
                '[[instances]]\ninstanceId = "x"\nplatform = "process"\nprocess = { command = ["true"] }\n'
                'restartPolicy = { mode = "sometimes" }\n'
            ),
            "instances[0].restartPolicy.mode",
        ),
    ],
    ids=["unknown key", "bad restart mode"],
)
def test_a_broken_config_makes_run_py_exit_with_code_2_naming_the_field(
    tmp_path: Path, config_text: str, field: str
) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(config_text)
    started = time.monotonic()

    # subprocess.run kills the child itself if it overruns the timeout.
    result = subprocess.run(
        [sys.executable, "run.py", "--config", str(config), "--port", "0", "--data-dir", str(tmp_path / "var")],
        cwd=REPO_ROOT,
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 10
    assert "configuration error" in result.stderr
    assert field in result.stderr
    assert "listening on" not in result.stderr
