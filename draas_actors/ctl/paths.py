"""API paths of one instance, its id quoted: an id may hold characters a path cannot."""

from __future__ import annotations

from urllib.parse import quote


def instance_path(instance_id: str, suffix: str = "") -> str:
    return f"/api/instances/{quote(instance_id, safe='')}{suffix}"
