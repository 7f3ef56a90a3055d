"""The Docker daemon: reports labelled containers' statuses to the control plane.

``python -m daemons.docker_daemon`` (or the console script ``draas-docker-daemon``), configured through the
environment (see ``load_settings`` and ``config/docker-daemon.env.example``). The loop:

1. **resync**: read the engine's clock, then list the labelled containers with the cheap listing (one request,
   no inspect per container) and push, in one batch observed at that clock reading, every instance whose state
   differs from what was last pushed for it, and ``Removed`` for instances reported before whose containers are
   no longer listed;
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

What was last pushed per instance is kept on disk beside the spool, in ``<spool path>.reported``
(``daemons.reported``), and read back at start: with a new file every instance is pushed at the first resync; a
restarted daemon's listing pushes only what changed while it was not running, and ``Removed`` for instances whose
containers were removed meanwhile (from memory alone it could not tell those from containers it never saw). "Changed" is
``same_container_state``: another container, status or exit code. Events are all pushed, each one being news (a
``restart`` after a ``start`` says Running twice, yet it happened).

Every answer's ``storeId`` and a periodic resync refill a control plane that lost its state (``daemons.outbox``).

One instance can move to a new container (``docker compose`` creates the new one before it removes the old one).
While both exist, a listing reports the instance by its newest container. The old one's removal is not ``Removed``:
its ``destroy`` event while another container carries the instance is counted as ``superseded``, and at a resync
only an instance that no listed container carries is gone.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
import urllib3
from opentelemetry import trace

from draas_actors.errors import ConfigError
from draas_actors.model import Status, is_alive

from . import daemon_env
from .daemon_env import Variable
from .docker_mapping import (
    EngineTime,
    Skip,
    map_event,
    map_listing,
    parse_engine_time,
    removed_update,
    same_container_state,
)
from .outbox import Outbox
from .push_client import PushClient, retry_delays
from .reported import note_pushed, take_news
from .runner import run_daemon, usage
from .tracing import default_tracer, event_span
from .updates import StatusUpdate

__all__ = ["DaemonSettings", "DaemonStats", "DockerDaemon", "load_settings", "main"]

log = logging.getLogger("draas.docker_daemon")

DEFAULT_LABEL_FILTER = "draas.managed=true"
DEFAULT_SPOOL_PATH = Path("var/docker-daemon.spool")
VANISHED = "container no longer exists (found at resync)"
# What a broken connection to the engine looks like through the SDK (it does not wrap requests' errors).
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError, OSError)


@dataclass(frozen=True, kw_only=True)
class DaemonSettings(daemon_env.CommonSettings):
    label_filter: tuple[str, ...] = (DEFAULT_LABEL_FILTER,)
    spool_path: Path = DEFAULT_SPOOL_PATH
    engine_timeout: float = 30.0  # for engine requests other than the event stream


def load_settings(environ: Mapping[str, str]) -> DaemonSettings:
    """The only place the daemon reads its environment; raises ConfigError naming the variable."""
    settings = DaemonSettings(
        control_plane_url=daemon_env.control_plane_url(environ),
        api_key=daemon_env.api_key(environ),
        label_filter=_labels(environ.get("DRAAS_LABEL_FILTER", DEFAULT_LABEL_FILTER)),
    )
    return daemon_env.read_common(environ, settings)


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


@dataclass
class DaemonStats:
    """Counters since the daemon was made (read them from any thread; only the daemon's loop writes)."""

    resyncs: int = 0
    listed: int = 0
    events: int = 0
    pushed: int = 0
    ignored_actions: int = 0  # events with an action we do not map (and listed containers in an unknown state)
    # containers without a usable instance id (none, or one the API refuses), each counted (and logged) once
    # however many events and listings show it
    skipped_no_instance_id: int = 0
    vanished: int = 0  # instances reported before (by this run or an earlier one) that no container listed at a
    # resync carries any more, pushed as Removed
    unchanged: int = 0  # instances listed at a resync as they were last reported, so not pushed again
    superseded: int = 0  # destroy of a container whose instance another container has taken over
    reconnects: int = 0
    engine_errors: int = 0


@dataclass(frozen=True)
class _Known:
    instance_id: str
    image: str


@dataclass(frozen=True)
class _Listed:
    """A listed container's update, and what makes it its instance's representative among several."""

    update: StatusUpdate
    created: int  # the listing's ``Created``, epoch seconds

    @property
    def rank(self) -> tuple[int, bool]:
        # The newest container; within one second, a live one (a recreate starts the new before removing the old).
        return self.created, is_alive(self.update.status)


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
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.settings = settings
        self._tracer = tracer or default_tracer()  # a span per engine event
        self._outbox = Outbox(settings, log, push)
        self.push = self._outbox.push
        self.streaming = threading.Event()  # set while the event stream is open (after a resync)
        self._client_factory = client_factory
        self._client: docker.DockerClient | None = None
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # RLock: stop() may run in a signal handler on a thread holding it
        self._events: Any = None  # the open CancellableStream
        self._known: dict[str, _Known] = {}  # container id -> instance, from the last listing and the events since
        self._reported = self._outbox.reported  # instance id -> the last update pushed for it (this run or earlier)
        self._warned: set[str] = set()  # ids of the skipped containers known now: each is counted and logged once
        self._stats = DaemonStats()

    @property
    def stats(self) -> DaemonStats:
        return dataclasses.replace(self._stats)

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> None:
        """Until ``stop``: resync, stream; on a break, back off and do it again. Flushes the pushes at the end."""
        self._outbox.start()
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
            self._outbox.close()

    def resync(self) -> EngineTime:
        """Push what differs from what was last pushed, and Removed for reported instances no container carries.

        Returns the engine time taken before listing: the ``since`` for the event stream.
        """
        client = self._connect()
        since = self._engine_now(client)
        rows = client.api.containers(all=True, filters={"label": list(self.settings.label_filter)})
        listed: dict[str, _Known] = {}
        current: dict[str, _Listed] = {}  # instance id -> its representative container's update
        self._warned &= {str(row.get("Id", "")) for row in rows}  # forget containers gone while we were away
        for row in rows:
            update = map_listing(row, since.seconds)
            if isinstance(update, Skip):
                self._skipped(update, str(row.get("Id", "")), row.get("Names"))
                continue
            listed[update.workload_id] = _Known(update.instance_id, str(update.metadata.get("imageName", "")))
            candidate = _Listed(update, _created(row))
            held = current.get(update.instance_id)
            if held is None or candidate.rank > held.rank:
                current[update.instance_id] = candidate
        gone = [
            removed_update(
                container_id=before.workload_id,
                instance_id=instance_id,
                image=str(before.metadata.get("imageName", "")),
                observed_at=since.seconds,
                reason=VANISHED,
            )
            for instance_id, before in self._reported.items()
            if instance_id not in current
        ]
        changed = [
            entry.update for entry in current.values() if take_news(self._reported, entry.update, same_container_state)
        ]
        for removed in gone:
            note_pushed(self._reported, removed)
        self._known = listed
        self._stats.resyncs += 1
        self._stats.listed += len(rows)
        self._stats.vanished += len(gone)
        self._stats.unchanged += len(current) - len(changed)
        self._push(gone + changed)
        log.info(
            "resync: %d labelled container(s) listed: %d instance(s) changed since last reported, %d unchanged, "
            "%d gone (pushed Removed)", len(rows), len(changed), len(current) - len(changed), len(gone),
        )
        return since

    def stream(self, since: EngineTime) -> None:
        """Map and push events from ``since`` until the stream ends (engine gone, or ``stop``)."""
        client = self._connect()
        # since: "seconds.nanoseconds" text, which the Engine API takes; the stubs know only int and datetime.
        events = client.api.events(  # type: ignore[call-overload]
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
        actor = event.get("Actor") or {}
        container_id = str(actor.get("ID") or "")
        attributes = {"docker.event.action": str(event.get("Action") or ""), "container.id": container_id}
        with event_span(self._tracer, "docker event", attributes):
            self._handle_event(event, actor, container_id)

    def _handle_event(self, event: Mapping[str, Any], actor: Mapping[str, Any], container_id: str) -> None:
        self._stats.events += 1
        update = map_event(event)
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
        note_pushed(self._reported, update)
        self._push([update])

    def _skipped(self, reason: Skip, container_id: str, name: Any) -> None:
        if reason in (Skip.NO_INSTANCE_ID, Skip.INVALID_INSTANCE_ID):
            if container_id not in self._warned:
                self._warned.add(container_id)
                self._stats.skipped_no_instance_id += 1
                log.warning("container %s (%s) matches %s but has %s; skipped",
                            container_id[:12], name, ",".join(self.settings.label_filter), reason.value)
        else:
            self._stats.ignored_actions += 1

    def _push(self, updates: list[StatusUpdate]) -> None:
        self._outbox.send(updates)
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


def _created(row: Mapping[str, Any]) -> int:
    created = row.get("Created")
    return created if isinstance(created, int) and not isinstance(created, bool) else 0


def _close_quietly(events: Any) -> None:
    try:
        events.close()
    except Exception:  # already closed by the engine's side; the stream is over either way
        log.debug("closing the event stream failed", exc_info=True)


# -- the command ------------------------------------------------------------------------------------


VARIABLES = (
    Variable("DRAAS_LABEL_FILTER", "labels a container must have to be reported (key=value or key, comma-separated); "
             "each also needs draas.instanceId", "label_filter"),
    Variable("DOCKER_HOST", "the engine's API (default: the local socket); with DOCKER_TLS_VERIFY, DOCKER_CERT_PATH"),
)
HELP = usage(
    "draas-docker-daemon",
    "Reports the statuses of labelled Docker containers to the draas control plane: lists them, then follows the "
    "engine's events.",
    DaemonSettings,
    VARIABLES,
)


def main(argv: list[str] | None = None) -> int:
    """Exit 0 after SIGTERM/SIGINT and for --help, 2 on a configuration error, 1 if the daemon's loop failed."""
    arguments = sys.argv[1:] if argv is None else argv
    return run_daemon("draas-docker-daemon", load_settings, DockerDaemon, argv=arguments, help_text=HELP)


if __name__ == "__main__":
    sys.exit(main())
