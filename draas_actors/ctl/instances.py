"""Commands on instances: get, describe, start, stop, restart, delete, apply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from .app import Session, cli, each, pass_session
from .client import ApiError
from .contexts import ContextError
from .manifest import Action, plan, read
from .output import FORMATS, age, change_line, instances_table, now_utc, paint, structured
from .paths import instance_path

RESOURCE_NAMES = ("instances", "instance", "inst")
PLATFORMS = ("process", "docker", "kubernetes")
RECENT_CHANGES = 10  # describe shows this many of an instance's changes and of its restarts ...
DESCRIBE_CHANGES = 500  # ... found among its newest so many changes
# A restart, as the change log shows it: from an end (an exit, a stop, a planned restart) back to life.
_ENDED = frozenset({"Restarting", "Stopped", "Failed", "Stopping"})
_LIVE = frozenset({"Starting", "Running"})


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of instance ids, asked of the API; nothing when it cannot answer."""
    # Completion resolves the command line without running the group's callback: no Session exists yet.
    root = ctx.find_root().params
    session = Session(root.get("context_name"), min(root.get("request_timeout") or 2.0, 2.0))
    try:
        views = session.client.get("/api/instances")["instances"]
    except (ApiError, ContextError, KeyError, TypeError, ValueError):
        return []
    finally:
        session.close()
    return [CompletionItem(v["instanceId"]) for v in views if v["instanceId"].startswith(incomplete)]


def _print(data: Any, fmt: str, session: Session, views: Sequence[Mapping[str, Any]]) -> None:
    if fmt in ("json", "yaml"):
        click.echo(structured(data, fmt))
    else:
        click.echo(instances_table(views, wide=fmt == "wide", colour=session.colour, now=now_utc()))


