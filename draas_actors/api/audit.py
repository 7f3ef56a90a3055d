"""The audit of rejected requests: every 401/403/413/415/422/429, in the store and one WARNING line.

Recorded after the fact (``process_response``), so every check, whichever middleware or resource made it, is
audited the same way. A flood must not make the audit an amplifier: repeated rejections (same identity, client,
route and status) within ``FOLD_WINDOW`` seconds of the first are folded into its entry, whose ``count`` grows;
only the first of each window is logged, so a flood costs at most one line and one row per second. The reason is
not compared: it can differ on every request (a 422 names the value it refused, a 429 the seconds to wait), and
a flood of distinct reasons would otherwise be a line per request; the entry keeps the first one's.
What is recorded is the route's URI template and the error's title and description: never the path's values,
the query string, or a header (where keys travel).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import falcon
from falcon.routing import CompiledRouter

from ..messages import AuditEntry
from ..system import ControlPlane

log = logging.getLogger("draas.audit")

AUDITED = frozenset({401, 403, 413, 415, 422, 429})
FOLD_WINDOW = 1.0
MAX_REASON = 300
UNMATCHED = "<unmatched>"
FoldKey = tuple[str | None, str, str, int]


class Folding:
    """Folds repeated rejections into the entry of the first one of their window; thread-safe."""

    def __init__(self, window: float = FOLD_WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._open: dict[FoldKey, AuditEntry] = {}
        self._pruned_at = float("-inf")

    def add(self, entry: AuditEntry) -> tuple[AuditEntry, bool]:
        """The entry to store (``entry`` itself, or its window's entry with ``count`` bumped) and whether it is new."""
        key = (entry.identity, entry.client, entry.route, entry.status)
        with self._lock:
            self._prune(entry.time)
            current = self._open.get(key)
            # A clock that stepped back starts a new window rather than folding into the future.
            if current is not None and 0.0 <= entry.time - current.time < self.window:
                folded = dataclasses.replace(current, count=current.count + 1)
                self._open[key] = folded
                return folded, False
            self._open[key] = entry
            return entry, True

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def _prune(self, now: float) -> None:
        # Closed windows are dropped once a window: memory holds at most two windows' distinct rejections.
        if now - self._pruned_at < self.window:
            return
        self._pruned_at = now
        self._open = {k: e for k, e in self._open.items() if 0.0 <= now - e.time < self.window}


class AuditRejections:
    """falcon middleware; first in the list, so its ``process_response`` runs after every other's."""

    def __init__(
        self,
        control_plane: ControlPlane,
        templates: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        folding: Folding | None = None,
    ) -> None:
        self.cp = control_plane
        self.clock = clock
        self.folding = folding or Folding()
        # A check in process_request runs before routing; this finds the template such a rejection was for.
        self.router = CompiledRouter()
        for template in templates:
            self.router.add_route(template, _Template())

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        status = falcon.http_status_to_code(resp.status)
        if status not in AUDITED:
            return
        try:
            self.record(self.entry(req, resp, status))
        except Exception:
            # Whatever went wrong, the rejection the client gets must stay the rejection it earned.
            log.exception("could not audit a rejected %s request", req.method)

    def entry(self, req: falcon.Request, resp: falcon.Response, status: int) -> AuditEntry:
        identity = getattr(req.context, "identity", None)
        return AuditEntry(
            time=self.clock(),
            identity=getattr(identity, "name", None),
            client=getattr(req.context, "client", None) or req.remote_addr or "unknown",
            method=req.method,
            route=req.uri_template or self._template(req.path),
            status=status,
            reason=reason(resp),
        )

    def record(self, entry: AuditEntry) -> None:
        stored, new = self.folding.add(entry)
        if not new:
            self.cp.record_audit(stored)
            return
        log.warning(
            "rejected %s %s from %s (identity %s): %d %s",
            entry.method, entry.route, entry.client, entry.identity or "none", entry.status, entry.reason,
        )
        if not self.cp.record_audit(stored):
            log.warning("the store is not taking audit entries right now; the line above is the only record")

    def _template(self, path: str) -> str:
        found = self.router.find(path)
        return str(found[3]) if found else UNMATCHED


class _Template:
    """A route marker for the middleware's own router: it is looked up, never called."""


def reason(resp: falcon.Response) -> str:
    """The error's title and description (and field) from the error body every rejection carries."""
    body = resp.media if isinstance(resp.media, dict) else {}
    if isinstance(body.get("results"), list):  # a batch none of whose items was accepted
        first = next((r for r in body["results"] if isinstance(r, dict) and r.get("status") == "rejected"), {})
        text = f"all {body.get('rejected')} updates rejected; first: {first.get('error')} (field {first.get('field')})"
    else:
        text = ": ".join(str(part) for part in (body.get("error"), body.get("detail")) if part)
        if body.get("field"):
            text += f" (field {body['field']})"
    text = text or str(resp.status)
    # One log line per entry, whatever a description echoes.
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"
