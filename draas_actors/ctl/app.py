"""The ``draasctl`` command group: global options, the target it talks to, and exit codes in one place.

Exit codes: 0 success; 1 the API refused (its message and field on stderr), could not be reached, or a file or
context was unusable; 2 usage (click's own: an unknown command or option, a missing argument, a bad choice).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from .client import ApiError, Client
from .contexts import ContextError, config_path, load, resolve
from .manifest import ManifestError

REFUSED = 1  # the API, a file or a context said no
T = TypeVar("T")


@dataclass
class Session:
    """What a command needs, made on first use: ``config`` commands run without any server."""

    context_name: str | None
    timeout: float
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            config = load(config_path(os.environ))
            self._client = Client(resolve(config, os.environ, self.context_name), timeout=self.timeout)
        return self._client

    @property
    def colour(self) -> bool:
        return sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def fail(message: str, field: str | None) -> None:
    """Print a refusal as the API gave it (its field too) and stop with exit code 1."""
    click.echo(f"error: {message}" + (f" (field: {field})" if field else ""), err=True)
    raise click.exceptions.Exit(REFUSED)


def each(items: Sequence[T], name: Callable[[T], str], act: Callable[[T], None]) -> None:
    """``act`` on every item, going on past refusals (each printed with its field); exit code 1 if any was."""
    refused = False
    for item in items:
        try:
            act(item)
        except (ApiError, ManifestError) as error:
            refused = True
            field = f" (field: {error.field})" if error.field else ""
            click.echo(f"error: {name(item)}: {error.message}{field}", err=True)
    if refused:
        raise click.exceptions.Exit(REFUSED)


class Group(click.Group):
    """Turns the errors every command can meet into exit code 1 and a message, so commands need no try blocks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ApiError, ContextError, ManifestError) as error:
            fail(error.message, error.field)
        return None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--context", "context_name", metavar="NAME", help="Use this context of the config file.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for the server.")
@click.pass_context
def cli(ctx: click.Context, context_name: str | None, request_timeout: float) -> None:
    """Operate a draas control plane: DRAAS_URL and DRAAS_API_KEY, or a context of
    $XDG_CONFIG_HOME/draas/config.toml (draasctl config --help)."""
    session = Session(context_name, request_timeout)
    ctx.obj = session
    ctx.call_on_close(session.close)


pass_session = click.make_pass_decorator(Session)
