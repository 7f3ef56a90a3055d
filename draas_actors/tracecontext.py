"""W3C Trace Context's ``traceparent`` (https://www.w3.org/TR/trace-context/#traceparent-header), read as its
version 00 defines it: ``version-traceid-parentid-flags`` in lower-case hex, trace id and parent id not all zeros.

A push may carry one (its HTTP header, or an update's ``traceparent`` field); the change it causes keeps it, so that
whoever is told of the change (the stream, the webhooks) can continue the pusher's trace.
"""

from __future__ import annotations

import re

from opentelemetry import trace

# A later version may append fields after the flags (the spec's forward compatibility): its first 55 characters
# still read as version 00's. Bounded so that a header cannot make a stored change arbitrarily long.
MAX_LENGTH = 512
_IDS = r"(?!0{32}-)[0-9a-f]{32}-(?!0{16}-)[0-9a-f]{16}-[0-9a-f]{2}"
# Version 00 is exactly 55 characters; "ff" is forbidden; a later version may go on after a "-".
# "$(?![\s\S])": the end of the string, as in wire._ID (a bare "$" also matches before a final newline).
PATTERN = rf"^(?:00-{_IDS}|(?!00|ff)[0-9a-f]{{2}}-{_IDS}(?:-[\x21-\x7e]*)?)$(?![\s\S])"
DESCRIPTION = (
    "not a W3C traceparent: version-traceid-parentid-flags in lower-case hex (00-<32>-<16>-<2>), with a trace id "
    "and a parent id not all zeros"
)
_TRACEPARENT = re.compile(PATTERN)
VERSION = "00"  # the version this module writes: what it passes on of a later one reads as 00


def parse_traceparent(text: object) -> str | None:
    """``text`` as a version-00 traceparent, or None when it is not a valid one (of any version)."""
    if type(text) is not str or len(text) > MAX_LENGTH or _TRACEPARENT.search(text) is None:
        return None
    return text if text[:2] == VERSION and len(text) == 55 else f"{VERSION}{text[2:55]}"



def traceparent_of(span: trace.Span) -> str | None:
    """The traceparent that continues ``span``'s trace as its child; None for a span with no valid context (a no-op
    tracer's span with no parent: no SDK is configured and nothing was propagated to it)."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"{VERSION}-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
