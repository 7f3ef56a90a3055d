"""The ``[webhooks]`` settings: where deliveries may go, how long they are retried, how long one attempt may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    # Hostnames (exact, any case) and CIDRs a webhook may point at; empty: any host but link-local and metadata ones.
    allowed_hosts: tuple[str, ...] = ()
    # Seconds a change keeps being retried, counted from the change's own time (not the first attempt): an endpoint
    # that was down for a day then drains its backlog at the speed of time, not one horizon per event.
    retry_horizon: float = 86_400.0
    first_backoff: float = 1.0  # seconds before the first retry; doubled at each next one, with jitter
    max_backoff: float = 600.0  # the longest wait between two attempts (a Retry-After longer than this is cut)
    connect_timeout: float = 2.0  # seconds to open the connection (and the TLS handshake)
    timeout: float = 10.0  # seconds for the whole attempt, connect to the last byte of the answer
    # The CloudEvents ``source`` of every event; empty: ``urn:draas:<storeId>`` (this control plane's store).
    source: str = ""
    max_dead_letters: int = 1000  # per webhook: the oldest dead deliveries beyond this are forgotten
    max_webhooks: int = 100  # each has its own delivery thread


__all__ = ["WebhookSettings"]
