"""JSON schemas the OpenAPI document names: the wire's own, with what the server accepts stated as schema."""

from __future__ import annotations

from typing import Any

from ..model import CONFIGURATION_CHANGED, UPSTREAM_STATUS_NUMBERS, Platform, Status
from ..webhooks.registry import STATES as DELIVERY_STATES
from ..webhooks.spec import CREATE_SCHEMA as WEBHOOK_CREATE
from ..webhooks.spec import ID_SCHEMA as WEBHOOK_ID
from ..webhooks.spec import PATCH_SCHEMA as WEBHOOK_PATCH
from ..wire import REGISTRATION_SCHEMA, REPORT_STATUS_NAMES, STATUS_NAMES, STATUS_UPDATE_SCHEMA


def any_case(name: str) -> str:
    """A pattern that matches ``name`` in any case: JSON Schema's patterns have no case-insensitive flag."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in name)


ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": ["string", "null"]},
        "field": {"type": ["string", "null"]},
    },
}
ERROR_REF: dict[str, Any] = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
INSTANCE_REF: dict[str, Any] = {"$ref": "#/components/schemas/Instance"}
INSTANCE: dict[str, Any] = {
    "type": "object",
    "required": [
        "instanceId", "platform", "status", "restartCount", "lastExitCode", "nextRestartAt", "restartPolicy", "runtime",
    ],
}

# What the server accepts, stated as schema rather than prose, so that a client (or a fuzzer) can know it.
_ANY_CASE_STATUS = f"({'|'.join(any_case(name) for name in STATUS_NAMES)})"
STATUS: dict[str, Any] = {"type": "string", "pattern": f"^{_ANY_CASE_STATUS}$"}
PLATFORM: dict[str, Any] = {"type": "string", "enum": [p.value for p in Platform]}
_NAME = rf"\s*({_ANY_CASE_STATUS}|{any_case(CONFIGURATION_CHANGED)})\s*"
STATUS_LIST: dict[str, Any] = {"type": "string", "pattern": f"^({_NAME}(,{_NAME})*)?$"}  # empty: no filter
_EPOCH = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
SINCE: dict[str, Any] = {"type": "string", "anyOf": [{"format": "date-time"}, {"pattern": _EPOCH}]}

# The validator's schema checks the status only for being text or an integer (parse_status_update then names the
# field); the document says which names (in any case) and numbers it takes.
STATUS_UPDATE: dict[str, Any] = {
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
STATUS_CHANGE_RECORD: dict[str, Any] = {
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
# Any text is taken (an invalid one is ignored, as W3C Trace Context has a receiver do, and named in the answer's
# warnings), so the schema says "string": a pattern here would promise a 4xx for what is only ignored.
TRACEPARENT_HEADER: dict[str, Any] = {
    "name": "traceparent", "in": "header", "required": False,
    "description": "W3C trace context of the push (00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>), for "
    "each update without a traceparent field of its own; the changes they cause keep it. An invalid one is ignored "
    "and named in the answer's warnings",
    "schema": {"type": "string"},
}
HEALTHZ: dict[str, Any] = {
    "type": "object",
    "required": ["status", "storeId"],
    "properties": {"status": {"type": "string", "enum": ["alive"]}, "storeId": {"type": "string"}},
}

_TIME_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
WEBHOOK: dict[str, Any] = {
    "type": "object",
    "required": ["id", "url", "description", "filter", "createdAt", "updatedAt", "lag"],
    "properties": {
        "id": WEBHOOK_ID,
        "url": {"type": "string"},
        "description": {"type": "string"},
        "filter": WEBHOOK_CREATE["properties"]["filter"],
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "lag": {"type": "integer", "minimum": 0, "description": "committed changes not yet dealt with"},
        "secret": {"type": "string", "description": "only in the answer that created the webhook"},
    },
}
DELIVERY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "eventId", "eventType", "cursor", "state", "attempts", "lastError"],
    "properties": {
        "id": {"type": "integer"},
        "eventId": {"type": "string", "description": "the CloudEvents id and webhook-id header"},
        "eventType": {"type": "string"},
        "cursor": {"type": "integer"},
        "state": {"type": "string", "enum": [*DELIVERY_STATES, "delivered"]},
        "attempts": {"type": "integer"},
        "firstAttempt": _TIME_OR_NULL,
        "lastAttempt": _TIME_OR_NULL,
        "nextAttempt": _TIME_OR_NULL,
        "lastError": {"type": "string"},
    },
}
ATTEMPT_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["delivered", "outcome", "status", "error"],
    "properties": {
        "delivered": {"type": "boolean"},
        "outcome": {"type": "string",
                    "enum": ["delivered", "http_error", "timeout", "connection_error", "refused"]},
        "status": {"type": ["integer", "null"], "description": "the endpoint's HTTP status, when it answered"},
        "error": {"type": "string"},
    },
}
_HEADER = {"in": "header", "required": True, "schema": {"type": "string"}}
# What the control plane POSTs to a webhook's url: OpenAPI 3.1's "webhooks", so that the receiver's side is
# documented beside the API that manages it.
OUTGOING: dict[str, Any] = {
    "instanceStatusChanged": {
        "post": {
            "summary": "A committed change, to each webhook whose filter matches: a CloudEvents 1.0 event in "
                       "structured JSON mode, signed per Standard Webhooks; type io.draas.instance.status.changed "
                       "(io.draas.instance.configuration.changed, io.draas.webhook.test for the others)",
            "parameters": [
                {"name": "webhook-id", "description": "the event's id: the same on every retry", **_HEADER},
                {"name": "webhook-timestamp", "description": "epoch seconds of this attempt", **_HEADER},
                {"name": "webhook-signature", "description": "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
                 **_HEADER},
                {"name": "traceparent", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "the W3C traceparent of the push that caused the change"},
            ],
            "requestBody": {"required": True, "content": {"application/cloudevents+json": {"schema": {
                "type": "object",
                "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
                "properties": {
                    "specversion": {"const": "1.0"},
                    "id": {"type": "string"},
                    "source": {"type": "string"},
                    "type": {"type": "string"},
                    "subject": {"type": "string", "description": "the instance id"},
                    "time": {"type": "string", "format": "date-time"},
                    "datacontenttype": {"const": "application/json"},
                    "data": {"type": "object", "description": "the change, as GET /api/status/changes shows it"},
                    "traceparent": {"type": "string", "description": "the distributed-tracing extension"},
                },
            }}}},
            "responses": {"2XX": {"description": "delivered; 429 and 503 are retried after Retry-After, anything "
                                                 "else after a backoff, until webhooks.retryHorizon"}},
        }
    }
}
DELIVERY_STATE: dict[str, Any] = {"type": "string", "enum": list(DELIVERY_STATES)}
# Path parameters by name, in the order they are listed: the document adds each one a path names.
PATH_PARAMETERS: dict[str, Any] = {
    "instance_id": {"type": "string"},
    "webhook_id": WEBHOOK_ID,
    "delivery_id": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}

# The document's components: every "$ref" in the route table points at one of these.
COMPONENTS: dict[str, Any] = {
    "StatusUpdate": STATUS_UPDATE,
    "Registration": REGISTRATION_SCHEMA,
    "Error": ERROR,
    "Instance": INSTANCE,
    "WebhookCreate": WEBHOOK_CREATE,
    "WebhookPatch": WEBHOOK_PATCH,
    "Webhook": WEBHOOK,
    "WebhookDelivery": DELIVERY,
    "AttemptResult": ATTEMPT_RESULT,
}


def json_body(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response (or request) with a JSON body of ``schema`` (any object when None)."""
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