@cli.command()
@click.argument("args", nargs=-1, metavar="[instances] [ID]...", shell_complete=complete_ids)
@click.option("--platform", type=click.Choice(PLATFORMS), help="Only instances on this platform.")
@click.option("--status", help="Only instances in this status (any case).")
@click.option("-o", "--output", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@pass_session
def get(session: Session, args: tuple[str, ...], platform: str | None, status: str | None, fmt: str) -> None:
    """List instances, or show the ones named."""
    ids = args[1:] if args and args[0] in RESOURCE_NAMES else args
    if ids:
        views = [session.client.get(instance_path(i)) for i in ids]
        _print(views[0] if len(views) == 1 else views, fmt, session, views)
        return
    views = session.client.get("/api/instances", platform=platform, status=status)["instances"]
    _print(views, fmt, session, views)


def _recent_changes(session: Session, instance_id: str) -> list[dict[str, Any]]:
    """The instance's newest changes, oldest first, of all time (since=0)."""
    changes: list[dict[str, Any]] = session.client.get(
        "/api/status/recent-changes", instanceId=instance_id, since=0, limit=DESCRIBE_CHANGES
    )
    return changes


def _section(title: str, fields: Mapping[str, Any]) -> list[str]:
    lines = [f"{title}:"]
    lines += [f"  {key}:{' ' * max(1, 18 - len(key))}{value}" for key, value in fields.items()] or ["  <none>"]
    return lines


def describe_text(view: Mapping[str, Any], changes: Sequence[Mapping[str, Any]], *, colour: bool,
                  now: datetime) -> str:
    """kubectl describe's shape: the record, its policy, its restarts and its recent changes."""
    runtime, process = view.get("runtime"), view.get("process")
    lines = [
        f"Name:              {view['instanceId']}",
        f"Platform:          {view['platform']}",
        f"Status:            {paint(view['status'], colour)} since {view['statusSince']} "
        f"({age(view['statusSince'], now)})",
        f"Operator stopped:  {str(view['operatorStopped']).lower()}",
        f"Restarts:          {view['restartCount']}",
        f"Last exit code:    {'-' if view['lastExitCode'] is None else view['lastExitCode']}",
        f"Last stop cause:   {view.get('lastStopCause') or '-'}",
        f"Last reason:       {view.get('lastReason') or '-'}",
        f"Next restart at:   {view.get('nextRestartAt') or '-'}",
        f"Created:           {view.get('createdAt') or '-'}",
    ]
    if runtime is not None:
        lines.append(f"PID:               {runtime['pid']} (started {runtime['startedAt']})")
    if process is not None:
        lines += _section("Process", {
            "Command": " ".join(process["command"]), "Cwd": process.get("cwd") or "-",
            "Env keys": ", ".join(process["envKeys"]) or "-", "Stop timeout": f"{process['stopTimeout']}s",
            **({"Adopted PID": process["adoptedPid"]} if process.get("adoptedPid") else {}),
        })
    lines += _section("Restart policy", view["restartPolicy"])
    lines += _section("Metadata", view.get("metadata") or {})
    restarts = [c for c in changes if c["oldStatus"] in _ENDED and c["newStatus"] in _LIVE]
    for title, shown in (("Restart history", restarts), ("Recent changes", changes)):
        listed = [f"  {change_line(c, colour=colour)}" for c in shown[-RECENT_CHANGES:]]
        lines += [f"{title}:", *(listed or ["  <none>"])]
    return "\n".join(lines)


@cli.command()
@click.argument("instance_id", metavar="ID", shell_complete=complete_ids)
@pass_session
def describe(session: Session, instance_id: str) -> None:
    """Show one instance: record, restart policy, restart history, recent changes."""
    view = session.client.get(instance_path(instance_id))
    click.echo(describe_text(view, _recent_changes(session, instance_id), colour=session.colour, now=now_utc()))


def _action_command(action: str, done: str) -> None:
    @cli.command(name=action, help=f"{action.capitalize()} instances (the effect follows asynchronously).")
    @click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete_ids)
    @pass_session
    def command(session: Session, ids: tuple[str, ...]) -> None:
        def act(instance_id: str) -> None:
            view = session.client.post(instance_path(instance_id, f"/{action}"))
            click.echo(f"instance/{instance_id} {done} (status {paint(view['status'], session.colour)})")

        each(ids, str, act)


for _action in ("start", "stop", "restart"):
    _action_command(_action, f"{_action} requested")


@cli.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...", shell_complete=complete_ids)
@click.option("--keep-running", is_flag=True, help="Deregister only: leave the workload running.")
@pass_session
def delete(session: Session, ids: tuple[str, ...], keep_running: bool) -> None:
    """Deregister instances (and stop their workloads unless --keep-running)."""

    def act(instance_id: str) -> None:
        session.client.delete(instance_path(instance_id), stop="false" if keep_running else "true")
        click.echo(f"instance/{instance_id} deleted")

    each(ids, str, act)


@cli.command()
@click.option("-f", "--filename", "path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A registration (or a list, or an instances list) in .toml, .yaml or .json.")
@pass_session
def apply(session: Session, path: Path) -> None:
    """Register the instances of a file, or update the restart policy of those already registered.

    A registered instance's platform and process cannot change here (refused naming the field: delete and apply
    again); its restartPolicy, when the file gives one that differs, replaces the current one whole."""
    items = read(path, path.read_text())

    def act(item: dict[str, Any]) -> None:
        instance_id = item["instanceId"]
        try:
            current = session.client.get(instance_path(instance_id))
        except ApiError as error:
            if error.status != 404:
                raise
            current = None
        action = plan(item, current)
        if action is Action.CREATE:
            session.client.post("/api/instances", item)
        elif action is Action.UPDATE_POLICY:
            session.client.put(instance_path(instance_id, "/restart-policy"), item["restartPolicy"])
        click.echo(f"instance/{instance_id} {action.value}")

    each(items, lambda item: str(item["instanceId"]), act)
