"""Commands that read what happened: ``changes`` (the change log) and ``logs`` (a local process's output)."""

from __future__ import annotations

import codecs
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from .app import Session, cli, pass_session
from .instances import complete_ids
from .output import change_line, structured
from .paths import instance_path

FOLLOW_INTERVAL = 0.5  # seconds between two reads of ``logs -f``: output shows within this, at two requests a second
CHANGES_PAGE = 1000  # the API's largest page of GET /api/status/changes
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime) -> str:
    """``--since``: a duration back from now (30s, 5m, 2h, 1d) or an RFC 3339 time, as the API's RFC 3339."""
    found = _DURATION.match(text)
    if found:
        return (now - timedelta(seconds=float(found[1]) * _UNIT[found[2]])).isoformat()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("a duration (30s, 5m, 2h, 1d) or an RFC 3339 time", param_hint="--since") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _after(session: Session, cursor: int, limit: int) -> list[dict[str, Any]]:
    """Changes after ``cursor``, page by page, at most ``limit`` of them."""
    found: list[dict[str, Any]] = []
    while len(found) < limit:
        page = session.client.get("/api/status/changes", after=cursor, limit=min(CHANGES_PAGE, limit - len(found)))
        found += page["changes"]
        if not page["changes"] or page["nextCursor"] == cursor:
            break
        cursor = page["nextCursor"]
    return found


@cli.command()
@click.option("--since", metavar="DURATION|TIME", help="Changes since then (default 5m): 30s, 5m, 2h, 1d or RFC 3339.")
@click.option("--after", type=click.IntRange(min=0), metavar="CURSOR", help="Changes after this cursor (with ids).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("-o", "--output", "fmt", type=click.Choice(("line", "json", "yaml")), default="line", show_default=True)
@pass_session
def changes(session: Session, since: str | None, after: int | None, limit: int, fmt: str) -> None:
    """Print changes, oldest first: by time (--since) or after a cursor of the change feed (--after)."""
    if since is not None and after is not None:
        raise click.UsageError("give --since or --after, not both")
    if after is not None:
        found = _after(session, after, limit)
    else:
        when = parse_since(since or "5m", datetime.now(UTC))
        found = session.client.get("/api/status/recent-changes", since=when, limit=limit)
    if fmt != "line":
        click.echo(structured(found, fmt))
        return
    for change in found:
        click.echo(change_line(change, colour=session.colour))


@cli.command()
@click.argument("instance_id", metavar="ID", shell_complete=complete_ids)
@click.option("--tail", type=click.IntRange(min=1), help="Only the last N lines (default: all the server gives).")
@click.option("-f", "--follow", is_flag=True, help="Go on printing what the process writes, until interrupted.")
@click.option("--stderr", is_flag=True, help="Its standard error instead of its standard output.")
@pass_session
def logs(session: Session, instance_id: str, tail: int | None, follow: bool, stderr: bool) -> None:
    """Print a local process's output (its tail, then what follows with -f)."""
    path = instance_path(instance_id, "/logs")
    stream = "stderr" if stderr else "stdout"
    params: dict[str, Any] = {"stream": stream, **({"tail": tail} if tail is not None else {})}
    # Incremental: a multi-byte character cut between two reads is printed whole with the second.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while True:
            response = session.client.request("GET", path, params=params)
            text = decoder.decode(response.content)
            if text:
                click.echo(text, nl=False)
            if not follow:
                return
            behind = "after" in params and response.headers.get("X-Log-Truncated") == "true"
            params = {"stream": stream, "after": int(response.headers.get("X-Log-Offset", "0"))}
            if not behind:  # more is waiting: read it at once; else wait for the process to write
                time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return  # Ctrl-C is how -f ends: a success, wherever it lands
