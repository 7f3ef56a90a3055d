"""The Docker daemon: reports labelled containers' statuses to the control plane.

``python -m daemons.docker_daemon`` (or the console script ``draas-docker-daemon``), configured through the
environment (see ``load_settings`` and ``config/docker-daemon.env.example``). The loop:

1. **resync**: read the engine's clock, then list the labelled containers with the cheap listing (one request,
   no inspect per container) and push every one's state in one batch, observed at that clock reading; containers
   known from before that are no longer listed are pushed as Removed;
2. **stream**: follow ``GET /events`` for labelled containers *since that clock reading*, so a change that
   happened while the listing was being read comes through the stream as well (a duplicate is harmless: the
   control plane drops reports older than what it has from this source);
3. when the stream breaks or the engine cannot be reached: wait (exponential backoff with jitter) and go to 1.

Why the engine's clock: ``since`` is compared with the engine's event times. Our own clock may differ from the
engine's (a remote ``DOCKER_HOST``, a Docker Desktop VM): ahead of it, ``since`` would lie in the engine's future
and the events in between would be lost; behind it, we would only get duplicates. The engine's ``/info``
``SystemTime`` (nanoseconds) is read just *before* listing, so that every change after the listing is both in the
stream and newer than the listing's reports. Limits: the engine keeps only its last 256 events for ``since``,
and forgets them when it restarts (the resync after a reconnect covers that).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

import docker
import requests
import urllib3

from draas_actors.errors import ConfigError
from draas_actors.model import Status

from .docker_mapping import (
    EngineTime,
    Skip,
    StatusUpdate,
    map_event,
    map_listing,
    parse_engine_time,
    removed_update,
)
from .push_client import PushClient, PushSettings, retry_delays
from .spool import SpoolLocked

__all__ = ["DaemonSettings", "DaemonStats", "DockerDaemon", "load_settings", "main"]

log = logging.getLogger("draas.docker_daemon")

DEFAULT_LABEL_FILTER = "draas.managed=true"
DEFAULT_SPOOL_PATH = Path("var/docker-daemon.spool")
# What a broken connection to the engine looks like through the SDK (it does not wrap requests' errors).
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True, kw_only=True)
class DaemonSettings:
    control_plane_url: str
    api_key: str
    label_filter: tuple[str, ...] = (DEFAULT_LABEL_FILTER,)
    spool_path: Path = DEFAULT_SPOOL_PATH
    spool_max_items: int = 100_000
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    shutdown_flush: float = 5.0  # at most this long on SIGTERM to deliver what is spooled
    engine_timeout: float = 30.0  # for engine requests other than the event stream
    log_level: str = "INFO"

    def push_settings(self) -> PushSettings:
        return PushSettings(
            url=self.control_plane_url,
            api_key=self.api_key,
            spool_path=self.spool_path,
            spool_max_items=self.spool_max_items,
        )


def load_settings(environ: Mapping[str, str]) -> DaemonSettings:
    """The only place the daemon reads its environment; raises ConfigError naming the variable."""
    url = _required(environ, "CONTROL_PLANE_URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"CONTROL_PLANE_URL: expected http(s)://host[:port], got {url!r}", field="CONTROL_PLANE_URL"
        )
    defaults = DaemonSettings(control_plane_url=url, api_key="-")
    return DaemonSettings(
        control_plane_url=url,
        api_key=_required(environ, "DRAAS_API_KEY"),
        label_filter=_labels(environ.get("DRAAS_LABEL_FILTER", DEFAULT_LABEL_FILTER)),
        spool_path=Path(environ.get("DRAAS_SPOOL_PATH", "").strip() or DEFAULT_SPOOL_PATH),
        spool_max_items=int(_number(environ, "DRAAS_SPOOL_MAX_ITEMS", defaults.spool_max_items, 1, integer=True)),
        reconnect_max=_number(environ, "DRAAS_RECONNECT_MAX_SECONDS", defaults.reconnect_max, 0.01),
        shutdown_flush=_number(environ, "DRAAS_SHUTDOWN_FLUSH_SECONDS", defaults.shutdown_flush, 0.0),
        log_level=_log_level(environ.get("DRAAS_LOG_LEVEL", defaults.log_level)),
    )


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required", field=name)
    return value


def _labels(text: str) -> tuple[str, ...]:
    """``key=value,other`` -> the engine's label filters (a container must match all of them)."""
    labels = tuple(part.strip() for part in text.split(","))
    for label in labels:
        key = label.partition("=")[0].strip()
        if not key or any(c.isspace() for c in key):
            raise ConfigError(
                f"DRAAS_LABEL_FILTER: {label!r} is not a label filter; expected key=value or key, comma-separated",
                field="DRAAS_LABEL_FILTER",
            )
    return labels


