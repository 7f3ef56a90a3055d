"""The OpenAPI 3 document, built from the same route table and schemas the app uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import Platform, Status
from ..security import PUBLIC, PUSH, READ_OR_PUSH
from ..model import CONFIGURATION_CHANGED, UPSTREAM_STATUS_NUMBERS
from ..wire import REGISTRATION_SCHEMA, REPORT_STATUS_NAMES, RESTART_POLICY_SCHEMA, STATUS_NAMES, STATUS_UPDATE_SCHEMA

if TYPE_CHECKING:
    from .app import Route

METHODS = ("get", "post", "put", "patch", "delete")

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": ["string", "null"]},
                   "field": {"type": ["string", "null"]}},
}
_ERROR_REF = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def any_case(name: str) -> str:
    """A pattern that matches ``name`` in any case: JSON Schema's patterns have no case-insensitive flag."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)


_INSTANCE = {"$ref": "#/components/schemas/Instance"}
# What the server accepts, stated as schema rather than prose, so that a client (or a fuzzer) can know it.
_ANY_CASE_STATUS = f"({'|'.join(any_case(name) for name in STATUS_NAMES)})"
_STATUS = {"type": "string", "pattern": f"^{_ANY_CASE_STATUS}$"}
_PLATFORM = {"type": "string", "enum": [p.value for p in Platform]}
_NAME = rf"\s*({_ANY_CASE_STATUS}|{any_case(CONFIGURATION_CHANGED)})\s*"
_STATUS_LIST = {"type": "string", "pattern": f"^({_NAME}(,{_NAME})*)?$"}  # empty: no filter
_EPOCH = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_SINCE = {"type": "string", "anyOf": [{"format": "date-time"}, {"pattern": _EPOCH}]}
# The validator's schema checks the status only for being text or an integer (parse_status_update then names the
# field); the document says which names (in any case) and numbers it takes.
_STATUS_UPDATE = {
    **STATUS_UPDATE_SCHEMA,
    "properties": {
        **STATUS_UPDATE_SCHEMA["properties"],
        "status": {
            "description": STATUS_UPDATE_SCHEMA["properties"]["status"]["description"],
            "anyOf": [
                {"type": "string", "pattern": f"^({'|'.join(any_case(name) for name in REPORT_STATUS_NAMES)})$"},
                {"type": "integer", "minimum": 0, "maximum": len(UPSTREAM_STATUS_NUMBERS) - 1},
            ],
        },
    },
}
# Upstream's StatusChangeRecord, as GET /api/status/recent-changes answers with an array of them.
_STATUS_CHANGE_RECORD = {
    "type": "object",
    "required": ["instanceId", "oldStatus", "newStatus", "source", "timestamp", "metadata"],
    "properties": {
        "instanceId": {"type": "string"},
        "oldStatus": {"type": "string", "enum": [s.value for s in Status]},
        "newStatus": {"type": "string", "enum": [*(s.value for s in Status), CONFIGURATION_CHANGED]},
        "source": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/status/updates", "post"): {
        "summary": "Push one status update (object) or a batch (array) from a daemon",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/StatusUpdate"},
            {"type": "array", "items": {"$ref": "#/components/schemas/StatusUpdate"}, "minItems": 1},
        ]}}}},
        "responses": {"202": _json("committed: the outcome of each update (applied, stale, invalidTransition) and "
                                   "the storeId (batch: counts and a result per item); warnings names each unknown "
                                   "property ignored"),
                      "400": _ERROR_REF, "404": _ERROR_REF, "422": _ERROR_REF},
    },
    ("/api/status/{instance_id}/status", "get"): {
        "summary": "Current status of one instance, with upstream's InstanceRuntimeInfo fields (daemons may read it)",
        "responses": {"200": _json("status"), "404": _ERROR_REF},
    },
    ("/api/status/recent-changes", "get"): {
        "summary": "Changes since a time, as upstream's StatusController answers (a bare array)",
        "parameters": [
            _query("since", "RFC 3339 time or epoch seconds; default five minutes ago", _SINCE),
            _query("statusFilter", "comma-separated new statuses in any case; ConfigurationChanged for configuration "
                   "changes", _STATUS_LIST),
            _query("limit", "at most this many (newest)", {"type": "integer", "minimum": 1, "maximum": 10000}),
        ],
        "responses": {"200": _json("changes", {"type": "array", "items": _STATUS_CHANGE_RECORD}), "422": _ERROR_REF},
    },
    ("/api/status/changes", "get"): {
        "summary": "The change feed after a cursor",
        "parameters": [
            _query("after", "cursor of the last change seen; 0 for the start",
                   {"type": "integer", "minimum": 0, "maximum": 2**62}),
            _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _query("storeId", "the storeId of the page the cursor came from; another store's is a 409",
                   {"type": "string", "minLength": 1, "maxLength": 64}),
        ],
        "responses": {"200": _json("a page of changes, nextCursor and the storeId"), "409": _ERROR_REF,
                      "410": _ERROR_REF, "422": _ERROR_REF},
    },
    ("/api/instances", "get"): {
        "summary": "List instances",
        "parameters": [
            _query("platform", "process, docker or kubernetes", _PLATFORM),
            _query("status", "a status name", _STATUS),
        ],
        "responses": {"200": _json("instances"), "422": _ERROR_REF},
    },
    ("/api/instances", "post"): {
        "summary": "Register an instance (process: a command to run or a PID to adopt)",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Registration"}}}},
        "responses": {"201": _json("the instance", _INSTANCE), "400": _ERROR_REF, "409": _ERROR_REF,
                      "422": _ERROR_REF},
    },
    ("/api/instances/{instance_id}", "get"): {
        "summary": "One instance, with runtime and restart-policy explanations",
        "responses": {"200": _json("the instance", _INSTANCE), "404": _ERROR_REF},
    },
    ("/api/instances/{instance_id}", "delete"): {
        "summary": "Deregister an instance (stops its process unless stop=false)",
        # falcon reads a blank "stop=" as true.
        "parameters": [{**_query("stop", "stop the workload (default true)", {"type": "boolean"}),
                        "allowEmptyValue": True}],
        "responses": {"204": {"description": "deregistered"}, "400": _ERROR_REF, "404": _ERROR_REF},
    },
    ("/api/instances/{instance_id}/restart-policy", "put"): {
        "summary": "Replace the restart policy (instances created by a push are observe-only: mode never)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": RESTART_POLICY_SCHEMA}}},
        "responses": {"200": _json("the instance", _INSTANCE), "400": _ERROR_REF, "404": _ERROR_REF,
                      "422": _ERROR_REF},
    },
    **{
        (f"/api/instances/{{instance_id}}/{action}", "post"): {
            "summary": f"Operator {action}{note}",
            "responses": {"202": _json("the instance", _INSTANCE), "404": _ERROR_REF, "409": _ERROR_REF},
        }
        for action, note in (
            ("start", " (409 for a Kubernetes instance: scale its Deployment)"),
            ("stop", " (409 for a Kubernetes instance: scale its Deployment)"),
            ("restart", " (a Kubernetes instance: its pod is deleted and its controller recreates it)"),
        )
    },
    ("/api/audit", "get"): {
        "summary": "Rejected requests (401/403/413/415/422/429), newest first; repeats within a second are folded",
        "parameters": [
            _query("since", "RFC 3339 time or epoch seconds", _SINCE),
            _query("limit", "at most this many", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ],
        "responses": {"200": _json("entries"), "422": _ERROR_REF},
    },
    ("/healthz", "get"): {
        "summary": "Liveness, and the storeId of the store that answers (a random identifier, not a secret)",
        "responses": {"200": _json("alive", {
            "type": "object",
            "required": ["status", "storeId"],
            "properties": {"status": {"type": "string", "enum": ["alive"]}, "storeId": {"type": "string"}},
        })},
    },
    ("/readyz", "get"): {
        "summary": "Readiness: core actors alive, nothing escalated, store writable",
        "responses": {"200": _json("ready"), "503": _json("not ready")},
    },
    ("/api/openapi.json", "get"): {"summary": "This document", "responses": {"200": _json("OpenAPI 3")}},
}


