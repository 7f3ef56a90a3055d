"""A span per delivery attempt, with ``opentelemetry-api``: a CLIENT span in the trace of the change being delivered
(the push that caused it), whose traceparent the request carries, so that the receiver continues that trace under
the attempt. The event's body keeps the change's own traceparent (the CloudEvents distributed-tracing extension
names where the event was made, and the signed bytes stay the same on every retry).

Without an SDK the span is a no-op that carries the context it was given: the request carries the change's
traceparent as it is, and a change without one sends none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..tracecontext import traceparent_of

TRACER_NAME = "draas_actors.webhooks"
SPAN = "webhook delivery"
_W3C = TraceContextTextMapPropagator()


def default_tracer() -> trace.Tracer:
    """The global provider's: a no-op until an SDK is configured (``opentelemetry-instrument``, see the README)."""
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def attempt_span(tracer: trace.Tracer, traceparent: str | None, host: str) -> Iterator[tuple[trace.Span, str | None]]:
    """The span of one attempt (current while it runs) and the traceparent the request is to carry."""
    context = _W3C.extract({"traceparent": traceparent}) if traceparent is not None else None
    attributes = {"http.request.method": "POST", "server.address": host}  # never the URL: it may hold a token
    with tracer.start_as_current_span(SPAN, context=context, kind=trace.SpanKind.CLIENT, attributes=attributes) as span:
        yield span, traceparent_of(span)


__all__ = ["SPAN", "TRACER_NAME", "attempt_span", "default_tracer"]
