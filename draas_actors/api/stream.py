"""GET /api/status/stream: the change log as Server-Sent Events, live, resumable by cursor (``follow.py``).

Everything that can be refused is refused before the stream starts, as a plain JSON error: a bad filter or cursor
(422 naming the parameter), no stream slot (503 with Retry-After: ``[stream] maxStreams`` streams are open, or the
request did not reach a stream thread of its own, see ``streams.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import falcon

from ..errors import InvalidInput, Unavailable
from ..messages import SubscriptionFilter
from ..model import Platform, parse_status
from ..streams import StreamSettings
from ..system import ControlPlane
from . import sse
from .follow import EventCache, Follower, Source, Start

STREAM_PATH = "/api/status/stream"
MAX_CURSOR = 2**62
MAX_ID_LENGTH = 253  # an instance id's longest (wire._ID)
RETRY_AFTER_FULL = 5  # seconds a client refused for want of a stream slot is asked to wait


class StatusStream:
    def __init__(self, control_plane: ControlPlane, settings: StreamSettings) -> None:
        self.cp = control_plane
        self.settings = settings
        self.events = EventCache()  # shared by this app's streams

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        event_filter = parse_filter(req)
        start = self._start(req)
        connection = self.cp.streams.current()
        if connection is None:
            raise Unavailable(
                f"too many open streams (at most {self.cp.streams.max_streams}); retry later",
                retry_after=RETRY_AFTER_FULL,
            )
        cp = self.cp
        source = Source(
            next_changes=cp.next_changes, head=lambda: cp.feed.head,
            ended=lambda: cp.feed.closed or cp.streams.stopping, wait=cp.streams.wait, render=self.events.render,
        )
        resp.content_type = sse.CONTENT_TYPE
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("X-Accel-Buffering", "no")  # nginx: pass each event on at once
        resp.set_header("X-Draas-Store-Id", cp.store_id)
        resp.stream = _counted(cp, Follower(source, connection, start, event_filter, self.settings))

    def _start(self, req: falcon.Request) -> Start:
        """After the client's cursor (``Last-Event-ID``, else ``after``), or the head; a cursor past the head or a
        ``storeId`` that is not this store's is another store's: reset, and go on live from the head."""
        header = req.get_header("Last-Event-ID")
        name, text = ("Last-Event-ID", header) if header else ("after", req.get_param("after"))
        head = self.cp.feed.head
        store_id = req.get_param("storeId")
        if store_id is not None and not 1 <= len(store_id) <= 64:
            raise InvalidInput("storeId: must be 1 to 64 characters", field="storeId")
        if text is None:
            return Start(cursor=head, store_id=self.cp.store_id)
        digits = text.strip()
        if not (digits.isascii() and digits.isdigit()):
            raise InvalidInput(f"{name}: expected a cursor (an integer), got {text!r}", field=name)
        cursor = int(digits)
        if not 0 <= cursor <= MAX_CURSOR:
            raise InvalidInput(f"{name}: must be between 0 and {MAX_CURSOR}", field=name)
        if cursor > head or (store_id is not None and store_id != self.cp.store_id):
            return Start(cursor=head, store_id=self.cp.store_id, reset=True)
        return Start(cursor=cursor, store_id=self.cp.store_id)


def parse_filter(req: falcon.Request) -> SubscriptionFilter:
    """``instanceId``, ``platform`` and ``status``, each repeatable (any of the values); 422 naming a bad one."""
    ids = req.get_param_as_list("instanceId") or []
    for value in ids:
        if not 1 <= len(value) <= MAX_ID_LENGTH:
            raise InvalidInput(f"instanceId: must be 1 to {MAX_ID_LENGTH} characters", field="instanceId")
    try:
        platforms = frozenset(Platform(v) for v in req.get_param_as_list("platform") or [])
    except ValueError:
        raise InvalidInput(
            f"platform: not one of {', '.join(p.value for p in Platform)}", field="platform"
        ) from None
    try:
        statuses = frozenset(parse_status(v) for v in req.get_param_as_list("status") or [])
    except ValueError as error:
        raise InvalidInput(f"status: {error}", field="status") from None
    return SubscriptionFilter(
        instance_ids=frozenset(ids) or None, platforms=platforms or None, statuses=statuses or None
    )


def _counted(cp: ControlPlane, follower: Follower) -> Iterator[bytes]:
    """The follower's bytes, counted in ``draas_open_streams`` while it runs (to the end, the client's going away
    or the server's stop: waitress closes the iterator in every case)."""
    gauge = cp.metrics.open_streams
    gauge.inc()
    try:
        yield from follower
    finally:
        gauge.dec()


__all__ = ["STREAM_PATH", "StatusStream", "parse_filter"]