def responder_methods(resource: Any) -> list[str]:
    return [m for m in METHODS if callable(getattr(resource, f"on_{m}", None))]


SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same API key, as a bearer token"},
    "mutualTLS": {
        "type": "mutualTLS",
        "description": "daemons only: a client certificate verified by the TLS proxy (nginx), which forwards its "
        "subject; the control plane believes it only from [network] trustedProxies",
    },
}
_KEY_SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"Bearer": []}]


def _security(role: str) -> list[dict[str, list[str]]]:
    if role == PUBLIC:
        return []
    return [*_KEY_SECURITY, {"mutualTLS": []}] if role in (PUSH, READ_OR_PUSH) else list(_KEY_SECURITY)


def _refusals(role: str, method: str) -> dict[str, Any]:
    """The statuses the security layer may answer with, besides the operation's own."""
    if role == PUBLIC:
        return {}
    # 503 with Retry-After: an actor is restarting, or the store cannot commit (nothing was acknowledged).
    refusals = {"401": _ERROR_REF, "403": _ERROR_REF, "503": _ERROR_REF}
    if method in ("post", "put"):
        refusals |= {"413": _ERROR_REF, "415": _ERROR_REF}
    if role in (PUSH, READ_OR_PUSH):
        refusals["429"] = _ERROR_REF
    return refusals


def build_openapi(table: list["Route"]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in table:
        for method in responder_methods(route.resource):
            operation = dict(OPERATIONS[(route.template, method)])
            role = route.roles.get(method.upper())
            if role is None:
                raise ValueError(f"{method.upper()} {route.template} is served but declares no role in the route table")
            operation["x-required-role"] = role
            operation["security"] = _security(role)
            operation["responses"] = {**_refusals(role, method), **operation["responses"]}
            if "{instance_id}" in route.template:
                operation["parameters"] = [
                    {"name": "instance_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    *operation.get("parameters", []),
                ]
            paths.setdefault(route.template, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "draas-actors control plane", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": {
                "StatusUpdate": _STATUS_UPDATE,
                "Registration": REGISTRATION_SCHEMA,
                "Error": _ERROR,
                "Instance": {"type": "object", "required": [
                    "instanceId", "platform", "status", "restartCount", "lastExitCode", "nextRestartAt",
                    "restartPolicy", "runtime"]},
            },
        },
    }
