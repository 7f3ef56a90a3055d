"""The route table: every operation the API serves, read both by ``create_app`` and by the OpenAPI document.

One entry per (method, path): the resource that serves it, the role it needs, and what the document says about it.
Operations on one path share one resource (falcon routes a path to one object), so they name the same factory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from ..security import ADMIN, OPERATE, PUBLIC, PUSH, READ, READ_OR_PUSH, SecuritySettings
from ..system import ControlPlane
from ..webhooks import WebhookManager
from ..wire import RESTART_POLICY_SCHEMA
from . import resources as r
from . import webhooks as wh
from .auth import KeyRing
from .logs import OFFSET_HEADER, STREAMS, TRUNCATED_HEADER, InstanceLogs
from .schemas import (
    DELIVERY_STATE,
    ERROR_REF,
    HEALTHZ,
    INSTANCE_REF,
    PLATFORM,
    SINCE,
    STATUS,
    STATUS_CHANGE_RECORD,
    STATUS_LIST,
    TRACEPARENT_HEADER,
    json_body,
    query,
)
from .session import Sessions
from .stream import STREAM_PATH, StatusStream
from .ui import SESSION_PATH, UiPage, UiSession, UiStatic

METRICS_PATH = "/metrics"


def with_metrics_access(table: tuple[Operation, ...], security: SecuritySettings) -> tuple[Operation, ...]:
    """The table with GET /metrics public, or needing a read key when ``[metrics] requireKey`` says so: one setting
    decides, and the document, the authentication and the route all read the table it gives."""
    if not security.metrics_require_key:
        return table
    return tuple(
        dataclasses.replace(op, role=READ) if op.path == METRICS_PATH and op.method == "GET" else op for op in table
    )


@dataclass(frozen=True)
class Wiring:
    """What a resource is built from; ``document`` is the OpenAPI document, built from the table before any
    resource is."""

    control_plane: ControlPlane
    clock: Callable[[], float]
    security: SecuritySettings
    document: Mapping[str, Any]
    tracer: trace.Tracer | None = None  # None: the global provider's (a no-op until an SDK is configured)
    sessions: Sessions = dataclasses.field(default_factory=Sessions)  # the dashboard's, shared with Authenticate
    keys: KeyRing = dataclasses.field(default_factory=KeyRing)  # the configured keys, for signing in


ResourceFactory = Callable[[Wiring], object]


@dataclass(frozen=True)
class Operation:
    method: str  # upper case, as falcon's responders are named: on_<method lower>
    path: str  # falcon's URI template, also the document's path
    resource: ResourceFactory
    role: str  # the one place an operation's role is declared
    summary: str
    responses: Mapping[str, Any]
    parameters: tuple[Mapping[str, Any], ...] = ()
    request: Mapping[str, Any] | None = None  # the requestBody's JSON schema; None: no body


def _of_control_plane(resource: Callable[[ControlPlane], object]) -> ResourceFactory:
    """The factory of a resource that needs only the control plane."""

    def build(w: Wiring) -> object:
        return resource(w.control_plane)

    return build


def _status_updates(w: Wiring) -> object:
    return r.StatusUpdates(w.control_plane, w.clock, w.security.limits, w.tracer)


def _recent_changes(w: Wiring) -> object:
    return r.RecentChanges(w.control_plane, w.clock)


def _action(action: str) -> ResourceFactory:
    def build(w: Wiring) -> object:
        return r.InstanceAction(w.control_plane, action)

    return build


def _logs(w: Wiring) -> object:
    return InstanceLogs(w.control_plane, w.security.limits)


def _metrics(w: Wiring) -> object:
    return r.MetricsExposition(w.control_plane.metrics)


def _stream(w: Wiring) -> object:
    return StatusStream(w.control_plane, w.control_plane.settings.stream)


def _openapi(w: Wiring) -> object:
    return r.OpenApi(w.document)


def _ui_session(w: Wiring) -> object:
    return UiSession(w.sessions, w.keys, w.clock)


def _ui_page(page: str) -> ResourceFactory:
    def build(w: Wiring) -> object:
        return UiPage(page)

    return build


def _ui_static(w: Wiring) -> object:
    return UiStatic()


_HTML = {"200": {"description": "the page (public: it holds no data; its data comes from the API)",
                 "content": {"text/html": {"schema": {"type": "string"}}}}}
_UI_PAGES = (
    ("/ui", "index.html", "The dashboard: every instance, live"),
    ("/ui/instance", "instance.html", "The dashboard's page of one instance (?id=...)"),
    ("/ui/signin", "signin.html", "The dashboard's sign-in form"),
)


# One factory per path: the operations on a path name the same one, so falcon gets one resource for it.
_instance_status = _of_control_plane(r.InstanceStatus)
_changes = _of_control_plane(r.Changes)
_instances = _of_control_plane(r.Instances)
_instance = _of_control_plane(r.Instance)
_restart_policy = _of_control_plane(r.InstanceRestartPolicy)
_audit = _of_control_plane(r.Audit)
_healthz = _of_control_plane(r.Healthz)
_readyz = _of_control_plane(r.Readyz)


def _of_webhooks(resource: Callable[[WebhookManager], object]) -> ResourceFactory:
    def build(w: Wiring) -> object:
        return resource(w.control_plane.webhooks)

    return build


_webhooks = _of_webhooks(wh.Webhooks)
_webhook = _of_webhooks(wh.WebhookResource)
_webhook_deliveries = _of_webhooks(wh.WebhookDeliveries)
_webhook_retry = _of_webhooks(wh.WebhookDeliveryRetry)
_webhook_test = _of_webhooks(wh.WebhookTest)
_WEBHOOK_REF = {"$ref": "#/components/schemas/Webhook"}
_ATTEMPT_REF = {"$ref": "#/components/schemas/AttemptResult"}

_UPDATE_REF = {"$ref": "#/components/schemas/StatusUpdate"}
_ACTIONS = (
    ("start", " (409 for a Kubernetes instance: scale its Deployment)"),
    ("stop", " (409 for a Kubernetes instance: scale its Deployment)"),
    ("restart", " (a Kubernetes instance: its pod is deleted and its controller recreates it)"),
)

ROUTES: tuple[Operation, ...] = (
    Operation(
        "POST", "/api/status/updates", _status_updates, PUSH,
        "Push one status update (object) or a batch (array) from a daemon",
        {
            "202": json_body("committed: the outcome of each update (applied, stale, invalidTransition) and the "
                             "storeId (batch: counts and a result per item); warnings names each unknown property "
                             "ignored"),
            "400": ERROR_REF, "404": ERROR_REF, "422": ERROR_REF,
        },
        parameters=(TRACEPARENT_HEADER,),
        request={"oneOf": [_UPDATE_REF, {"type": "array", "items": _UPDATE_REF, "minItems": 1}]},
    ),
    Operation(
        "GET", "/api/status/{instance_id}/status", _instance_status, READ_OR_PUSH,
        "Current status of one instance, with upstream's InstanceRuntimeInfo fields (daemons may read it)",
        {"200": json_body("status"), "404": ERROR_REF},
    ),
    Operation(
        "GET", "/api/status/recent-changes", _recent_changes, READ,
        "Changes since a time, as upstream's StatusController answers (a bare array)",
        {"200": json_body("changes", {"type": "array", "items": STATUS_CHANGE_RECORD}), "422": ERROR_REF},
        parameters=(
            query("since", "RFC 3339 time or epoch seconds; default five minutes ago", SINCE),
            query("statusFilter", "comma-separated new statuses in any case; ConfigurationChanged for configuration "
                  "changes", STATUS_LIST),
            query("limit", "at most this many (newest)", {"type": "integer", "minimum": 1, "maximum": 10000}),
            query("instanceId", "only this instance's changes (an extension: upstream has no such filter)",
                  {"type": "string", "minLength": 1, "maxLength": 253}),
        ),
    ),
    Operation(
        "GET", "/api/status/changes", _changes, READ,
        "The change feed after a cursor",
        {"200": json_body("a page of changes, nextCursor and the storeId; each change's traceparent is the W3C "
                          "trace context of the push that caused it (null when none did)"),
         "409": ERROR_REF, "410": ERROR_REF, "422": ERROR_REF},
        parameters=(
            query("after", "cursor of the last change seen; 0 for the start",
                  {"type": "integer", "minimum": 0, "maximum": 2**62}),
            query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
            query("storeId", "the storeId of the page the cursor came from; another store's is a 409",
                  {"type": "string", "minLength": 1, "maxLength": 64}),
        ),
    ),
    Operation(
        "GET", STREAM_PATH, _stream, READ,
        "The change feed live, as Server-Sent Events: one StatusChanged event per change (id: its cursor; data: "
        "one item of /api/status/changes), resumable with Last-Event-ID or after; gap, reset and overflow events; "
        "a heartbeat comment",
        {"200": {"description": "text/event-stream, until the client leaves, an overflow, or the server stops; the "
                                "X-Draas-Store-Id header names the store",
                 "headers": {"X-Draas-Store-Id": {"schema": {"type": "string"}}},
                 "content": {"text/event-stream": {"schema": {"type": "string"}}}},
         "422": ERROR_REF, "503": ERROR_REF},
        parameters=(
            query("after", "cursor of the last change seen (Last-Event-ID takes precedence); none: live from the "
                  "head", {"type": "integer", "minimum": 0, "maximum": 2**62}),
            query("storeId", "the storeId the cursor came from; another store's gets a reset event",
                  {"type": "string", "minLength": 1, "maxLength": 64}),
            {**query("instanceId", "only these instances (repeatable)",
                     {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 253}}),
             "style": "form", "explode": True},
            {**query("platform", "only these platforms (repeatable)", {"type": "array", "items": PLATFORM}),
             "style": "form", "explode": True},
            {**query("status", "only moves into these statuses (repeatable)", {"type": "array", "items": STATUS}),
             "style": "form", "explode": True},
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "description": "the id of the last event seen: resume after it",
             "schema": {"type": "string", "pattern": "^[0-9]+$"}},
        ),
    ),
    Operation(
        "GET", "/api/instances", _instances, READ,
        "List instances, with the change-log cursor at which the list was read (cursor, and the X-Draas-Cursor "
        "header): follow /api/status/changes or /api/status/stream from it to miss nothing",
        {"200": {**json_body("instances, cursor and storeId"),
                 "headers": {"X-Draas-Cursor": {"schema": {"type": "integer"}}}}, "422": ERROR_REF},
        parameters=(
            query("platform", "process, docker or kubernetes", PLATFORM), query("status", "a status name", STATUS),
        ),
    ),
    Operation(
        "POST", "/api/instances", _instances, ADMIN,
        "Register an instance (process: a command to run or a PID to adopt)",
        {"201": json_body("the instance", INSTANCE_REF), "400": ERROR_REF, "409": ERROR_REF, "422": ERROR_REF},
        request={"$ref": "#/components/schemas/Registration"},
    ),
    Operation(
        "GET", "/api/instances/{instance_id}", _instance, READ,
        "One instance, with runtime and restart-policy explanations",
        {"200": json_body("the instance", INSTANCE_REF), "404": ERROR_REF},
    ),
    Operation(
        "DELETE", "/api/instances/{instance_id}", _instance, ADMIN,
        "Deregister an instance (stops its process unless stop=false)",
        {"204": {"description": "deregistered"}, "400": ERROR_REF, "404": ERROR_REF},
        # falcon reads a blank "stop=" as true.
        parameters=(
            {**query("stop", "stop the workload (default true)", {"type": "boolean"}), "allowEmptyValue": True},
        ),
    ),
    Operation(
        "PUT", "/api/instances/{instance_id}/restart-policy", _restart_policy, ADMIN,
        "Replace the restart policy (instances created by a push are observe-only: mode never)",
        {"200": json_body("the instance", INSTANCE_REF), "400": ERROR_REF, "404": ERROR_REF, "422": ERROR_REF},
        request=RESTART_POLICY_SCHEMA,
    ),
    *(
        Operation(
            "POST", f"/api/instances/{{instance_id}}/{action}", _action(action), OPERATE,
            f"Operator {action}{note}",
            {"202": json_body("the instance", INSTANCE_REF), "404": ERROR_REF, "409": ERROR_REF},
        )
        for action, note in _ACTIONS
    ),
    Operation(
        "GET", "/api/instances/{instance_id}/logs", _logs, OPERATE,
        "A local process's output: its last lines, or what followed a byte offset (follow it by asking again with "
        f"the {OFFSET_HEADER} answered); bounded by [limits] maxLogBytes and maxLogLines",
        {
            "200": {
                "description": "the output, as written by the process (no file yet: empty)",
                "headers": {
                    OFFSET_HEADER: {"description": "the byte offset to continue from (?after=)",
                                    "schema": {"type": "integer", "minimum": 0}},
                    TRUNCATED_HEADER: {"description": "true when the bound cut the output",
                                       "schema": {"type": "string", "enum": ["true", "false"]}},
                },
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "404": ERROR_REF, "409": ERROR_REF, "422": ERROR_REF,
        },
        parameters=(
            query("tail", "the last N lines (default and most: [limits] maxLogLines)",
                  {"type": "integer", "minimum": 1}),
            query("after", "a byte offset (an earlier answer's X-Log-Offset): what followed it; not with tail",
                  {"type": "integer", "minimum": 0, "maximum": 2**62}),
            query("stream", "stdout (default) or stderr", {"type": "string", "enum": list(STREAMS)}),
        ),
    ),
    Operation(
        "GET", "/api/audit", _audit, ADMIN,
        "Rejected requests (401/403/413/415/422/429), newest first; repeats within a second are folded",
        {"200": json_body("entries"), "422": ERROR_REF},
        parameters=(
            query("since", "RFC 3339 time or epoch seconds", SINCE),
            query("limit", "at most this many", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    ),
    Operation(
        "GET", "/api/webhooks", _webhooks, ADMIN,
        "List webhooks (never their secrets), each with its lag: committed changes it has not dealt with yet",
        {"200": json_body("webhooks", {"type": "object", "required": ["webhooks"],
                                       "properties": {"webhooks": {"type": "array", "items": _WEBHOOK_REF}}})},
    ),
    Operation(
        "POST", "/api/webhooks", _webhooks, ADMIN,
        "Create a webhook: each committed change its filter matches is POSTed to url as a CloudEvents 1.0 event "
        "(structured JSON) signed per Standard Webhooks, at least once, in order; it gets the changes from now on",
        {"201": json_body("the webhook and its secret (shown only here)", _WEBHOOK_REF), "400": ERROR_REF,
         "409": ERROR_REF, "422": ERROR_REF},
        request={"$ref": "#/components/schemas/WebhookCreate"},
    ),
    Operation(
        "GET", "/api/webhooks/{webhook_id}", _webhook, ADMIN, "One webhook (never its secret)",
        {"200": json_body("the webhook", _WEBHOOK_REF), "404": ERROR_REF},
    ),
    Operation(
        "PATCH", "/api/webhooks/{webhook_id}", _webhook, ADMIN,
        "Change a webhook's url, description, filter or secret (each field given replaces its value)",
        {"200": json_body("the webhook", _WEBHOOK_REF), "400": ERROR_REF, "404": ERROR_REF, "422": ERROR_REF},
        request={"$ref": "#/components/schemas/WebhookPatch"},
    ),
    Operation(
        "DELETE", "/api/webhooks/{webhook_id}", _webhook, ADMIN, "Delete a webhook and its delivery records",
        {"204": {"description": "deleted"}, "404": ERROR_REF},
    ),
    Operation(
        "GET", "/api/webhooks/{webhook_id}/deliveries", _webhook_deliveries, ADMIN,
        "Deliveries that are not simply done, newest first: the one being retried (failed) and dead letters (dead)",
        {"200": json_body("deliveries", {
            "type": "object", "required": ["deliveries"],
            "properties": {"deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookDelivery"}}},
        }), "404": ERROR_REF, "422": ERROR_REF},
        parameters=(
            query("state", "failed or dead; all of them when absent", DELIVERY_STATE),
            query("limit", "at most this many", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    ),
    Operation(
        "POST", "/api/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", _webhook_retry, ADMIN,
        "Send a dead letter again, now, once, with its webhook-id; delivered, it is forgotten",
        {"200": json_body("the delivery (state delivered when it went through) and the attempt's result", {
            "type": "object", "required": ["delivery", "result"],
            "properties": {"delivery": {"$ref": "#/components/schemas/WebhookDelivery"}, "result": _ATTEMPT_REF},
        }), "404": ERROR_REF, "409": ERROR_REF, "422": ERROR_REF},
    ),
    Operation(
        "POST", "/api/webhooks/{webhook_id}/test", _webhook_test, ADMIN,
        "Send one test event (type io.draas.webhook.test) now, outside the ordered deliveries, and say how it went",
        {"200": json_body("the test event's id and the attempt's result", {
            "allOf": [_ATTEMPT_REF, {"type": "object", "required": ["eventId"],
                                     "properties": {"eventId": {"type": "string"}}}],
        }), "404": ERROR_REF},
    ),
    Operation(
        "GET", "/healthz", _healthz, PUBLIC,
        "Liveness, and the storeId of the store that answers (a random identifier, not a secret)",
        {"200": json_body("alive", HEALTHZ)},
    ),
    Operation(
        "GET", "/readyz", _readyz, PUBLIC,
        "Readiness: core actors alive, nothing escalated, store writable",
        {"200": json_body("ready"), "503": json_body("not ready")},
    ),
    Operation(
        "GET", METRICS_PATH, _metrics, PUBLIC,
        "Prometheus metrics (text format): public, or a read key with [metrics] requireKey = true",
        {"200": {"description": "metrics in the Prometheus text exposition format",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}},
    ),
    Operation("GET", "/api/openapi.json", _openapi, PUBLIC, "This document", {"200": json_body("OpenAPI 3")}),
    # The dashboard (api/ui.py). Its pages and files are public; the session cookie stands for an operator's key.
    *(Operation("GET", path, _ui_page(page), PUBLIC, summary, _HTML) for path, page, summary in _UI_PAGES),
    Operation(
        "GET", "/ui/static/{name}", _ui_static, PUBLIC, "The dashboard's JavaScript modules and styles",
        {"200": {"description": "the file"}, "404": ERROR_REF},
        parameters=({"name": "name", "in": "path", "required": True, "description": "a file's name, e.g. app.js",
                     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "maxLength": 64}},),
    ),
    Operation(
        "GET", SESSION_PATH, _ui_session, READ,
        "Who is signed in: identity, role, and (to the session cookie) the CSRF token its writes must send",
        {"200": json_body("identity, role, csrfToken, expiresAt")},
    ),
    Operation(
        "POST", SESSION_PATH, _ui_session, PUBLIC,
        "Sign in with an operator key: the answer sets the session cookie (HttpOnly, SameSite=Strict, Secure over "
        "TLS) that authenticates the API for the dashboard, the stream included; [ui] sessionSeconds ends it",
        {"200": json_body("identity, role, csrfToken, expiresAt"), "400": ERROR_REF, "401": ERROR_REF,
         "403": ERROR_REF, "415": ERROR_REF, "422": ERROR_REF},
        request={"type": "object", "required": ["key"], "properties": {"key": {"type": "string", "minLength": 1}}},
    ),
    Operation(
        "DELETE", SESSION_PATH, _ui_session, READ,
        "Sign out: ends the session and clears its cookie",
        {"204": {"description": "signed out"}},
    ),
)


def paths(table: tuple[Operation, ...]) -> list[str]:
    """Each path once, in the table's order."""
    return list(dict.fromkeys(operation.path for operation in table))


def roles(table: tuple[Operation, ...]) -> dict[str, dict[str, str]]:
    """path -> HTTP method -> required role, as the authentication middleware reads it."""
    found: dict[str, dict[str, str]] = {}
    for operation in table:
        found.setdefault(operation.path, {})[operation.method] = operation.role
    return found
