"""The push client shared by the daemons: a durable spool drained in order to ``POST /api/status/updates``.

``submit`` appends the updates to the spool (SQLite, fsynced: see ``daemons.spool``) and returns; from then on
they are *handled*: they survive a crash of the daemon and an outage of the control plane. One sender thread
drains the spool oldest first: the single-object form when one item is pending, the batch (array) form with up
to ``batch_max`` items when there is a backlog. Items leave the spool only once the control plane has answered:

- 2xx: acknowledged. A batch answered 202 may still refuse some items (``results[i].status == "rejected"``):
  those are logged with the body sent and dropped, never retried (sending them again cannot make them valid).
  The answer's ``storeId`` (which store took them) goes to ``on_store_id``: see ``daemons.outbox``, which also
  asks ``fetch_store_id`` (``GET /healthz``, with this client's session and TLS settings) while no push is answered.
- connection errors, timeouts, 408, 429 and 5xx: the same head of the spool is sent again after a delay, the
  ``Retry-After`` the server asked for (seconds or HTTP-date, capped at ``retry_after_max``) or else
  exponential backoff with full jitter from the ``backoff`` library. Nothing behind the head overtakes it.
- any other answer (another 4xx, a 3xx): the items are dropped and counted, not retried; 401/403 (a wrong
  daemon key, or a client certificate that a TLS proxy in front of the control plane refused) are logged at
  ERROR, every other refusal with the body that was sent.

Behind a TLS proxy (``config/nginx/draas.conf``) the client presents ``client_cert``/``client_key`` and checks the
proxy's certificate against ``ca_bundle`` (else the system's CAs). The files are read for each new connection,
so certificates renewed in place are picked up without a restart. With a client certificate the API key is
optional: the proxy forwards the certificate's subject and the control plane maps it to the daemon's identity.

When the spool is full the OLDEST pending item is dropped (logged, rate-limited, counted as ``dropped_full``):
a monitor cares most about the newest state of each instance, and a newer report for the same instance
supersedes the dropped one anyway. Replays and duplicates are harmless because every update carries the
``observedAt`` of its source (``submit`` stamps one when it is missing) and the control plane drops stale ones.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backoff
import requests

from .spool import Spool, SpoolClosed, SpoolItem

__all__ = [
    "RETRYABLE_STATUSES",
    "PushClient",
    "PushSettings",
    "PushStats",
    "is_retryable",
    "parse_retry_after",
    "retry_delays",
]

log = logging.getLogger(__name__)

UPDATES_PATH = "/api/status/updates"
HEALTHZ_PATH = "/healthz"
RETRYABLE_STATUSES = frozenset({408, 429})  # and every 5xx
_LOGGED_BODY_CHARS = 2000  # a refused body is logged, but one huge body must not flood the log


@dataclass(frozen=True, kw_only=True)
class PushSettings:
    url: str  # control plane base URL, e.g. "http://127.0.0.1:8088"
    api_key: str  # may be "" when a client certificate identifies the daemon
    spool_path: Path  # durable spool (a file; parent dirs are created)
    spool_max_items: int = 100_000
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    batch_max: int = 500
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    retry_after_max: float = 60.0  # a Retry-After beyond this is not obeyed to the letter
    log_interval: float = 10.0  # repeated warnings (spool full, control plane down) at most this often
    client_cert: Path | None = None  # PEM certificate (chain) presented to a TLS proxy; needs client_key
    client_key: Path | None = None  # its PEM private key, unencrypted
    ca_bundle: Path | None = None  # PEM CA certificates to check the server with; None: the system's

    def __post_init__(self) -> None:
        if self.batch_max < 1 or self.spool_max_items < 1:
            raise ValueError("batch_max and spool_max_items must be at least 1")
        if min(self.connect_timeout, self.read_timeout, self.backoff_initial) <= 0:
            raise ValueError("timeouts and backoff_initial must be positive")
        if self.backoff_max < self.backoff_initial or self.retry_after_max < 0:
            raise ValueError("backoff_max must be at least backoff_initial, and retry_after_max not negative")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together: give both or neither")
        if not self.api_key and self.client_cert is None:
            raise ValueError("an api_key or a client certificate (client_cert and client_key) is needed")
        if (self.client_cert is not None or self.ca_bundle is not None) and not self.url.startswith("https://"):
            raise ValueError(f"a client certificate or CA bundle needs an https:// url, got {self.url!r}")

    def tls_arguments(self) -> dict[str, Any]:
        """``cert=``/``verify=`` for ``requests``: empty unless a certificate or CA bundle is configured."""
        arguments: dict[str, Any] = {}
        if self.client_cert is not None and self.client_key is not None:
            arguments["cert"] = (str(self.client_cert), str(self.client_key))
        if self.ca_bundle is not None:
            arguments["verify"] = str(self.ca_bundle)
        return arguments


@dataclass(frozen=True)
class PushStats:
    """Counters since this client was made; ``pending`` is what the spool holds (earlier runs' items included).

    For a client that started on an empty spool: submitted = acknowledged + dropped_full + dropped_rejected +
    pending. ``retried`` counts attempts that failed in a retryable way.
    """

    submitted: int = 0
    acknowledged: int = 0
    retried: int = 0
    dropped_full: int = 0
    dropped_rejected: int = 0
    pending: int = 0


def is_retryable(status: int) -> bool:
    """408, 429 and 5xx are worth sending again; any other refusal would be refused again."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date); None when absent or garbage."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def retry_delays(initial: float, maximum: float) -> Iterator[float]:
    """Endless delays: the n-th (from 0) is uniform in [0, min(maximum, initial * 2**n)] (full jitter)."""
    expo = backoff.expo(base=2, factor=initial, max_value=maximum)
    next(expo)  # backoff's generators yield once before their first value
    for value in expo:
        yield backoff.full_jitter(value)


class _Throttle:
    """Lets a repeated warning through at most once per interval; says how many it held back."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._held = 0

    def allow(self) -> int | None:
        """None to stay quiet; otherwise the number of warnings held back since the last one let through."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            self._held += 1
            return None
        self._last, held, self._held = now, self._held, 0
        return held


class PushClient:
    """Durable, ordered, retrying pushes. ``submit`` from any thread; one sender thread of its own."""

    def __init__(
        self,
        settings: PushSettings,
        *,
        session: requests.Session | None = None,
        on_store_id: Callable[[str], None] | None = None,
    ) -> None:
        """Opens (or creates) the spool; raises ``daemons.spool.SpoolLocked`` if another client holds it.

        ``on_store_id`` (also settable as an attribute before ``start``) is called on the sender thread with the
        ``storeId`` of every 2xx answer that carries one, after its items have left the spool; what it raises is
        logged and changes nothing else.
        """
        self.settings = settings
        self.on_store_id = on_store_id
        self._spool = Spool(settings.spool_path, max_items=settings.spool_max_items)
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()  # keeps connections alive
        self._url = settings.url.rstrip("/") + UPDATES_PATH
        self._healthz_url = settings.url.rstrip("/") + HEALTHZ_PATH
        self._headers = {"Content-Type": "application/json"}
        if settings.api_key:
            self._headers["X-API-Key"] = settings.api_key
        self._tls = settings.tls_arguments()
        self._counts = {
            name: 0 for name in ("submitted", "acknowledged", "retried", "dropped_full", "dropped_rejected")
        }
        self._counts_lock = threading.Lock()
        self._changed = threading.Condition()  # notified whenever the spool shrinks
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._delays: Iterator[float] | None = None  # the current run of retries; None after a final answer
        self._answered_at = time.monotonic()  # of the last 2xx answer (or of this client's making, before any)
        self._full_log = _Throttle(settings.log_interval)
        self._down_log = _Throttle(settings.log_interval)
        self._report_full(self._spool.trim())

    # -- the daemon's side --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender thread (once); what an earlier run left in the spool is sent first."""
        if self._closed:
            raise RuntimeError("the push client is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="push-client-sender", daemon=True)
            self._thread.start()

    def submit(self, updates: Sequence[Mapping[str, Any]]) -> None:
        """Spool the updates (fsynced) and wake the sender; on return they survive a crash of the daemon.

        Raises TypeError/ValueError for an update that is not JSON (nothing is spooled then), RuntimeError after
        ``close``, and the spool's own error if the disk refuses the write.
        """
        if self._closed:
            raise RuntimeError("the push client is closed")
        if not updates:
            return
        now = time.time()
        # Stamped now, so that a replay after an outage carries when it was seen, not when it was delivered.
        bodies = [
            json.dumps(u if "observedAt" in u else {**u, "observedAt": now}, separators=(",", ":"), allow_nan=False)
            for u in updates
        ]
        dropped = self._spool.append(bodies)
        self._count(submitted=len(bodies))
        self._report_full(dropped)
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the spool to empty (all acknowledged or dropped); True if it did."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._spool) == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed within ``timeout``, stop the sender and close the spool; what is left
        stays in the spool for the next client on the same path."""
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            # A request in flight ends by its own timeouts; we do not wait for all of them.
            thread.join(max(0.1, deadline - time.monotonic()))
        self._spool.close()  # a sender still in a request finds it closed and ends there
        if thread is not None and thread.is_alive():
            log.warning("push client closed while a request was still in flight; its items stay spooled")
        elif self._owns_session:
            self._session.close()
        left = len(self._spool)
        if left:
            log.warning("push client closed with %d update(s) still spooled in %s", left, self.settings.spool_path)

    @property
    def answering(self) -> bool:
        """Whether the control plane answered the last attempt (True before any); False while retrying."""
        return self._delays is None

    @property
    def answered_at(self) -> float:
        """``time.monotonic()`` when the last 2xx answer arrived (when this client was made, before any)."""
        return self._answered_at

    def fetch_store_id(self, timeout: float) -> str | None:
        """The ``storeId`` the control plane's ``GET /healthz`` names; None when its answer names none (a control
        plane older than store identities). Raises ``requests.RequestException`` when it does not answer 200.

        Safe beside the sender thread: the session's connection pool is thread-safe, and a request that finds
        the kept-alive connection busy opens another one. Never retried here: the caller asks again later.
        """
        response = self._session.get(
            self._healthz_url, timeout=(min(timeout, self.settings.connect_timeout), timeout),
            allow_redirects=False, **self._tls,
        )
        response.raise_for_status()
        if response.status_code != 200:
            raise requests.HTTPError(f"HTTP {response.status_code} from {self._healthz_url}", response=response)
        store_id = _json_object(response).get("storeId")
        return store_id if isinstance(store_id, str) and store_id else None

    @property
    def stats(self) -> PushStats:
        with self._counts_lock:
            counts = dict(self._counts)
        return PushStats(**counts, pending=len(self._spool))

    # -- the sender ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before peeking: a submit after the peek sets it again, and is not missed
            try:
                items = self._spool.peek(self.settings.batch_max)
                if not items:
                    self._wake.wait(1.0)
                    continue
                delay = self._deliver(items)
            except SpoolClosed:
                return
            except Exception:
                log.exception("push client: unexpected error; retrying")
                delay = self._next_delay(None)
            if delay is not None:
                self._stop.wait(delay)

    def _deliver(self, items: list[SpoolItem]) -> float | None:
        """One attempt at the head of the spool; returns the delay before trying again, or None when answered."""
        try:
            response = self._session.post(
                self._url,
                data=_payload_text(items).encode(),
                headers=self._headers,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                allow_redirects=False,
                **self._tls,
            )
        except requests.RequestException as error:
            return self._retry(items, f"{type(error).__name__}: {error}", None)
        if is_retryable(response.status_code):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self._retry(items, f"HTTP {response.status_code}", retry_after)
        if self._delays is not None:
            log.info("control plane %s answers again (HTTP %d)", self.settings.url, response.status_code)
            self._delays = None
        if 200 <= response.status_code <= 299:
            self._answered_at = time.monotonic()  # first: the outbox compares it around a /healthz check
            self._settle(items, response)
        else:
            self._refused(items, response)
        return None

    def _retry(self, items: list[SpoolItem], why: str, retry_after: float | None) -> float:
        self._count(retried=1)
        delay = self._next_delay(retry_after)
        held = self._down_log.allow()
        if held is not None:
            log.warning(
                "control plane %s did not take %d update(s) (%s); retrying in %.2fs%s",
                self.settings.url,
                len(items),
                why,
                delay,
                f" ({held} similar warnings held back)" if held else "",
            )
        return delay

    def _next_delay(self, retry_after: float | None) -> float:
        if self._delays is None:
            self._delays = retry_delays(self.settings.backoff_initial, self.settings.backoff_max)
        delay = next(self._delays)  # advanced even when Retry-After wins, so a later fallback keeps growing
        return delay if retry_after is None else min(retry_after, self.settings.retry_after_max)

    def _settle(self, items: list[SpoolItem], response: requests.Response) -> None:
        """2xx: acknowledge, except the items a batch answer says were rejected."""
        body = _json_object(response)
        rejected = _rejected_results(body, len(items)) if len(items) > 1 else {}
        for index, result in rejected.items():
            log.warning(
                "control plane rejected an update (dropped, not retried): %s; sent: %s",
                _short(json.dumps(result)),
                _short(items[index].body),
            )
        self._remove(items, rejected=set(rejected))
        store_id = body.get("storeId")
        if isinstance(store_id, str) and store_id and self.on_store_id is not None:
            try:
                self.on_store_id(store_id)
            except Exception:  # the items are acknowledged whatever the listener does
                log.exception("push client: the storeId listener failed")

    def _refused(self, items: list[SpoolItem], response: requests.Response) -> None:
        status = response.status_code
        if status in (401, 403):
            log.error(
                "control plane %s refused the daemon's credentials (HTTP %d): check the API key or client "
                "certificate; %d update(s) dropped; answer: %s",
                self.settings.url,
                status,
                len(items),
                _short(response.text),
            )
        else:
            results = _rejected_results(_json_object(response), len(items)) if len(items) > 1 else {}
            if results:  # a batch with nothing accepted (422) still says why for each item
                for index, result in results.items():
                    log.warning(
                        "control plane rejected an update (HTTP %d, dropped, not retried): %s; sent: %s",
                        status,
                        _short(json.dumps(result)),
                        _short(items[index].body),
                    )
            else:
                log.warning(
                    "control plane refused %d update(s) (HTTP %d, dropped, not retried): %s; sent: %s",
                    len(items),
                    status,
                    _short(response.text),
                    _short(_payload_text(items)),
                )
        self._remove(items, rejected={index for index in range(len(items))})

    def _remove(self, items: list[SpoolItem], *, rejected: set[int]) -> None:
        accepted_seqs = [item.seq for index, item in enumerate(items) if index not in rejected]
        rejected_seqs = [item.seq for index, item in enumerate(items) if index in rejected]
        # Counted by what was still spooled: an item dropped for room while in flight is counted once.
        acknowledged = self._spool.remove(accepted_seqs) if accepted_seqs else 0
        dropped = self._spool.remove(rejected_seqs) if rejected_seqs else 0
        self._count(acknowledged=acknowledged, dropped_rejected=dropped)
        with self._changed:
            self._changed.notify_all()

    # -- helpers ------------------------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._counts_lock:
            for name, value in increments.items():
                self._counts[name] += value

    def _report_full(self, dropped: list[SpoolItem]) -> None:
        if not dropped:
            return
        self._count(dropped_full=len(dropped))
        with self._changed:
            self._changed.notify_all()
        held = self._full_log.allow()
        if held is not None:
            log.warning(
                "push spool full (%d items): dropped the oldest %d pending update(s), the oldest being %s%s",
                self.settings.spool_max_items,
                len(dropped),
                _short(dropped[0].body, 300),
                f" ({held} similar warnings held back)" if held else "",
            )


def _json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object; {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _rejected_results(body: Mapping[str, Any], size: int) -> dict[int, Any]:
    """index -> result for the items a batch answer marks rejected; {} when the answer is not a batch result."""
    results = body.get("results")
    if not isinstance(results, list):
        return {}
    return {
        r["index"]: r
        for r in results
        if isinstance(r, dict)
        and r.get("status") == "rejected"
        and isinstance(r.get("index"), int)
        and 0 <= r["index"] < size
    }


def _payload_text(items: list[SpoolItem]) -> str:
    return items[0].body if len(items) == 1 else "[" + ",".join(item.body for item in items) + "]"


def _short(text: str, limit: int = _LOGGED_BODY_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