def _number(environ: Mapping[str, str], name: str, default: float, low: float, *, integer: bool = False) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        expected = "an integer" if integer else "a number"
        raise ConfigError(f"{name}: expected {expected}, got {text!r}", field=name) from None
    if not math.isfinite(value) or value < low:
        raise ConfigError(f"{name}: must be at least {low:g}, got {text!r}", field=name)
    return value


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(
            f"DRAAS_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got {text!r}", field="DRAAS_LOG_LEVEL"
        )
    return level


@dataclass
class DaemonStats:
    """Counters since the daemon was made (read them from any thread; only the daemon's loop writes)."""

    resyncs: int = 0
    listed: int = 0
    events: int = 0
    pushed: int = 0
    ignored_actions: int = 0  # events with an action we do not map (and listed containers in an unknown state)
    skipped_no_instance_id: int = 0
    vanished: int = 0  # known containers missing from a resync's listing, pushed as Removed
    superseded: int = 0  # destroy of a container whose instance another container has taken over
    reconnects: int = 0
    engine_errors: int = 0


@dataclass(frozen=True)
class _Known:
    instance_id: str
    image: str


def _default_client(settings: DaemonSettings) -> docker.DockerClient:
    # DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured here. It asks the engine for its API
    # version, so it fails while the engine is down: it is made inside the reconnect loop.
    return docker.from_env(timeout=int(settings.engine_timeout))


