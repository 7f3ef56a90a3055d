"""How draasctl shows what the API answered: kubectl-like tables, JSON, YAML, and one line per change."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
import yaml

FORMATS = ("table", "wide", "json", "yaml")
# ANSI colours by status name (click.style), so a terminal reader sees at a glance what is wrong.
_COLOURS = {
    "Running": "green", "Failed": "red", "Unhealthy": "red", "Restarting": "yellow", "Starting": "yellow",
    "Stopping": "yellow", "Pending": "yellow", "Stopped": "bright_black", "Removed": "bright_black",
    "Unknown": "magenta",
}


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def age(text: str | None, now: datetime) -> str:
    """A time as kubectl shows an age: 42s, 5m, 3h, 2d; "-" when none."""
    moment = parse_time(text)
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def paint(status: str, colour: bool) -> str:
    return click.style(status, fg=_COLOURS.get(status)) if colour and status in _COLOURS else status


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    widths = [max(len(click.unstyle(row[i])) for row in (headers, *rows)) for i in range(len(headers))]

    def pad(cell: str, width: int) -> str:
        return cell + " " * (width - len(click.unstyle(cell)))  # colour codes take no room on the screen

    return "\n".join("   ".join(map(pad, row, widths)).rstrip() for row in (headers, *rows))


def _reason(view: Mapping[str, Any]) -> str:
    reason = view.get("lastReason") or "-"
    return reason if len(reason) <= 60 else reason[:57] + "..."


_Column = tuple[str, Callable[[Mapping[str, Any], datetime, bool], str]]
_COLUMNS: tuple[_Column, ...] = (
    ("ID", lambda v, now, c: v["instanceId"]),
    ("PLATFORM", lambda v, now, c: v["platform"]),
    ("STATUS", lambda v, now, c: paint(v["status"], c)),
    ("RESTARTS", lambda v, now, c: str(v["restartCount"])),
    ("AGE", lambda v, now, c: age(v.get("statusSince"), now)),
)
_WIDE: tuple[_Column, ...] = (
    ("PID", lambda v, now, c: str(v["runtime"]["pid"]) if v.get("runtime") else "-"),
    ("EXIT", lambda v, now, c: "-" if v.get("lastExitCode") is None else str(v["lastExitCode"])),
    ("POLICY", lambda v, now, c: v["restartPolicy"]["mode"]),
    ("NEXT-RESTART", lambda v, now, c: v.get("nextRestartAt") or "-"),
    ("REASON", lambda v, now, c: _reason(v)),
)


def instances_table(views: Sequence[Mapping[str, Any]], *, wide: bool, colour: bool, now: datetime) -> str:
    columns = _COLUMNS + (_WIDE if wide else ())
    if not views:
        return "No instances found."
    return table([name for name, _ in columns], [[cell(v, now, colour) for _, cell in columns] for v in views])


def structured(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")


def change_line(change: Mapping[str, Any], *, colour: bool) -> str:
    """One change: time, cursor, instance, platform, old -> new status, and what reported it (and why)."""
    new = paint(change["newStatus"], colour)
    moved = (
        f"configuration changed ({new})" if change.get("kind") == "configuration"
        else f"{paint(change['oldStatus'], colour)} -> {new}"
    )
    reason = change.get("metadata", {}).get("reason")
    parts = [
        change["timestamp"], f"#{change['cursor']}" if "cursor" in change else "", change["instanceId"],
        change.get("platform", ""), moved, f"({change['source']}{': ' + reason if reason else ''})",
    ]
    return "  ".join(part for part in parts if part)


def now_utc() -> datetime:
    return datetime.now(UTC)
