"""The OpenAPI 3 document, built from the route table (``routes.ROUTES``) and the schemas the app uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..security import PUBLIC, PUSH, READ_OR_PUSH
from .routes import Operation
from .schemas import COMPONENTS, ERROR_REF, OUTGOING, PATH_PARAMETERS
from .session import COOKIE, CSRF_HEADER

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same API key, as a bearer token"},
    "mutualTLS": {
        "type": "mutualTLS",
        "description": "daemons only: a client certificate verified by the TLS proxy (nginx), which forwards its "
        "subject; the control plane believes it only from [network] trustedProxies",
    },
    "SessionCookie": {
        "type": "apiKey", "in": "cookie", "name": COOKIE,
        "description": "operators, for the dashboard: the cookie POST /ui/session sets for an operator key (same "
        "identity and role); every other method than GET must also send the session's CSRF token as " + CSRF_HEADER,
    },
}
_KEY_SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"Bearer": []}]


def _security(role: str) -> list[dict[str, list[str]]]:
    if role == PUBLIC:
        return []
    if role == PUSH:
        return [*_KEY_SECURITY, {"mutualTLS": []}]
    if role == READ_OR_PUSH:
        return [*_KEY_SECURITY, {"mutualTLS": []}, {"SessionCookie": []}]
    return [*_KEY_SECURITY, {"SessionCookie": []}]


def _refusals(role: str, method: str) -> dict[str, Any]:
    """The statuses the security layer may answer with, besides the operation's own."""
    if role == PUBLIC:
        return {}
    # 503 with Retry-After: an actor is restarting, or the store cannot commit (nothing was acknowledged).
    refusals = {"401": ERROR_REF, "403": ERROR_REF, "503": ERROR_REF}
    if method in ("POST", "PUT", "PATCH"):
        refusals |= {"413": ERROR_REF, "415": ERROR_REF}
    if role in (PUSH, READ_OR_PUSH):
        refusals["429"] = ERROR_REF
    return refusals


def _operation(entry: Operation) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": entry.summary}
    parameters = [dict(p) for p in entry.parameters]
    named = [p["name"] for p in parameters]
    for index, name in enumerate(n for n in PATH_PARAMETERS if f"{{{n}}}" in entry.path and n not in named):
        parameters.insert(index, {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]})
    if parameters:
        operation["parameters"] = parameters
    if entry.request is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": entry.request}}}
    operation["responses"] = {**_refusals(entry.role, entry.method), **entry.responses}
    operation["x-required-role"] = entry.role
    operation["security"] = _security(entry.role)
    return operation


def build_openapi(table: Iterable[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for entry in table:
        paths.setdefault(entry.path, {})[entry.method.lower()] = _operation(entry)
    return {
        "openapi": "3.1.0",
        "info": {"title": "draas-actors control plane", "version": "0.1.0"},
        "paths": paths,
        "webhooks": OUTGOING,
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": COMPONENTS},
    }
