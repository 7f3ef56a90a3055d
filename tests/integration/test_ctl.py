"""draasctl as a subprocess against a control plane on real HTTP: each command's output and exit code."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import RunningControlPlane, wait_until
from tests.integration.ctl_support import ROOT, ctl, ctl_command, ctl_env

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def env(plane: RunningControlPlane, tmp_path: Path) -> dict[str, str]:
    return ctl_env(tmp_path / "config", plane)


def sleeper(plane: RunningControlPlane, instance_id: str = "svc", **policy: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"instanceId": instance_id, "platform": "process", "process": {"command": SLEEP}}
    if policy:
        body["restartPolicy"] = policy
    return plane.register(body)


def test_get_lists_instances_as_a_table_json_or_yaml_with_filters(
    plane: RunningControlPlane, env: dict[str, str]
) -> None:
    sleeper(plane)
    table = ctl(env, "get")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["ID", "PLATFORM", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:4] == ["svc", "process", "Running", "0"]
    assert "\x1b[" not in table.stdout  # no colour when stdout is not a terminal

    wide = ctl(env, "get", "instances", "-o", "wide")
    assert wide.stdout.splitlines()[0].split()[5:] == ["PID", "EXIT", "POLICY", "NEXT-RESTART", "REASON"]
    views = json.loads(ctl(env, "get", "-o", "json", "--status", "running").stdout)
    assert [v["instanceId"] for v in views] == ["svc"]
    assert ctl(env, "get", "--platform", "docker").stdout.strip() == "No instances found."
    one = yaml.safe_load(ctl(env, "get", "instances", "svc", "-o", "yaml").stdout)
    assert one["instanceId"] == "svc" and one["runtime"]["pid"] > 0


def test_a_refusal_prints_the_apis_message_and_field_and_exits_1(env: dict[str, str]) -> None:
    missing = ctl(env, "get", "instances", "nobody")
    assert missing.returncode == 1
    assert "no instance 'nobody'" in missing.stderr and "(field: instanceId)" in missing.stderr
    bad = ctl(env, "get", "--status", "Sleepy")
    assert bad.returncode == 1 and "(field: status)" in bad.stderr


def test_usage_errors_exit_2(env: dict[str, str]) -> None:
    assert ctl(env, "get", "-o", "xml").returncode == 2
    assert ctl(env, "frobnicate").returncode == 2
    assert ctl(env, "start").returncode == 2  # an ID is required
    assert ctl(env, "changes", "--since", "5m", "--after", "0").returncode == 2
    assert ctl(env, "changes", "--since", "yesterday").returncode == 2


def test_restart_stop_and_start_act_and_a_refused_id_does_not_stop_the_others(
    plane: RunningControlPlane, env: dict[str, str]
) -> None:
    pid = sleeper(plane)["runtime"]["pid"]
    restarted = ctl(env, "restart", "nobody", "svc")
    assert restarted.returncode == 1
    assert "instance/svc restart requested" in restarted.stdout
    assert "error: nobody:" in restarted.stderr
    plane.wait_for("svc", lambda v: v["status"] == "Running" and v["runtime"]["pid"] != pid)

    assert ctl(env, "stop", "svc").returncode == 0
    plane.wait_for("svc", lambda v: v["status"] == "Stopped")
    assert ctl(env, "start", "svc").returncode == 0
    plane.wait_for("svc", lambda v: v["status"] == "Running")


def test_describe_shows_the_record_policy_restarts_and_recent_changes(
    plane: RunningControlPlane, env: dict[str, str]
) -> None:
    sleeper(plane, mode="always")
    sleeper(plane, "other")
    assert ctl(env, "restart", "svc").returncode == 0
    plane.wait_for("svc", lambda v: v["status"] == "Running" and v["runtime"] is not None)
    shown = ctl(env, "describe", "svc")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for heading in ("Name:              svc", "Platform:          process", "Process:", "Restart policy:",
                    "  mode:", "Restart history:", "Recent changes:"):
        assert heading in text
    history, recent = text.split("Restart history:")[1].split("Recent changes:")
    assert "Stopped -> Running  (operator)" in history  # the operator's restart
    assert "svc" in recent and "-> Running" in recent and "other" not in recent
    assert ctl(env, "describe", "nobody").returncode == 1


def test_delete_deregisters_and_stops_the_process(plane: RunningControlPlane, env: dict[str, str]) -> None:
    pid = sleeper(plane)["runtime"]["pid"]
    deleted = ctl(env, "delete", "svc")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "instance/svc deleted"
    assert plane.get("/api/instances/svc").status_code == 404
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 5.0, 0.02, "the process ends")
    assert ctl(env, "delete", "svc").returncode == 1


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_apply_registers_then_updates_only_the_restart_policy(
    plane: RunningControlPlane, env: dict[str, str], tmp_path: Path
) -> None:
    toml = tmp_path / "svc.toml"
    toml.write_text(
        'instanceId = "svc"\nplatform = "process"\n'
        f"[process]\ncommand = {json.dumps(SLEEP)}\n[restartPolicy]\nmode = \"on-failure\"\n"
    )
    created = ctl(env, "apply", "-f", str(toml))
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "instance/svc created"
    plane.janitor.track(plane.instance("svc")["runtime"]["pid"])
    assert ctl(env, "apply", "-f", str(toml)).stdout.strip() == "instance/svc unchanged"

    policy = tmp_path / "svc.yaml"
    policy.write_text(yaml.safe_dump({"instanceId": "svc", "platform": "process", "restartPolicy": {"mode": "never"}}))
    configured = ctl(env, "apply", "-f", str(policy))
    assert configured.stdout.strip() == "instance/svc configured", configured.stderr
    assert plane.instance("svc")["restartPolicy"]["mode"] == "never"

    moved = tmp_path / "svc.json"
    moved.write_text(json.dumps({"instanceId": "svc", "platform": "process", "process": {"command": ["true"]}}))
    refused = ctl(env, "apply", "-f", str(moved))
    assert refused.returncode == 1
    assert "(field: process.command)" in refused.stderr


def test_apply_prints_the_apis_refusal_of_a_bad_registration(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instanceId": "x", "platform": "process", "process": {"command": []}}]))
    refused = ctl(env, "apply", "-f", str(bad))
    assert refused.returncode == 1
    assert "(field: process.command)" in refused.stderr
    other = tmp_path / "bad.ini"
    other.write_text("")
    assert ctl(env, "apply", "-f", str(other)).returncode == 1


def test_changes_after_a_cursor_and_since_a_time(plane: RunningControlPlane, env: dict[str, str]) -> None:
    sleeper(plane)
    after = ctl(env, "changes", "--after", "0")
    assert after.returncode == 0, after.stderr
    lines = after.stdout.splitlines()
    assert lines and all("  svc  process  " in line for line in lines)
    assert lines[0].split()[1] == "#1"
    assert ctl(env, "changes", "--after", "0", "--limit", "1").stdout.count("\n") == 1
    since = ctl(env, "changes", "--since", "5m", "-o", "json")
    assert [c["instanceId"] for c in json.loads(since.stdout)] == ["svc"] * len(lines)


PRINTER = """
import os, sys, time
for i in range(1, 4):
    print(f"line {i}", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
print("appended", flush=True)
time.sleep(60)
"""


def test_logs_prints_the_tail_and_follows_what_is_appended(
    plane: RunningControlPlane, env: dict[str, str], tmp_path: Path
) -> None:
    trigger = tmp_path / "more"
    plane.register({"instanceId": "printer", "platform": "process",
                    "process": {"command": [sys.executable, "-c", PRINTER, str(trigger)]}})
    wait_until(lambda: "line 3" in ctl(env, "logs", "printer").stdout, 5.0, 0.05, "three lines")
    assert ctl(env, "logs", "printer", "--tail", "2").stdout == "line 2\nline 3\n"

    follower = subprocess.Popen(ctl_command("logs", "printer", "-f", "--tail", "1"), cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "line 3\n"
        trigger.touch()
        assert follower.stdout.readline() == "appended\n"  # blocks until -f prints it; the timeout below bounds it
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)
    sleeper(plane, "quiet")
    assert ctl(env, "logs", "quiet").stdout == ""


def test_contexts_in_the_config_file_are_used_and_keep_the_key_private(
    plane: RunningControlPlane, tmp_path: Path
) -> None:
    bare = ctl_env(tmp_path / "config")  # no DRAAS_URL nor key: the contexts decide
    made = ctl(bare, "config", "set-context", "local", "--url", plane.base_url, "--api-key", plane.operator_key)
    assert made.returncode == 0, made.stderr
    assert ctl(bare, "config", "set-context", "dead", "--url", "http://127.0.0.1:9").returncode == 0
    path = tmp_path / "config" / "draas" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = ctl(bare, "config", "get-contexts").stdout
    assert plane.operator_key not in listed
    assert [line.split()[0] for line in listed.splitlines()[1:]] == ["*", "dead"]  # the first one made is current

    assert ctl(bare, "get").returncode == 0
    assert ctl(bare, "config", "current-context").stdout.strip() == f"{plane.base_url} (context local, key set)"
    unreachable = ctl(bare, "--context", "dead", "get")
    assert unreachable.returncode == 1 and "cannot reach http://127.0.0.1:9 (context dead)" in unreachable.stderr
    assert ctl(bare, "config", "use-context", "dead").returncode == 0
    assert ctl(bare, "get").returncode == 1
    assert ctl(bare, "config", "use-context", "nowhere").returncode == 1
    # The environment beats the current context, as kubectl's flags beat its context.
    assert ctl({**bare, "DRAAS_URL": plane.base_url, "DRAAS_API_KEY": plane.operator_key}, "get").returncode == 0
    assert ctl(bare, "config", "delete-context", "dead").returncode == 0
    assert "dead" not in ctl(bare, "config", "get-contexts").stdout


def test_without_a_key_the_refusal_says_how_to_give_one(plane: RunningControlPlane, tmp_path: Path) -> None:
    refused = ctl(ctl_env(tmp_path / "config", DRAAS_URL=plane.base_url), "get")
    assert refused.returncode == 1
    assert "DRAAS_API_KEY" in refused.stderr


def test_shell_completion_is_clicks_and_completes_instance_ids(
    plane: RunningControlPlane, env: dict[str, str]
) -> None:
    sleeper(plane, "svc-a")
    script = ctl({**env, "_DRAASCTL_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "_draasctl_completion" in script.stdout
    words = {**env, "_DRAASCTL_COMPLETE": "bash_complete", "COMP_WORDS": "draasctl describe svc", "COMP_CWORD": "2"}
    assert ctl(words).stdout.split() == ["plain,svc-a"]
