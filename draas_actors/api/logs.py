"""GET /api/instances/{instance_id}/logs: a local process's output, as text.

``?tail=N`` answers its last N lines; ``?after=OFFSET`` what was appended after a byte offset. Every answer names the
offset to continue from in ``X-Log-Offset``, so a client follows the output by asking again with ``after`` (the
CLI's ``logs -f``): the server holds no thread, no open file and no connection between two reads.
"""

from __future__ import annotations

import falcon

from ..errors import InvalidInput
from ..logtail import read_after, tail
from ..security import LimitSettings
from ..system import ControlPlane
from .resources import _int_param

OFFSET_HEADER = "X-Log-Offset"
TRUNCATED_HEADER = "X-Log-Truncated"
STREAMS = ("stdout", "stderr")


class InstanceLogs:
    def __init__(self, control_plane: ControlPlane, limits: LimitSettings) -> None:
        self.cp = control_plane
        self.limits = limits

    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        stream = req.get_param("stream") or "stdout"
        if stream not in STREAMS:
            raise InvalidInput(f"stream: expected stdout or stderr, got {stream!r}", field="stream")
        if req.get_param("after") is not None and req.get_param("tail") is not None:
            raise InvalidInput("after: give either tail or after, not both", field="after")
        path = self.cp.output_path(instance_id, stream)
        max_bytes = self.limits.max_log_bytes
        if req.get_param("after") is not None:
            found = read_after(path, _int_param(req, "after", 0, 0, 2**62), max_bytes)
        else:
            lines = self.limits.max_log_lines
            found = tail(path, _int_param(req, "tail", lines, 1, lines), max_bytes)
        resp.content_type = falcon.MEDIA_TEXT
        resp.set_header(OFFSET_HEADER, str(found.offset))
        resp.set_header(TRUNCATED_HEADER, "true" if found.truncated else "false")
        resp.data = found.data
