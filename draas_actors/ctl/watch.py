"""``draasctl watch``: follow the live change stream (``GET /api/status/stream``), one line per change.

It resumes where it was after any break (a restart of the control plane, a proxy's timeout, an ``overflow``): it
reconnects with ``Last-Event-ID`` (the cursor of the last event it printed) and the ``storeId`` it was reading, so
no change is missed or printed twice, and a replaced store is said (a ``reset`` event) rather than hidden.
Reconnecting waits 0.5 s, doubling to 5 s, and gives up (exit 1) once no connection has worked for ``--retry-for``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
import requests

from .app import Session, cli, pass_session
from .client import ApiError
from .instances import PLATFORMS, complete_ids
from .output import change_line
from .sse import Event, events, lines

STREAM_PATH = "/api/status/stream"
STORE_HEADER = "X-Draas-Store-Id"
READ_SIZE = 65536
READ_TIMEOUT = 45.0  # three of the server's 15 s heartbeats: silence beyond it is a dead connection
FIRST_DELAY, MAX_DELAY = 0.5, 5.0  # seconds before a reconnect, doubling


def note(text: str) -> None:
    click.echo(f"# {text}", err=True)


class Watcher:
    """One ``watch``: where it is (the last event id, the store), and what it prints of each event."""

    def __init__(self, session: Session, params: dict[str, Any], after: int | None, fmt: str) -> None:
        self.session = session
        self.params = params
        self.last_id = after
        self.store_id: str | None = None
        self.fmt = fmt

    def follow_once(self) -> None:
        """One connection, read to its end; ``ApiError`` when it was refused or could not be made."""
        headers = {} if self.last_id is None else {"Last-Event-ID": str(self.last_id)}
        params = {**self.params, **({"storeId": self.store_id} if self.store_id else {})}
        client = self.session.client
        with client.request("GET", STREAM_PATH, params=params, headers=headers, stream=True,
                            timeout=(client.timeout, READ_TIMEOUT)) as response:
            self.store_id = response.headers.get(STORE_HEADER, self.store_id)
            # read1: what has arrived, at once. iter_lines holds a short event back until its chunk fills, or (with
            # no chunk size) until a stream without chunked encoding ends.
            chunks = iter(lambda: response.raw.read1(READ_SIZE), b"")
            for event in events(lines(chunks)):
                self.show(event)

    def show(self, event: Event) -> None:
        if event.id is not None and event.id.isdigit():
            self.last_id = int(event.id)
        data = json.loads(event.data)
        if event.name == "StatusChanged":
            line = json.dumps(data) if self.fmt == "json" else change_line(data, colour=self.session.colour)
            click.echo(line)
        elif event.name == "gap":
            note(f"changes up to #{data - 1} were pruned by retention before they were read; going on from #{data}")
        elif event.name == "reset":
            self.store_id = data.get("storeId", self.store_id)
            note(f"the control plane's store is another one ({self.store_id}): going on live from #{data['cursor']}")
        elif event.name == "overflow":
            note(f"fell {data.get('behind')} changes behind; the server closed the stream")


@cli.command()
@click.argument("ids", nargs=-1, metavar="[ID]...", shell_complete=complete_ids)
@click.option("--platform", multiple=True, type=click.Choice(PLATFORMS), help="Only this platform (repeatable).")
@click.option("--status", multiple=True, help="Only moves into this status (repeatable, any case).")
@click.option("--after", type=click.IntRange(min=0), metavar="CURSOR",
              help="Replay the changes after this cursor first (default: only new ones).")
@click.option("--retry-for", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds to go on reconnecting while no connection works.")
@click.option("-o", "--output", "fmt", type=click.Choice(("line", "json")), default="line", show_default=True)
@pass_session
def watch(session: Session, ids: tuple[str, ...], platform: tuple[str, ...], status: tuple[str, ...],
          after: int | None, retry_for: float, fmt: str) -> None:
    """Print each change as it happens, until interrupted; resumes after a reconnect."""
    params: dict[str, Any] = {"instanceId": list(ids), "platform": list(platform), "status": list(status)}
    watcher = Watcher(session, {k: v for k, v in params.items() if v}, after, fmt)
    delay, failing_since = FIRST_DELAY, time.monotonic()
    try:
        while True:
            try:
                watcher.follow_once()
                failing_since, delay = time.monotonic(), FIRST_DELAY  # it worked: a fresh budget for the next break
                why = "the stream ended"
            except ApiError as error:
                if error.status is not None and error.status != 503:
                    raise  # refused: a bad filter, no key, no right to read (exit 1)
                why = error.message
            except requests.RequestException as error:
                failing_since, delay = time.monotonic(), FIRST_DELAY  # connected, then broke
                why = f"the connection broke ({type(error).__name__})"
            if time.monotonic() - failing_since > retry_for:
                raise ApiError(f"{why}; gave up after {retry_for:g}s without a working connection")
            resume = "" if watcher.last_id is None else f" after #{watcher.last_id}"
            note(f"{why}; reconnecting{resume} in {delay:g}s")
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)
    except KeyboardInterrupt:
        return
