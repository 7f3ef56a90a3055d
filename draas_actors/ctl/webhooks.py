"""``draasctl webhooks list|create|delete``: the admin API of webhooks (``/api/webhooks``, issue 12)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import click

from .app import Session, cli, each, pass_session
from .instances import PLATFORMS
from .output import structured, table

WEBHOOKS_PATH = "/api/webhooks"


def webhook_path(webhook_id: str) -> str:
    return f"{WEBHOOKS_PATH}/{quote(webhook_id, safe='')}"


def create_body(url: str, description: str | None, ids: Sequence[str], platforms: Sequence[str],
                statuses: Sequence[str]) -> dict[str, Any]:
    """``POST /api/webhooks``' body: only what was given (the server generates the secret)."""
    lists = {"instanceIds": list(ids), "platforms": list(platforms), "statuses": list(statuses)}
    body: dict[str, Any] = {"url": url}
    if description is not None:
        body["description"] = description
    if any(lists.values()):
        body["filter"] = {key: values for key, values in lists.items() if values}
    return body


def _filter_text(view: Mapping[str, Any]) -> str:
    given = [f"{key}={','.join(values)}" for key, values in (view.get("filter") or {}).items() if values]
    return " ".join(given) or "*"


def webhooks_table(views: Sequence[Mapping[str, Any]]) -> str:
    if not views:
        return "No webhooks found."
    rows = [[v["id"], v["url"], str(v["lag"]), _filter_text(v), v.get("description") or ""] for v in views]
    return table(["ID", "URL", "LAG", "FILTER", "DESCRIPTION"], rows)


@cli.group()
def webhooks() -> None:
    """Webhooks: committed changes POSTed to a URL as signed CloudEvents (admin role)."""


@webhooks.command("list")
@click.option("-o", "--output", "fmt", type=click.Choice(("table", "json", "yaml")), default="table",
              show_default=True)
@pass_session
def list_webhooks(session: Session, fmt: str) -> None:
    """List webhooks with their lag (changes not yet delivered); secrets are never shown."""
    views = session.client.get(WEBHOOKS_PATH)["webhooks"]
    click.echo(webhooks_table(views) if fmt == "table" else structured(views, fmt))


@webhooks.command("create")
@click.argument("url")
@click.option("--description", help="What it is for.")
@click.option("--instance", "ids", multiple=True, metavar="ID", help="Only this instance's changes (repeatable).")
@click.option("--platform", "platforms", multiple=True, type=click.Choice(PLATFORMS), help="Only this platform.")
@click.option("--status", "statuses", multiple=True, help="Only moves into this status, e.g. Failed (repeatable).")
@click.option("-o", "--output", "fmt", type=click.Choice(("text", "json", "yaml")), default="text", show_default=True)
@pass_session
def create(session: Session, url: str, description: str | None, ids: tuple[str, ...], platforms: tuple[str, ...],
           statuses: tuple[str, ...], fmt: str) -> None:
    """Create a webhook to URL; its signing secret is printed this once."""
    view = session.client.post(WEBHOOKS_PATH, create_body(url, description, ids, platforms, statuses))
    if fmt != "text":
        click.echo(structured(view, fmt))
        return
    click.echo(f"webhook/{view['id']} created")
    click.echo(f"secret: {view['secret']}  (shown only now: give it to the receiver to verify signatures)")


@webhooks.command("delete")
@click.argument("webhook_ids", nargs=-1, required=True, metavar="ID...")
@pass_session
def delete(session: Session, webhook_ids: tuple[str, ...]) -> None:
    """Delete webhooks and their delivery records."""

    def act(webhook_id: str) -> None:
        session.client.delete(webhook_path(webhook_id))
        click.echo(f"webhook/{webhook_id} deleted")

    each(webhook_ids, str, act)
