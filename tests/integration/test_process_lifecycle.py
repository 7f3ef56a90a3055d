"""Real processes behind real HTTP: exits seen through pidfds, restart policies, operator actions, adoption, and
what survives a restart of the control plane on the same data directory."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from draas_actors.wire import MAX_SECONDS
from tests.helpers import (
    ProcessJanitor,
    RunningControlPlane,
    holds_for,
    is_running,
    running_control_plane,
    wait_until,
)


def sleeper() -> list[str]:
    """A cheap long-running child with a unique command line, so the test can count its copies."""
    return ["sleep", f"{60 + random.random():.6f}"]


def process_body(
    instance_id: str, command: list[str], policy: dict[str, Any] | None = None, **process: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "instanceId": instance_id, "platform": "process", "process": {"command": command, **process}
    }
    if policy is not None:
        body["restartPolicy"] = policy
    return body


def copies_running(command: list[str]) -> int:
    count = 0
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["cmdline"] == command and process.info["status"] != psutil.STATUS_ZOMBIE:
            count += 1
    return count


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


# -- kill -9 and restart policies -------------------------------------------------------------------


def test_a_killed_child_fails_and_is_restarted_by_its_policy(plane: RunningControlPlane) -> None:
    command = sleeper()
    view = plane.register(process_body("svc", command, {"mode": "on-failure"}))
    assert view["status"] == "Running"
    first_pid = view["runtime"]["pid"]

    os.kill(first_pid, signal.SIGKILL)

    after = plane.wait_for("svc", lambda v: v["restartCount"] == 1 and v["status"] == "Running")
    assert after["lastExitCode"] == -9
    assert after["lastReason"] == "killed by signal 9"
    assert after["nextRestartAt"] is None
    new_pid = after["runtime"]["pid"]
    assert new_pid != first_pid
    assert is_running(new_pid) and psutil.Process(new_pid).cmdline() == command
    assert not is_running(first_pid)
    expected = [("Pending", "Running"), ("Running", "Failed"), ("Failed", "Restarting"), ("Restarting", "Running")]
    wait_until(lambda: plane.transitions("svc") == expected, message=f"feed shows {expected}")
    failed = next(c for c in plane.changes("svc") if c["newStatus"] == "Failed")
    assert failed["source"] == "process-monitor"
    assert failed["metadata"]["exitCode"] == "-9"
    assert failed["metadata"]["pid"] == str(first_pid)
    assert copies_running(command) == 1


def test_a_crash_loop_gives_up_when_the_restart_budget_is_exhausted(plane: RunningControlPlane) -> None:
    policy = {"mode": "on-failure", "maxRestarts": 3, "window": 60, "initialBackoff": 0.01}
    plane.register(process_body("loop", ["sh", "-c", "exit 1"], policy))

    final = plane.wait_for("loop", lambda v: v["lastReason"] == "restart budget exhausted")

    assert final["status"] == "Failed"
    assert final["restartCount"] == 3
    assert final["lastExitCode"] == 1
    assert final["runtime"] is None
    assert final["nextRestartAt"] is None
    holds_for(
        lambda: (v := plane.instance("loop"))["restartCount"] == 3 and v["status"] == "Failed",
        0.3,
        message="no restart after giving up",
    )
    # Giving up is published, though the status stays Failed: the feed and subscribers learn that it is final.
    assert plane.transitions("loop")[-2:] == [("Running", "Failed"), ("Failed", "Failed")]
    assert plane.changes("loop")[-1]["metadata"]["reason"] == "restart budget exhausted"


def test_a_pending_delayed_restart_shows_when_it_will_happen(plane: RunningControlPlane) -> None:
    # The first restart of a series is immediate; the second quick crash waits initialBackoff.
    policy = {"mode": "on-failure", "initialBackoff": 1.0, "jitter": 0, "maxRestarts": 10, "window": 60}
    plane.register(process_body("slow", ["sh", "-c", "exit 3"], policy))

    pending = plane.wait_for("slow", lambda v: v["status"] == "Restarting" and v["nextRestartAt"] is not None)

    assert pending["restartCount"] == 1
    assert pending["runtime"] is None
    assert pending["lastExitCode"] == 3
    due = epoch(pending["nextRestartAt"])
    assert abs(due - epoch(pending["statusSince"]) - 1.0) < 0.05
    assert due > time.time() - 0.05
    plane.wait_for("slow", lambda v: v["restartCount"] == 2, timeout=3.0, message="the delayed restart happened")
    restarted = wait_until(
        lambda: [c for c in plane.changes("slow") if (c["oldStatus"], c["newStatus"]) == ("Restarting", "Running")][1:]
    )
    assert epoch(restarted[0]["timestamp"]) >= due - 0.01


def test_a_clean_exit_under_on_failure_stops_without_a_restart(plane: RunningControlPlane) -> None:
    plane.register(process_body("job", ["sh", "-c", "exit 0"], {"mode": "on-failure"}))

    done = plane.wait_for("job", lambda v: v["status"] == "Stopped")

    assert done["lastExitCode"] == 0
    assert done["restartCount"] == 0
    assert done["runtime"] is None
    assert done["operatorStopped"] is False
    holds_for(lambda: plane.instance("job")["restartCount"] == 0, 0.3, message="a clean exit is not restarted")
    assert plane.transitions("job") == [("Pending", "Running"), ("Running", "Stopped")]


def test_mode_always_restarts_a_clean_exit(plane: RunningControlPlane) -> None:
    policy = {"mode": "always", "maxRestarts": 1, "window": 60, "initialBackoff": 0.01}
    plane.register(process_body("always", ["sh", "-c", "exit 0"], policy))

    final = plane.wait_for("always", lambda v: v["lastReason"] == "restart budget exhausted")

    assert final["restartCount"] == 1
    assert final["lastExitCode"] == 0
    expected = [
        ("Pending", "Running"), ("Running", "Stopped"), ("Stopped", "Restarting"), ("Restarting", "Running"),
        ("Running", "Stopped"), ("Stopped", "Failed"),
    ]
    wait_until(lambda: plane.transitions("always") == expected, message=f"feed shows {expected}")


def test_mode_never_does_not_restart_a_failure(plane: RunningControlPlane) -> None:
    plane.register(process_body("once", ["sh", "-c", "exit 1"], {"mode": "never"}))

    failed = plane.wait_for("once", lambda v: v["status"] == "Failed")

    assert failed["lastExitCode"] == 1
    assert failed["lastReason"] == "exited with code 1"
    holds_for(lambda: plane.instance("once")["restartCount"] == 0, 0.3, message="mode never does not restart")
    assert plane.transitions("once") == [("Pending", "Running"), ("Running", "Failed")]


def test_a_command_exec_cannot_take_fails_the_instance_and_not_its_actor(plane: RunningControlPlane) -> None:
    # Found by the API fuzz test: Popen raises ValueError (not OSError) for a NUL byte, and the actor died of it.
    # (A NUL in the command itself is refused at registration now; one in the environment still reaches Popen.)
    plane.register(process_body("nul", ["sleep", "1"], {"mode": "never"}, env={"BAD": "a\u0000b"}))

    failed = plane.wait_for("nul", lambda v: v["status"] == "Failed")

    assert failed["lastReason"] == "spawn failed: embedded null byte"
    assert failed["runtime"] is None
    ready, details = plane.cp.ready()
    assert ready and details["escalated"] == []


def test_a_command_that_cannot_be_executed_is_refused_at_registration(
    plane: RunningControlPlane, tmp_path: Path
) -> None:
    not_executable = tmp_path / "notes.txt"
    not_executable.write_text("echo hi\n")
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    cases: list[tuple[list[str], dict[str, Any], str, str]] = [
        (["no-such-command-draas"], {}, "process.command", "not found"),
        ([str(tmp_path / "missing")], {}, "process.command", "not a file"),
        ([str(tmp_path)], {}, "process.command", "not a file"),
        ([str(not_executable)], {}, "process.command", "not executable"),
        (["./run.sh"], {}, "process.command", "not a file"),  # relative to the control plane's directory: no
        (["sleep\u0000"], {}, "process.command", "cannot be executed"),
        (["sleep", "1"], {"cwd": str(tmp_path / "nowhere")}, "process.cwd", "not a directory"),
        (["run.sh"], {"env": {"PATH": "/nonexistent"}}, "process.command", "not found"),
    ]
    for command, extra, field, words in cases:
        response = plane.post("/api/instances", json=process_body("bad", command, **extra))
        assert response.status_code == 422, (command, response.text)
        assert response.json()["field"] == field, command
        assert words in response.json()["detail"], (command, response.text)
    assert plane.get("/api/instances/bad").status_code == 404

    # Resolved as the spawn resolves it: a relative path against the instance's cwd, a name on its env's PATH.
    view = plane.register(process_body("relative", ["./run.sh"], cwd=str(tmp_path)))
    assert view["status"] == "Running"
    view = plane.register(process_body("on-path", ["run.sh"], env={"PATH": str(tmp_path)}))
    assert view["status"] == "Running"


def test_a_spawn_failure_at_a_restart_spends_the_budget_and_keeps_its_cause(
    plane: RunningControlPlane, tmp_path: Path
) -> None:
    script = tmp_path / "server.sh"
    script.write_text("#!/bin/sh\nexec sleep 60\n")
    script.chmod(0o755)
    seen: list[tuple[str, str, str]] = []
    plane.cp.subscribe(lambda c: seen.append((c.old_status.value, c.new_status.value, c.metadata.get("reason", ""))))
    policy = {"mode": "on-failure", "maxRestarts": 2, "initialBackoff": 0.01, "window": 60}
    view = plane.register(process_body("gone", [str(script)], policy))
    script.unlink()  # removed after its registration: every restart now fails to spawn

    os.kill(view["runtime"]["pid"], signal.SIGKILL)

    final = plane.wait_for("gone", lambda v: v["nextRestartAt"] is None and "budget" in (v["lastReason"] or ""))
    assert final["status"] == "Failed"
    assert final["lastReason"].startswith("spawn failed: ")
    assert "No such file or directory" in final["lastReason"]
    assert final["lastReason"].endswith("; restart budget exhausted")
    assert final["restartCount"] == 2  # both attempts count, though neither started
    holds_for(lambda: plane.instance("gone")["restartCount"] == 2, 0.3, message="no attempt after giving up")
    last = plane.changes("gone")[-1]
    assert (last["oldStatus"], last["newStatus"]) == ("Failed", "Failed")
    assert last["metadata"]["reason"] == final["lastReason"]
    wait_until(lambda: seen and seen[-1] == ("Failed", "Failed", final["lastReason"]), message="a subscriber told")


# -- operator actions -------------------------------------------------------------------------------


def test_an_operator_stop_is_not_undone_by_the_policy(plane: RunningControlPlane) -> None:
    # "always" restarts any exit, so only the operator flag can keep this one stopped.
    view = plane.register(process_body("svc", sleeper(), {"mode": "always"}))
    pid = view["runtime"]["pid"]

    response = plane.post("/api/instances/svc/stop")

    assert response.status_code == 202
    assert response.json()["status"] == "Stopping"
    stopped = plane.wait_for("svc", lambda v: v["status"] == "Stopped")
    assert stopped["operatorStopped"] is True
    assert stopped["lastExitCode"] == -signal.SIGTERM
    assert stopped["lastReason"] == "stopped by operator"
    assert not is_running(pid)
    holds_for(
        lambda: (v := plane.instance("svc"))["status"] == "Stopped" and v["runtime"] is None and v["restartCount"] == 0,
        1.0,
        message="an operator stop stays stopped",
    )
    assert plane.transitions("svc") == [("Pending", "Running"), ("Running", "Stopping"), ("Stopping", "Stopped")]


def test_a_process_that_ignores_sigterm_is_killed_after_the_stop_timeout(
    plane: RunningControlPlane, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    # SIG_IGN survives exec, so the sleep that replaces the shell ignores SIGTERM too.
    command = ["sh", "-c", 'trap "" TERM; : > "$1"; exec sleep 60', "sh", str(ready)]
    view = plane.register(process_body("stubborn", command, {"mode": "on-failure"}, stopTimeout=0.5))
    pid = view["runtime"]["pid"]
    wait_until(ready.exists, message="the child installed its SIGTERM trap")

    started = time.monotonic()
    assert plane.post("/api/instances/stubborn/stop").json()["status"] == "Stopping"
    stopped = plane.wait_for("stubborn", lambda v: v["status"] == "Stopped", timeout=5.0)

    assert time.monotonic() - started >= 0.45
    assert stopped["lastExitCode"] == -signal.SIGKILL
    assert not is_running(pid)


def test_an_enormous_stop_timeout_stops_and_deregisters_without_killing_a_thread(
    plane: RunningControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by probing the API: stopTimeout 1e300 was valid, and a timer asked to wait that long dies of
    # OverflowError (the SIGKILL timer of a deregistered process here; the scheduler's in test_scheduler.py).
    # The schema now stops at MAX_SECONDS: the largest stop timeout it takes must work all the same.
    errors: list[str] = []
    original = threading.excepthook

    def hook(args: Any) -> None:
        # Only the failure this is about: the hook sees every thread of the process, other tests' included.
        if issubclass(args.exc_type, OverflowError):
            errors.append(repr(args.exc_value))
        else:
            original(args)

    monkeypatch.setattr(threading, "excepthook", hook)
    pids = [
        plane.register(process_body(name, sleeper(), {"mode": "never"}, stopTimeout=MAX_SECONDS))["runtime"]["pid"]
        for name in ("stopped", "deregistered")
    ]

    assert plane.post("/api/instances/stopped/stop").status_code == 202
    plane.wait_for("stopped", lambda v: v["status"] == "Stopped")
    response = requests.delete(plane.base_url + "/api/instances/deregistered", headers=plane.operator_headers,
                               timeout=5)
    assert response.status_code == 204

    wait_until(lambda: not any(is_running(pid) for pid in pids), message="SIGTERM stopped both")
    holds_for(lambda: errors == [], 0.3, message="no thread died of an overflow")


def test_an_operator_start_runs_a_stopped_instance_again(plane: RunningControlPlane) -> None:
    command = sleeper()
    pid = plane.register(process_body("svc", command))["runtime"]["pid"]
    plane.post("/api/instances/svc/stop")
    plane.wait_for("svc", lambda v: v["status"] == "Stopped")

    response = plane.post("/api/instances/svc/start")

    assert response.status_code == 202
    started = response.json()
    assert started["status"] == "Running"
    assert started["operatorStopped"] is False
    assert started["restartCount"] == 0
    new_pid = plane.janitor.track(started["runtime"]["pid"])
    assert new_pid != pid
    assert is_running(new_pid)
    assert copies_running(command) == 1


def test_an_operator_restart_gives_a_new_process_and_counts_it(plane: RunningControlPlane) -> None:
    command = sleeper()
    pid = plane.register(process_body("svc", command))["runtime"]["pid"]

    assert plane.post("/api/instances/svc/restart").status_code == 202

    after = plane.wait_for("svc", lambda v: v["status"] == "Running" and v["restartCount"] == 1)
    assert after["runtime"]["pid"] != pid
    assert after["operatorStopped"] is False
    assert not is_running(pid)
    assert copies_running(command) == 1
    wait_until(
        lambda: plane.transitions("svc")
        == [("Pending", "Running"), ("Running", "Stopping"), ("Stopping", "Stopped"), ("Stopped", "Running")]
    )


# -- adopted PIDs -----------------------------------------------------------------------------------


@pytest.fixture
def grandchild(janitor: ProcessJanitor) -> Iterator[int]:
    """A sleep whose parent shell stays alive to reap it: never our child. (An orphan would be: the control plane
    is a child subreaper, so the orphans of this test process come back to it.)"""
    shell = subprocess.Popen(
        ["sh", "-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $!; wait"], stdout=subprocess.PIPE, text=True
    )
    janitor.track(shell.pid)
    try:
        assert shell.stdout is not None
        yield janitor.track(int(shell.stdout.readline().strip()))
    finally:
        janitor.kill_all()
        shell.communicate(timeout=5)


def test_an_adopted_pid_that_is_not_our_child_is_detected_when_it_exits(
    plane: RunningControlPlane, grandchild: int
) -> None:
    pid = grandchild
    assert psutil.Process(pid).ppid() != os.getpid()

    view = plane.register({"instanceId": "adopted", "platform": "process", "process": {"pid": pid}})
    assert view["status"] == "Running"
    assert view["runtime"]["pid"] == pid
    assert view["runtime"]["child"] is False

    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    failed = plane.wait_for("adopted", lambda v: v["status"] == "Failed", timeout=3.0)

    # The sweep runs once a minute here: only the pidfd can have told us this fast.
    assert time.monotonic() - killed_at < 2.0
    assert failed["lastExitCode"] is None
    assert "exit code unknown" in failed["lastReason"]
    assert failed["runtime"] is None
    holds_for(lambda: plane.instance("adopted")["restartCount"] == 0, 0.2, message="nothing to restart it with")


def test_adopting_a_pid_that_does_not_exist_is_rejected_naming_the_field(plane: RunningControlPlane) -> None:
    probe = subprocess.Popen(["true"])
    probe.wait(timeout=5)
    assert not psutil.pid_exists(probe.pid)

    response = plane.post(
        "/api/instances", json={"instanceId": "ghost", "platform": "process", "process": {"pid": probe.pid}}
    )

    assert response.status_code == 422
    assert response.json()["field"] == "process.pid"
    assert plane.get("/api/instances/ghost").status_code == 404
    assert plane.changes("ghost") == []


# -- the store across a restart of the control plane ------------------------------------------------


def test_statuses_and_the_change_log_survive_a_restart_and_a_live_process_is_re_adopted(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    data = tmp_path / "data"
    command = sleeper()
    with running_control_plane(data, stop_processes=False, janitor=janitor) as first:
        assert first.push({"instanceId": "web", "status": "Running", "source": "DockerDaemon"}).status_code == 202
        assert first.push({"instanceId": "web", "status": "Unhealthy", "source": "DockerDaemon"}).status_code == 202
        pid = first.register(process_body("svc", command))["runtime"]["pid"]
        feed = first.wait_for_changes(3)
        instances = {v["instanceId"]: v for v in first.get("/api/instances").json()["instances"]}
    assert is_running(pid)

    with running_control_plane(data, janitor=janitor) as second:
        readopted = second.wait_for("svc", lambda v: v["metadata"].get("reason") == "re-adopted")
        assert readopted["status"] == "Running"
        assert readopted["runtime"]["pid"] == pid
        assert readopted["restartCount"] == 0
        assert copies_running(command) == 1
        assert second.instance("web")["status"] == "Unhealthy"
        assert second.changes() == feed
        listed = {v["instanceId"]: v for v in second.get("/api/instances").json()["instances"]}
        assert {k: (v["status"], v["restartCount"]) for k, v in listed.items()} == {
            k: (v["status"], v["restartCount"]) for k, v in instances.items()
        }

        # Still watched after re-adoption, and cursors carry on from where the log ended.
        os.kill(pid, signal.SIGKILL)
        after = second.wait_for("svc", lambda v: v["status"] == "Running" and v["restartCount"] == 1)
        assert after["runtime"]["pid"] != pid
        new = wait_until(lambda: second.changes(after=feed[-1]["cursor"]))
        assert new[0]["cursor"] == feed[-1]["cursor"] + 1
        assert (new[0]["oldStatus"], new[0]["newStatus"]) == ("Running", "Failed")


def test_a_process_killed_while_the_control_plane_was_stopped_is_reported_and_restarted(
    tmp_path: Path, janitor: ProcessJanitor
) -> None:
    data = tmp_path / "data"
    command = sleeper()
    with running_control_plane(data, stop_processes=False, janitor=janitor) as first:
        pid = first.register(process_body("svc", command, {"mode": "on-failure"}))["runtime"]["pid"]
        wait_until(lambda: first.transitions("svc") == [("Pending", "Running")])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not is_running(pid), message="the process is dead")

    with running_control_plane(data, janitor=janitor) as second:
        after = second.wait_for("svc", lambda v: v["status"] == "Running" and v["restartCount"] == 1)
        assert after["runtime"]["pid"] != pid
        assert after["lastExitCode"] is None
        assert after["lastReason"] == "process ended while it was not watched"
        expected = [("Pending", "Running"), ("Running", "Failed"), ("Failed", "Restarting"), ("Restarting", "Running")]
        wait_until(lambda: second.transitions("svc") == expected, message=f"feed shows {expected}")
        failed = next(c for c in second.changes("svc") if c["newStatus"] == "Failed")
        assert failed["metadata"]["reason"] == "process ended while it was not watched"
        assert copies_running(command) == 1