class DockerDaemon:
    """List, push, stream, and again after any break. ``run`` blocks; ``stop`` from any thread or a signal."""

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        push: PushClient | None = None,
        client_factory: Callable[[DaemonSettings], docker.DockerClient] = _default_client,
    ) -> None:
        self.settings = settings
        self.push = push if push is not None else PushClient(settings.push_settings())
        self.streaming = threading.Event()  # set while the event stream is open (after a resync)
        self._client_factory = client_factory
        self._client: docker.DockerClient | None = None
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # RLock: stop() may run in a signal handler on a thread holding it
        self._events: Any = None  # the open CancellableStream
        self._known: dict[str, _Known] = {}  # container id -> instance, from the last listing and the events since
        self._warned: set[str] = set()
        self._stats = DaemonStats()

    @property
    def stats(self) -> DaemonStats:
        return dataclasses.replace(self._stats)

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Until ``stop``: resync, stream; on a break, back off and do it again. Flushes the pushes at the end."""
        self.push.start()
        delays: Iterator[float] | None = None
        down_since: float | None = None
        try:
            while not self._stopping.is_set():
                try:
                    since = self.resync()
                    if down_since is not None:
                        log.info("engine reachable again after %.1fs; resynced", time.monotonic() - down_since)
                        down_since = None
                    delays = None
                    self.stream(since)
                    if not self._stopping.is_set():
                        log.warning("the engine's event stream ended; reconnecting")
                        down_since = time.monotonic()
                        self._drop_client()
                except _ENGINE_ERRORS as error:
                    self._stats.engine_errors += 1
                    self._drop_client()
                    if down_since is None:
                        down_since = time.monotonic()
                        log.warning("cannot reach the Docker engine (%s: %s); retrying with backoff",
                                    type(error).__name__, error)
                    else:
                        log.debug("engine still unreachable: %s", error)
                if self._stopping.is_set():
                    break
                if delays is None:
                    delays = retry_delays(self.settings.reconnect_initial, self.settings.reconnect_max)
                self._stats.reconnects += 1
                self._stopping.wait(next(delays))
        finally:
            self.streaming.clear()
            self._drop_client()
            self.push.close(timeout=self.settings.shutdown_flush)
            pending = self.push.stats.pending
            if pending:
                log.warning("stopped with %d update(s) not yet delivered; they stay in %s",
                            pending, self.settings.spool_path)

    def resync(self) -> EngineTime:
        """Push every labelled container's current state, and Removed for known ones that are gone.

        Returns the engine time taken before listing: the ``since`` for the event stream.
        """
        client = self._connect()
        since = self._engine_now(client)
        rows = client.api.containers(all=True, filters={"label": list(self.settings.label_filter)})
        updates: list[StatusUpdate] = []
        listed: dict[str, _Known] = {}
        for row in rows:
            update = map_listing(row, since.seconds)
            if isinstance(update, Skip):
                self._skipped(update, str(row.get("Id", "")), row.get("Names"))
                continue
            listed[update.container_id] = _Known(update.instance_id, str(update.metadata.get("imageName", "")))
            updates.append(update)
        live = {known.instance_id for known in listed.values()}
        # Removed first, so an instance whose container was replaced ends with its new container's state.
        gone = [
            removed_update(
                container_id=container_id,
                instance_id=known.instance_id,
                image=known.image,
                observed_at=since.seconds,
                reason="container no longer exists (found at resync)",
            )
            for container_id, known in self._known.items()
            if container_id not in listed and known.instance_id not in live
        ]
        self._known = listed
        self._stats.resyncs += 1
        self._stats.listed += len(rows)
        self._stats.vanished += len(gone)
        self._push(gone + updates)
        log.info("resync: %d labelled container(s) reported, %d gone since last seen", len(updates), len(gone))
        return since

    def stream(self, since: EngineTime) -> None:
        """Map and push events from ``since`` until the stream ends (engine gone, or ``stop``)."""
        client = self._connect()
        events = client.api.events(
            since=since.since_param,
            filters={"type": "container", "label": list(self.settings.label_filter)},
            decode=True,
        )
        with self._lock:
            self._events = events
            if self._stopping.is_set():
                _close_quietly(events)
        self.streaming.set()
        try:
            for event in events:
                self._on_event(event)
        except ValueError as error:  # a truncated JSON event when the engine dies mid-write
            log.warning("the event stream broke: %s", error)
        finally:
            self.streaming.clear()
            with self._lock:
                self._events = None
            _close_quietly(events)

    def stop(self) -> None:
        """Ask ``run`` to end: closes the event stream, so the blocked read returns. Safe in a signal handler."""
        self._stopping.set()
        with self._lock:
            if self._events is not None:
                _close_quietly(self._events)

    # -- helpers ------------------------------------------------------------------------------------

    def _on_event(self, event: Mapping[str, Any]) -> None:
        self._stats.events += 1
        update = map_event(event)
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or "")
        if isinstance(update, Skip):
            self._skipped(update, container_id, (actor.get("Attributes") or {}).get("name"))
            if event.get("Action") == "destroy":
                self._warned.discard(container_id)
            return
        if update.status is Status.REMOVED:
            self._known.pop(container_id, None)
            if any(known.instance_id == update.instance_id for known in self._known.values()):
                # Recreated (docker compose starts the new container before removing the old one).
                self._stats.superseded += 1
                return
        else:
            self._known[container_id] = _Known(update.instance_id, str(update.metadata.get("imageName", "")))
        self._push([update])

    def _skipped(self, reason: Skip, container_id: str, name: Any) -> None:
        if reason is Skip.NO_INSTANCE_ID:
            self._stats.skipped_no_instance_id += 1
            if container_id not in self._warned:
                self._warned.add(container_id)
                log.warning("container %s (%s) matches %s but has no draas.instanceId label; skipped",
                            container_id[:12], name, ",".join(self.settings.label_filter))
        else:
            self._stats.ignored_actions += 1

    def _push(self, updates: list[StatusUpdate]) -> None:
        if updates:
            self.push.submit([update.to_wire() for update in updates])
            self._stats.pushed += len(updates)

    def _connect(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self._client_factory(self.settings)
        return self._client

    def _drop_client(self) -> None:
        # A fresh client after a break: its pooled connections point at an engine that went away.
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a client whose engine is gone can fail in many ways; none matters
                log.debug("closing the Docker client failed", exc_info=True)

    @staticmethod
    def _engine_now(client: docker.DockerClient) -> EngineTime:
        text = client.api.info().get("SystemTime", "")
        try:
            return parse_engine_time(text)
        except ValueError:
            # Never seen from a real engine; our clock minus a margin only costs some duplicate events.
            log.warning("the engine's SystemTime %r is not a time; using the local clock minus 2 s", text)
            return EngineTime(time.time_ns() - 2_000_000_000)


def _close_quietly(events: Any) -> None:
    try:
        events.close()
    except Exception:  # already closed by the engine's side; the stream is over either way
        log.debug("closing the event stream failed", exc_info=True)


# -- the command ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Exit 0 after SIGTERM/SIGINT, 2 on a configuration error, 1 if the daemon's loop failed."""
    del argv  # configured through the environment only
    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        print(f"draas-docker-daemon: configuration error: {error.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        daemon = DockerDaemon(settings)
    except (OSError, sqlite3.Error, SpoolLocked) as error:
        print(f"draas-docker-daemon: DRAAS_SPOOL_PATH={settings.spool_path}: {error}", file=sys.stderr)
        return 2

    signalled = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signalled.is_set():
            # Nothing is lost by leaving now: what is not delivered is in the spool, on disk.
            log.warning("%s again: exiting at once", name)
            os._exit(1)
        signalled.set()
        log.info("%s: stopping (flushing pushes for up to %.1fs)", name, settings.shutdown_flush)
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failure: list[BaseException] = []

    def body() -> None:
        try:
            daemon.run()
        except BaseException as error:  # reported below; the process must still exit
            failure.append(error)
            log.critical("the daemon's loop failed", exc_info=True)

    # The loop runs in a thread so that the main thread is free to take signals at any time.
    worker = threading.Thread(target=body, name="docker-daemon")
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    log.info("stopped: %s", daemon.stats)
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
