"""Domain errors to HTTP, in one place; every error body is ``{"error", "detail", "field"}``."""

from __future__ import annotations

from typing import Any

import falcon

from ..errors import (
    Conflict,
    CursorExpired,
    DraasError,
    InvalidInput,
    MalformedInput,
    NotFound,
    Unavailable,
)

STATUS_FOR: dict[type[DraasError], tuple[str, str]] = {
    MalformedInput: (falcon.HTTP_400, "malformed request"),
    InvalidInput: (falcon.HTTP_422, "invalid input"),
    NotFound: (falcon.HTTP_404, "not found"),
    Conflict: (falcon.HTTP_409, "conflict"),
    CursorExpired: (falcon.HTTP_410, "cursor expired"),
    Unavailable: (falcon.HTTP_503, "unavailable"),
}


def error_body(error: str, detail: str | None, field: str | None) -> dict[str, Any]:
    return {"error": error, "detail": detail, "field": field}


def handle_domain_error(req: falcon.Request, resp: falcon.Response, ex: DraasError, params: Any) -> None:
    status, title = next(
        (found for kind, found in STATUS_FOR.items() if isinstance(ex, kind)), (falcon.HTTP_500, "error")
    )
    resp.status = status
    detail = ex.message if ex.detail == ex.message else f"{ex.message}. {ex.detail}"
    resp.media = error_body(title, detail, ex.field)
    if isinstance(ex, Unavailable):
        resp.set_header("Retry-After", str(ex.retry_after))


def serialize_http_error(req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError) -> None:
    """falcon's own errors (404 route, 405, 401 from the auth middleware) in the same JSON shape."""
    resp.content_type = falcon.MEDIA_JSON
    field = getattr(exception, "field", None)
    resp.media = error_body(exception.title or "error", exception.description, field)
