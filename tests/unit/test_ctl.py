"""draasctl's pure parts: contexts and their precedence, the apply plan, tables, ages and change lines."""

from __future__ import annotations

import configparser
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest

from draas_actors.ctl import contexts
from draas_actors.ctl.contexts import Context, ContextError, CtlConfig, Target, resolve
from draas_actors.ctl.history import parse_since
from draas_actors.ctl.manifest import Action, ManifestError, plan, read
from draas_actors.ctl.output import age, change_line, table
from draas_actors.ctl.paths import instance_path
from draas_actors.ctl.sse import Event, events, lines
from draas_actors.ctl.webhooks import create_body, webhooks_table

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TWO = CtlConfig("a", {"a": Context("a", "http://a:1", "key-a"), "b": Context("b", "http://b:2", None)})


def test_the_config_file_is_under_xdg_config_home_or_home() -> None:
    assert contexts.config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/draas/config.toml")
    assert contexts.config_path({"HOME": "/h"}) == Path("/h/.config/draas/config.toml")


def test_contexts_survive_a_write_and_a_read_with_awkward_characters(tmp_path: Path) -> None:
    config = CtlConfig("a", {"a": Context("a", 'http://x/"q"\\', "k\u00e9y\n"), "b": Context("b", "http://b", None)})
    path = tmp_path / "draas" / "config.toml"
    contexts.save(path, config)
    assert contexts.load(path) == config
    assert contexts.load(tmp_path / "missing.toml") == CtlConfig()


def test_the_context_flag_beats_the_environment_which_beats_the_current_context() -> None:
    assert resolve(TWO, {}, "b") == Target("http://b:2", None, "context b")
    assert resolve(TWO, {"DRAAS_URL": "http://env/"}, None) == Target("http://env", "key-a", "DRAAS_URL")
    assert resolve(TWO, {"DRAAS_API_KEY": "k"}, None) == Target("http://a:1", "k", "context a")
    assert resolve(CtlConfig(), {}, None) == Target(contexts.DEFAULT_URL, None, "default")
    with pytest.raises(ContextError):
        resolve(TWO, {}, "c")


def test_set_use_and_delete_context() -> None:
    made = contexts.set_context(CtlConfig(), "one", "http://1", None)
    assert made.current == "one"  # the first one made is current
    keyed = contexts.set_context(made, "one", None, "key")
    assert keyed.contexts["one"] == Context("one", "http://1", "key")
    both = contexts.use_context(contexts.set_context(keyed, "two", "http://2", None), "two")
    assert both.current == "two"
    assert contexts.delete_context(both, "two").current is None
    with pytest.raises(ContextError):
        contexts.set_context(made, "new", None, None)  # a new context needs its URL
    with pytest.raises(ContextError):
        contexts.set_context(made, "no spaces", "http://x", None)
    with pytest.raises(ContextError):
        contexts.use_context(made, "nowhere")


CURRENT: dict[str, Any] = {
    "instanceId": "svc", "platform": "process",
    "process": {"command": ["sleep", "9"], "cwd": None, "envKeys": ["A"], "adoptedPid": None, "stopTimeout": 10.0},
    "restartPolicy": {"mode": "on-failure", "successExitCodes": [0], "maxRestarts": 5},
}


@pytest.mark.parametrize(
    ("wanted", "action"),
    [
        ({"restartPolicy": {"mode": "on-failure"}}, Action.NOTHING),
        ({"restartPolicy": {"successExitCodes": [0]}}, Action.NOTHING),
        ({}, Action.NOTHING),
        ({"restartPolicy": {"mode": "always"}}, Action.UPDATE_POLICY),
        ({"process": {"command": ["sleep", "9"], "env": {"A": "secret"}}}, Action.NOTHING),
    ],
)
def test_apply_to_a_registered_instance_changes_only_a_differing_policy(wanted: dict[str, Any], action: Action) -> None:
    assert plan({"instanceId": "svc", "platform": "process", **wanted}, CURRENT) is action
    assert plan({"instanceId": "svc", "platform": "process", **wanted}, None) is Action.CREATE


@pytest.mark.parametrize(
    ("wanted", "field"),
    [
        ({"platform": "docker"}, "platform"),
        ({"process": {"command": ["sleep", "10"]}}, "process.command"),
        ({"process": {"env": {"B": "1"}}}, "process.env"),
        ({"process": {"stopTimeout": 3}}, "process.stopTimeout"),
    ],
)
def test_apply_refuses_to_change_the_platform_or_process_naming_the_field(wanted: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError) as raised:
        plan({"instanceId": "svc", "platform": "process", **wanted}, CURRENT)
    assert raised.value.field == field


