"""Input limits on request bodies: size (413), content type (415), and JSON nesting depth (422 ``body``).

``BodyLimits`` runs after routing (``process_resource``) and before authentication, so a refusal is cheap and
still knows its route. It refuses a ``Content-Length`` over the limit without reading anything, reads any other
body at most ``max_body_bytes + 1`` bytes far (a chunked body stops there), and leaves the bytes on
``req.context.body`` for ``read_json``, which the resources call after authentication and the rate limit.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

import falcon

from ..errors import InvalidInput, MalformedInput
from ..security import LimitSettings

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CHUNK = 65536
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Everything but brackets is deleted, and braces become brackets: depth does not care which kind nests.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class PayloadTooLarge(falcon.HTTPError):
    """413 (falcon 4 renamed its own class; this one works with falcon 3 and 4)."""

    field = "body"

    def __init__(self, limit: int) -> None:
        super().__init__(
            falcon.HTTP_413, title="request body too large", description=f"the body may be at most {limit} bytes"
        )


class UnsupportedMediaType(falcon.HTTPUnsupportedMediaType):
    field = "Content-Type"


@dataclass(frozen=True)
class Body:
    """The request body as read (never more than the limit) and the depth its JSON may reach."""

    raw: bytes
    max_json_depth: int


class BodyLimits:
    """falcon middleware: 413 for a body over ``max_body_bytes``, 415 for a body that is not JSON."""

    def __init__(self, limits: LimitSettings) -> None:
        self.max_bytes = limits.max_body_bytes
        self.max_depth = limits.max_json_depth

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any) -> None:
        length = req.content_length  # a malformed Content-Length is falcon's 400
        if length is not None and length > self.max_bytes:
            raise PayloadTooLarge(self.max_bytes)
        has_body = bool(length) or req.get_header("Transfer-Encoding") is not None
        if has_body and req.method in BODY_METHODS:
            _check_json_type(req.content_type)
        raw = read_bounded(req.bounded_stream, self.max_bytes + 1) if has_body else b""
        if len(raw) > self.max_bytes:
            raise PayloadTooLarge(self.max_bytes)
        req.context.body = Body(raw, self.max_depth)


def read_json(req: falcon.Request) -> Any:
    """The body as JSON: 400 when empty or not JSON, 422 (field ``body``) when it nests too deep."""
    body: Body | None = getattr(req.context, "body", None)
    if body is None:
        # Only an app built without BodyLimits gets here; bound the read all the same.
        limits = LimitSettings()
        body = Body(read_bounded(req.bounded_stream, limits.max_body_bytes + 1), limits.max_json_depth)
        if len(body.raw) > limits.max_body_bytes:
            raise PayloadTooLarge(limits.max_body_bytes)
    return parse_json(body.raw, max_depth=body.max_json_depth)


def parse_json(raw: bytes, *, max_depth: int) -> Any:
    if not raw.strip():
        raise MalformedInput("the request body is empty; send JSON", field="body")
    # Not json.loads(bytes), which guesses UTF-16 and UTF-32 too: a JSON body is UTF-8 (RFC 8259, section 8.1).
    # A NUL byte is valid UTF-8 but never in JSON text, and is what UTF-16 or UTF-32 of ASCII looks like.
    if b"\x00" in raw:
        raise MalformedInput(
            "the request body holds NUL bytes, so it is not UTF-8 (UTF-16 or UTF-32?): send JSON encoded as UTF-8",
            field="body",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedInput(
            f"the request body is not UTF-8 (byte {error.start}): send JSON encoded as UTF-8", field="body"
        ) from None
    if json_depth_exceeds(raw, max_depth):
        try:
            _loads(text)
        except ValueError as error:
            raise MalformedInput(f"the request body is not valid JSON: {error}", field="body") from None
        except RecursionError:
            pass  # nested far deeper than any limit: the depth error below says why
        raise InvalidInput(f"body: JSON nested deeper than {max_depth} levels", field="body")
    try:
        value = _loads(text)
    except ValueError as error:
        raise MalformedInput(f"the request body is not valid JSON: {error}", field="body") from None
    # json.loads lets a lone surrogate through as an escape like \ud800 (its UTF-8 bytes fail the decoding above);
    # stored or echoed it cannot be encoded, and the store actor died of it. Only a body with an escape pays.
    if b"\\u" in raw and _has_lone_surrogate(value):
        raise MalformedInput("the request body is not valid JSON: a string holds a lone surrogate", field="body")
    return value


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    # Python's json takes NaN, Infinity and -Infinity, which are not JSON; a number too big for a float (1e999)
    # still parses, as infinity, and the schema's maximum for that field refuses it by name.
    raise ValueError(f"{name} is not a JSON value")


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when the arrays/objects in ``raw`` nest more than ``limit`` deep (or their brackets do not balance).

    No recursion and no per-character Python loop: strings are cut out with one regex, everything but brackets
    is deleted, and each pass of ``replace`` removes the innermost pairs, one level per pass. At most ``limit``
    passes over at most ``max_body_bytes``, so 100,000 ``[`` cost the same as a valid body.
    """
    brackets = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def read_bounded(stream: Readable, limit: int) -> bytes:
    """At most ``limit`` bytes from ``stream``, in chunks, stopping at its end."""
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _check_json_type(content_type: str | None) -> None:
    media, _, params = (content_type or "").partition(";")
    if media.strip().lower() != "application/json":
        raise UnsupportedMediaType(
            title="unsupported media type",
            description=f"send the body as application/json, not {media.strip() or 'without a Content-Type'}",
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                title="unsupported media type", description="JSON bodies must be UTF-8 (charset=utf-8)"
            )
