"""One error hierarchy for the domain; the HTTP layer maps it to statuses in one place."""

from __future__ import annotations


class DraasError(Exception):
    """Base class. ``field`` names the offending input field when there is one."""

    def __init__(self, message: str, *, field: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail or message


class InvalidInput(DraasError):
    """Input that is well-formed but does not satisfy the schema (HTTP 422)."""


class MalformedInput(DraasError):
    """Input that cannot be parsed at all (HTTP 400)."""


class ConfigError(DraasError):
    """A configuration file or environment variable is wrong."""


class NotFound(DraasError):
    pass


class Conflict(DraasError):
    pass


class CursorExpired(DraasError):
    """The change-log cursor is older than retention (HTTP 410). ``pruned_through``: retention pruned every change
    up to this cursor and none after it, so a reader may go on from there (the stream's ``gap`` event)."""

    def __init__(
        self, message: str, *, field: str | None = None, detail: str | None = None, pruned_through: int = 0
    ) -> None:
        super().__init__(message, field=field, detail=detail)
        self.pruned_through = pruned_through


class Unavailable(DraasError):
    """An actor needed to answer is dead or did not answer in time, or the store cannot commit (HTTP 503 with
    ``Retry-After``: ``retry_after`` whole seconds)."""

    def __init__(self, message: str, *, field: str | None = None, detail: str | None = None, retry_after: int = 1):
        super().__init__(message, field=field, detail=detail)
        self.retry_after = retry_after
