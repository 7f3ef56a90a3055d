"""A span per engine or watch event, with ``opentelemetry-api``: a no-op unless an SDK is configured (the README:
``opentelemetry-instrument``). The updates an event makes carry its span's traceparent (``Outbox.send``), so that
the control plane continues the event's trace and the change it causes keeps it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import trace
from opentelemetry.context import Context

from draas_actors.tracecontext import traceparent_of

__all__ = ["current_traceparent", "default_tracer", "event_span"]

TRACER_NAME = "draas.daemons"


def default_tracer() -> trace.Tracer:
    """The global tracer provider's: a proxy that follows a provider configured later, a no-op without one."""
    return trace.get_tracer(TRACER_NAME)


@contextlib.contextmanager
def event_span(tracer: trace.Tracer, name: str, attributes: Mapping[str, str]) -> Iterator[trace.Span]:
    """A root span for one event, current while the daemon handles it (a CONSUMER: the engine produced it)."""
    with tracer.start_as_current_span(
        name, context=Context(), kind=trace.SpanKind.CONSUMER,
        attributes=dict(attributes),
    ) as span:
        yield span


def current_traceparent() -> str | None:
    """The traceparent of the span current on this thread; None outside one (a resync, a snapshot) or without an
    SDK (a no-op span has no context of its own)."""
    return traceparent_of(trace.get_current_span())
