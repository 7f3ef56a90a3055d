"""Spans around a push, with ``opentelemetry-api``: the push's trace context is extracted from its headers (W3C
``traceparent`` by default, ``OTEL_PROPAGATORS`` otherwise), one server span covers the push, and each update that
brings a trace of its own (a daemon batches events of several traces) gets a span in that trace, linked to the
push's. Each report then carries the traceparent of the span that handled it, so that whoever hears of the change it
causes (the stream, the webhooks) continues that trace under the control plane's span.

Without an SDK every span is a no-op, and a no-op span carries the context it was given: the reports carry the
pushed traceparent unchanged, as ``tracecontext`` read it. The README says how to configure one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import falcon
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..frozen import fast_replace
from ..messages import StatusReport
from ..tracecontext import traceparent_of

TRACER_NAME = "draas_actors"
PUSH_ROUTE = "/api/status/updates"
PUSH_SPAN = f"POST {PUSH_ROUTE}"  # the semantic conventions' "{method} {route}"
UPDATE_SPAN = "status update"


def default_tracer() -> trace.Tracer:
    """The global tracer provider's: a no-op until an SDK is configured, which ``opentelemetry-instrument`` does
    before our code runs (a proxy tracer follows a provider set later, too)."""
    return trace.get_tracer(TRACER_NAME)


class _RequestHeaders(Getter[falcon.Request]):
    """A request's headers in any case, as HTTP has them (the default getter reads a dict's keys as spelled)."""

    def get(self, carrier: falcon.Request, key: str) -> list[str] | None:
        value = carrier.get_header(key)
        return None if value is None else [value]

    def keys(self, carrier: falcon.Request) -> list[str]:
        return [key.lower() for key in carrier.headers]


_HEADERS = _RequestHeaders()
_W3C = TraceContextTextMapPropagator()  # an update's own field is a W3C traceparent, whatever the headers' format


class PushTracing:
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    @contextlib.contextmanager
    def push(self, req: falcon.Request) -> Iterator[trace.Span]:
        """The server span of one push, current while it is handled; its traceparent is the one the push's updates
        inherit."""
        context = propagate.extract(req, getter=_HEADERS)
        attributes = {"http.request.method": "POST", "http.route": PUSH_ROUTE}
        with self.tracer.start_as_current_span(
            PUSH_SPAN, context=context, kind=trace.SpanKind.SERVER, attributes=attributes
        ) as span:
            yield span

    @contextlib.contextmanager
    def updates(self, push: trace.Span, reports: tuple[StatusReport, ...]) -> Iterator[tuple[StatusReport, ...]]:
        """The reports, each that brings its own trace given a span in it (ended when the block ends: after the
        commit that the push waits for) and that span's traceparent. Only while the push's span records: a no-op
        span would only hand back the traceparent it was given, at the cost of a parse per update."""
        if not push.is_recording():
            yield reports
            return
        inherited = traceparent_of(push)
        links = [trace.Link(push.get_span_context())]
        spans: list[trace.Span] = []
        traced: list[StatusReport] = []
        try:
            for report in reports:
                if report.traceparent is None or report.traceparent == inherited:
                    traced.append(report)
                    continue
                span = self.tracer.start_span(
                    UPDATE_SPAN, context=_W3C.extract({"traceparent": report.traceparent}), links=links,
                    attributes={"draas.instance_id": report.instance_id, "draas.source": report.source},
                )
                spans.append(span)
                traced.append(fast_replace(report, traceparent=traceparent_of(span) or report.traceparent))
            yield tuple(traced)
        finally:
            for span in spans:
                span.end()
