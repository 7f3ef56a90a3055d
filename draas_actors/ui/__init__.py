"""The dashboard's files: plain JavaScript modules, CSS and HTML under ``static/``, shipped as package data.

No build step and nothing fetched from elsewhere: the control plane serves these bytes as they are (``api/ui.py``).
"""

from __future__ import annotations

from importlib import resources

# Name -> media type of what may be served: anything else under static/ (or outside it) is a 404.
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every servable file under static/, by name: its bytes and media type (read once: they are small)."""
    found: dict[str, tuple[bytes, str]] = {}
    for entry in (resources.files(__name__) / "static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            found[entry.name] = (entry.read_bytes(), MEDIA_TYPES[suffix])
    return found


__all__ = ["MEDIA_TYPES", "static_files"]