def test_a_manifest_is_one_registration_a_list_or_an_instances_list(tmp_path: Path) -> None:
    one = 'instanceId = "a"\nplatform = "process"\n'
    assert read(tmp_path / "a.toml", one) == [{"instanceId": "a", "platform": "process"}]
    listed = '[[instances]]\ninstanceId = "a"\n[[instances]]\ninstanceId = "b"\n'
    assert [i["instanceId"] for i in read(tmp_path / "a.toml", listed)] == ["a", "b"]
    assert read(tmp_path / "a.yml", "- instanceId: a\n") == [{"instanceId": "a"}]
    for name, text in (("a.json", "{"), ("a.json", "[1]"), ("a.txt", "")):
        with pytest.raises(ManifestError):
            read(tmp_path / name, text)


def test_ages_are_shown_as_kubectl_shows_them() -> None:
    assert [age(t, NOW) for t in ("2026-01-02T03:04:00Z", "2026-01-02T02:00:00Z", "2025-12-30T03:04:05Z", None)] == [
        "5s", "1h", "3d", "-",
    ]


def test_a_table_pads_by_what_shows_not_by_colour_codes() -> None:
    red = click.style("Failed", fg="red")
    lines = table(["ID", "STATUS", "X"], [["a", red, "1"], ["long-id", "Running", "2"]]).splitlines()
    assert click.unstyle(lines[1]) == "a         Failed    1"
    assert lines[2] == "long-id   Running   2"


def test_a_change_is_one_line_with_its_cursor_and_reason() -> None:
    change = {"cursor": 7, "kind": "status", "instanceId": "svc", "platform": "process", "oldStatus": "Running",
              "newStatus": "Failed", "source": "process-monitor", "timestamp": "2026-01-02T03:04:05Z",
              "metadata": {"reason": "exit code 1"}}
    assert change_line(change, colour=False) == (
        "2026-01-02T03:04:05Z  #7  svc  process  Running -> Failed  (process-monitor: exit code 1)"
    )
    assert "\x1b[31mFailed" in change_line(change, colour=True)


def test_since_takes_a_duration_or_a_time() -> None:
    assert parse_since("5m", NOW) == "2026-01-02T02:59:05+00:00"
    assert parse_since("2026-01-01T00:00:00", NOW) == "2026-01-01T00:00:00+00:00"
    with pytest.raises(click.BadParameter):
        parse_since("soon", NOW)


def test_an_instance_id_is_quoted_in_a_path() -> None:
    assert instance_path("a/b c", "/logs") == "/api/instances/a%2Fb%20c/logs"


def test_the_console_script_names_the_function_python_dash_m_runs() -> None:
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    scripts = dict(
        line.split(" = ") for line in setup["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    module, function = scripts["draasctl"].split(":")
    assert getattr(importlib.import_module(module), function) is importlib.import_module("draas_actors.ctl").main


def test_sse_events_are_parsed_as_the_standard_says() -> None:
    text = ": heartbeat\n\nid: 4\nevent: StatusChanged\ndata: {\"a\":\ndata: 1}\n\ndata:x\n\nid: 5\n\n"
    assert list(events(text.split("\n"))) == [Event("StatusChanged", '{"a":\n1}', "4"), Event("message", "x", None)]


def test_lines_come_whole_however_the_bytes_are_cut() -> None:
    chunks = [b"id: 1\r", b"\ndata: \xc3", b"\xa9\n", b"\npartial"]
    assert list(lines(chunks)) == ["id: 1", "data: \u00e9", ""]


def test_a_webhook_is_created_with_only_the_filter_lists_given() -> None:
    assert create_body("https://h/x", None, (), (), ()) == {"url": "https://h/x"}
    assert create_body("https://h/x", "ops", ("a",), (), ("Failed",)) == {
        "url": "https://h/x", "description": "ops", "filter": {"instanceIds": ["a"], "statuses": ["Failed"]},
    }


def test_webhooks_are_listed_with_their_lag_and_filter_never_a_secret() -> None:
    view = {"id": "wh_1", "url": "https://h/x", "lag": 3, "filter": {"platforms": ["docker"], "statuses": []},
            "description": "", "secret": "whsec_hidden"}
    shown = webhooks_table([view])
    assert shown.splitlines()[1].split() == ["wh_1", "https://h/x", "3", "platforms=docker"]
    assert "whsec_" not in shown
    assert webhooks_table([]) == "No webhooks found."
