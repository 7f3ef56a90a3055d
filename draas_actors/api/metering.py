"""The HTTP middleware that counts requests and their latency by method, route template and status code."""

from __future__ import annotations

import time
from collections.abc import Callable

import falcon

from ..metrics import Metrics

UNMATCHED = "unmatched"  # a path no route serves: one label for all of them, never the path itself


class MeterRequests:
    """First in the middleware list, so its clock covers the other middleware's refusals (401, 413, 429...) too.
    The label is falcon's URI template (``/api/instances/{instance_id}``), never the path: no instance id in a
    label, and a bounded number of series whatever clients ask for."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self.metrics = metrics
        self.clock = clock

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metering_started = self.clock()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "metering_started", None)
        route = req.uri_template or UNMATCHED  # None until routed: refused before routing, or no route
        code = str(resp.status_code)
        labels = (req.method, route, code)
        self.metrics.http_requests.labels(*labels).inc()
        if started is not None:
            self.metrics.http_latency.labels(*labels).observe(max(0.0, self.clock() - started))
