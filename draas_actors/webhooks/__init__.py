"""Webhooks: signed CloudEvents POSTed to admins' endpoints for every committed change, at least once, in order
per endpoint. ``manager.WebhookManager`` is the door; the control plane owns it."""

from .config import WebhookSettings
from .manager import WebhookManager

__all__ = ["WebhookManager", "WebhookSettings"]
