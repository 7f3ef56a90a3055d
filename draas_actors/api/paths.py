"""Routes under ``/api/status`` match in any case, as ASP.NET matched upstream's StatusController.

A client written for upstream may call ``/api/Status/updates`` or ``/API/STATUS/recent-changes``. One middleware
spells the literal segments of such a path as the route table does, before falcon routes it; the segments that fill
a template's fields (instance ids) keep their case, since ids are case-sensitive.
"""

from __future__ import annotations

from collections.abc import Iterable

import falcon

Template = tuple[str, ...]  # a route template's segments; "{name}" marks a field


class CaseInsensitiveRoutes:
    """falcon middleware: rewrites ``req.path`` to the route table's spelling of the templates under ``prefix``."""

    def __init__(self, templates: Iterable[str], *, prefix: str = "/api/status") -> None:
        self.prefix = prefix.lower()
        chosen = [_segments(t) for t in templates if t.lower().startswith(self.prefix)]
        # With two candidates for one path, the one with more literal segments is the one meant (as in routing).
        self.templates: list[Template] = sorted(chosen, key=lambda t: sum(_is_field(s) for s in t))

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not req.path.lower().startswith(self.prefix):
            return
        spelled = self.spell(req.path)
        if spelled is not None:
            req.path = spelled

    def spell(self, path: str) -> str | None:
        """``path`` with its literal segments spelled as the matching template's; None if no template matches."""
        segments = _segments(path)
        for template in self.templates:
            if len(template) == len(segments) and all(
                _is_field(t) or t.lower() == s.lower() for t, s in zip(template, segments, strict=True)
            ):
                return "/" + "/".join(s if _is_field(t) else t for t, s in zip(template, segments, strict=True))
        return None


def _segments(path: str) -> Template:
    return tuple(path.strip("/").split("/"))


def _is_field(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")
