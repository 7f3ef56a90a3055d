"""``draasctl config``: the named contexts of the config file, kubectl-style."""

from __future__ import annotations

import os

import click

from . import contexts
from .app import Session, cli, pass_session
from .output import table


@cli.group()
def config() -> None:
    """Named contexts (URL and API key) in $XDG_CONFIG_HOME/draas/config.toml, written with mode 0600."""


@config.command("set-context")
@click.argument("name")
@click.option("--url", help="The control plane's base URL, e.g. http://127.0.0.1:8088.")
@click.option("--api-key", envvar="DRAAS_SET_API_KEY", help="An operator key (or from DRAAS_SET_API_KEY, kept out "
              "of the shell's history).")
def set_context(name: str, url: str | None, api_key: str | None) -> None:
    """Add a context or change its URL or key (the first one added becomes current)."""
    path = contexts.config_path(os.environ)
    contexts.save(path, contexts.set_context(contexts.load(path), name, url, api_key))
    click.echo(f"context {name} set in {path}")


@config.command("use-context")
@click.argument("name")
def use_context(name: str) -> None:
    """Make NAME the current context."""
    path = contexts.config_path(os.environ)
    contexts.save(path, contexts.use_context(contexts.load(path), name))
    click.echo(f"switched to context {name}")


@config.command("delete-context")
@click.argument("name")
def delete_context(name: str) -> None:
    """Remove a context (and its key) from the file."""
    path = contexts.config_path(os.environ)
    contexts.save(path, contexts.delete_context(contexts.load(path), name))
    click.echo(f"deleted context {name}")


@config.command("get-contexts")
def get_contexts() -> None:
    """List the contexts; * marks the current one. Keys are never printed."""
    loaded = contexts.load(contexts.config_path(os.environ))
    rows = [
        ["*" if c.name == loaded.current else "", c.name, c.url, "yes" if c.api_key else "no"]
        for c in loaded.contexts.values()
    ]
    click.echo(table(["CURRENT", "NAME", "URL", "KEY"], rows))


@config.command("current-context")
@pass_session
def current_context(session: Session) -> None:
    """Where commands go now, and why (DRAAS_URL, --context, the current context, or the default)."""
    target = session.client.target
    click.echo(f"{target.url} ({target.source}, key {'set' if target.api_key else 'not set'})")
