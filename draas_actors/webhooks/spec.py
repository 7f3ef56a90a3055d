"""What a webhook is: its URL, description, filter and secret, parsed from the API's JSON and shown back."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NewType

from ..errors import InvalidInput, MalformedInput
from ..messages import StatusChanged
from ..model import ChangeKind, Platform, Status
from ..wire import format_time, validate
from .guard import AllowedHosts, check_url

WebhookId = NewType("WebhookId", str)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)  # Standard Webhooks: secrets of 24 to 64 random bytes
_ID_PATTERN = "^wh_[0-9a-f]{16}$"
_FILTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "deliver only changes that match every list given (an absent or empty list matches any)",
    "properties": {
        "instanceIds": {"type": "array", "maxItems": 1000,
                        "items": {"type": "string", "minLength": 1, "maxLength": 256}},
        "platforms": {"type": "array", "items": {"enum": [p.value for p in Platform]}},
        "statuses": {"type": "array", "items": {"enum": [s.value for s in Status]},
                     "description": "new statuses; a configuration change matches only when this is empty"},
    },
}
_PROPERTIES: dict[str, Any] = {
    "url": {"type": "string", "minLength": 1, "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://"},
    "description": {"type": "string", "maxLength": 1024},
    "filter": _FILTER_SCHEMA,
    "secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
               "description": "whsec_ and the base64 of 24 to 64 random bytes; generated when not given"},
}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["url"], "properties": _PROPERTIES,
}
PATCH_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "minProperties": 1, "properties": _PROPERTIES,
}
ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _ID_PATTERN}


@dataclass(frozen=True)
class Filter:
    instance_ids: frozenset[str] = frozenset()
    platforms: frozenset[Platform] = frozenset()
    statuses: frozenset[Status] = frozenset()

    def matches(self, change: StatusChanged) -> bool:
        if self.instance_ids and change.instance_id not in self.instance_ids:
            return False
        if self.platforms and change.platform not in self.platforms:
            return False
        if self.statuses:
            # A configuration change leaves the status as it was: it is no move into one of these.
            return change.kind is ChangeKind.STATUS and change.new_status in self.statuses
        return True


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    description: str = ""
    filter: Filter = Filter()
    secret: str = ""


@dataclass(frozen=True)
class Webhook:
    webhook_id: WebhookId
    spec: WebhookSpec
    created_at: float
    updated_at: float


def new_webhook_id() -> WebhookId:
    return WebhookId("wh_" + secrets.token_hex(8))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: the bytes its base64 part encodes."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def parse_spec(body: Any, allowed: AllowedHosts) -> WebhookSpec:
    """A new webhook from ``POST /api/webhooks``' body; a secret is generated when none is given."""
    _check_object(body)
    validate(CREATE_SCHEMA, body)
    return _apply(WebhookSpec(url=body["url"], secret=new_secret()), body, allowed)


def parse_patch(body: Any, current: WebhookSpec, allowed: AllowedHosts) -> WebhookSpec:
    """``current`` with what ``PATCH /api/webhooks/{id}``' body changes (each field given replaces its value)."""
    _check_object(body)
    validate(PATCH_SCHEMA, body)
    return _apply(current, body, allowed)


def _apply(spec: WebhookSpec, body: Mapping[str, Any], allowed: AllowedHosts) -> WebhookSpec:
    url = body.get("url", spec.url)
    if "url" in body:
        check_url(url, allowed)
    secret = body.get("secret", spec.secret)
    if "secret" in body:
        _check_secret(secret)
    return WebhookSpec(
        url=url,
        description=body.get("description", spec.description),
        filter=_filter(body["filter"]) if "filter" in body else spec.filter,
        secret=secret,
    )


def _filter(raw: Mapping[str, Any]) -> Filter:
    return Filter(
        instance_ids=frozenset(raw.get("instanceIds", ())),
        platforms=frozenset(Platform(p) for p in raw.get("platforms", ())),
        statuses=frozenset(Status(s) for s in raw.get("statuses", ())),
    )


def _check_secret(secret: str) -> None:
    try:
        key = secret_key(secret)
    except (binascii.Error, ValueError):
        raise InvalidInput("secret: not whsec_ followed by base64", field="secret") from None
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise InvalidInput(f"secret: must encode {low} to {high} bytes, not {len(key)}", field="secret")


def _check_object(body: Any) -> None:
    if not isinstance(body, dict):
        raise MalformedInput("a webhook must be a JSON object", field="body")


def filter_view(f: Filter) -> dict[str, Any]:
    return {
        "instanceIds": sorted(f.instance_ids),
        "platforms": sorted(p.value for p in f.platforms),
        "statuses": sorted(s.value for s in f.statuses),
    }


def filter_from_view(raw: Mapping[str, Any]) -> Filter:
    return _filter(raw)


def webhook_view(webhook: Webhook) -> dict[str, Any]:
    """A webhook as the API shows it: never its secret (only the answer that created it carries that)."""
    return {
        "id": webhook.webhook_id,
        "url": webhook.spec.url,
        "description": webhook.spec.description,
        "filter": filter_view(webhook.spec.filter),
        "createdAt": format_time(webhook.created_at),
        "updatedAt": format_time(webhook.updated_at),
    }


__all__ = [
    "CREATE_SCHEMA",
    "ID_SCHEMA",
    "PATCH_SCHEMA",
    "SECRET_PREFIX",
    "Filter",
    "Webhook",
    "WebhookId",
    "WebhookSpec",
    "filter_from_view",
    "filter_view",
    "new_secret",
    "new_webhook_id",
    "parse_patch",
    "parse_spec",
    "secret_key",
    "webhook_view",
]
