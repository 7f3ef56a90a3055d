"""The supervisor: creates, watches and restarts instance actors and the core actors.

It is off the push path: pushes reach instance actors through the ``Directory`` it keeps, and only reports for an
unknown instance (auto-create) or for an actor found dead come here. It never waits on another actor: a restarted
instance actor's record comes back from the store as a ``RecordLoaded`` message, so one instance's restart delays
no other instance.

Restarts follow OTP's intensity rule: a child may be restarted at most ``max_restarts`` times within
``window`` seconds; past that the supervisor escalates (logs, marks the instance ``Failed``, and makes
``/readyz`` fail) instead of restarting it forever.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from ..errors import Conflict
from ..messages import (
    MAX_REGISTER_BATCH,
    ActorDied,
    CheckChildren,
    DeregisterInstance,
    GetHealth,
    Health,
    LoadRecord,
    Publish,
    RecordLoaded,
    RegisterInstances,
    Rejected,
    Resume,
    Rewatch,
    RouteReports,
    StatusChanged,
    StatusReport,
)
from ..metrics import Metrics
from ..model import InstanceId, Status, StopCause, guess_platform
from ..policy import RestartMode, RestartPolicy
from ..records import InstanceRecord
from ..security import Identity, scope_refusal
from .instance import InstanceActor, InstanceServices
from .pool import PooledActor
from .refs import CoreRefs, Directory, Entry
from .watched import WatchedActor

log = logging.getLogger(__name__)

ACCEPTED = "accepted"


@dataclass(frozen=True, kw_only=True)
class SupervisionSettings:
    max_restarts: int = 5
    window: float = 60.0
    check_interval: float = 1.0
    auto_create: bool = True
    auto_create_cap: int = 10_000
    ask_timeout: float = 5.0


# The core children, in the order they start: the bus reads its first cursor from the store.
CORE_CHILDREN = ("store", "bus", "monitor")
# Builds a fresh core actor by name (one of CORE_CHILDREN), watched by the given supervisor.
CoreFactory = Callable[[str, pykka.ActorRef[Any]], pykka.ActorRef[Any]]


@dataclass
class _Restart:
    """An instance actor waiting for its record to be loaded; the reports for it queue here meanwhile."""

    urn: str  # the incarnation that died ("" when it never had one we know of)
    error: str
    pending: list[Any] = field(default_factory=list)
    asked_at: float = 0.0  # monotonic: when LoadRecord was last sent (sent again if no answer comes)


class SupervisorActor(WatchedActor):
    kind = "supervisor"
    # The kinds of child it counts deaths and restarts of (draas_actor_deaths_total and _restarts_total).
    child_kinds = ("instance", *CORE_CHILDREN)

    def __init__(
        self,
        *,
        refs: CoreRefs,
        directory: Directory,
        services: InstanceServices,
        core_factory: CoreFactory,
        settings: SupervisionSettings,
        instance_class: type[InstanceActor] = InstanceActor,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(watcher=None, key="supervisor")
        self.instance_class = instance_class  # InstanceActor, or a subclass running on the actor pool
        self.refs = refs
        self.directory = directory  # written only here
        self.services = services
        self.core_factory = core_factory
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.restarting: dict[str, _Restart] = {}  # ids in the directory whose actor is dead and being replaced
        self.restarts: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.escalated: set[str] = set()
        self.actor_restarts = 0

    def started(self) -> None:
        for name in CORE_CHILDREN:
            setattr(self.refs, name, self.core_factory(name, self.actor_ref))
        self.services.scheduler.call_later(self.settings.check_interval, self.actor_ref, CheckChildren())

    def on_receive(self, message: Any) -> Any:
        match message:
            case RouteReports(reports, scope):
                return tuple(self._route(report, scope) for report in reports)
            case RegisterInstances(records, start, stored):
                self._register(records, start, stored)
            case DeregisterInstance(instance_id):
                return self._deregister(instance_id)
            case RecordLoaded(instance_id, record):
                self._on_record_loaded(instance_id, record)
            case ActorDied(kind, key, error, pending, urn):
                self._on_death(kind, key, error, pending, urn)
            case CheckChildren():
                self._check_children()
                self.services.scheduler.call_later(self.settings.check_interval, self.actor_ref, CheckChildren())
            case GetHealth():
                core = {name: ref is not None and ref.is_alive() for name, ref in self.refs.core().items()}
                core["supervisor"] = True
                return Health(core, tuple(sorted(self.escalated)), len(self.directory), self.actor_restarts)
            case _:
                return super().on_receive(message)
        return None

    # -- registration and routing -----------------------------------------------------------------

    def _register(self, records: tuple[InstanceRecord, ...], start: bool, stored: bool) -> None:
        if len(records) > MAX_REGISTER_BATCH:
            raise ValueError(f"at most {MAX_REGISTER_BATCH} records per RegisterInstances, not {len(records)}")
        for record in records:  # all or none
            if record.instance_id in self.directory:
                raise Conflict(f"instance {record.instance_id!r} already exists", field="instanceId")
        for record in records:
            self._spawn_instance(record, Resume(control_plane_start=start, stored=stored))

    def _deregister(self, instance_id: InstanceId) -> pykka.ActorRef[Any] | None:
        entry = self.directory.pop(instance_id)
        self.restarting.pop(instance_id, None)  # a replacement that was on its way is not wanted any more
        self.restarts.pop(f"instance:{instance_id}", None)
        self.escalated.discard(f"instance:{instance_id}")
        return entry.ref if entry is not None else None

    def _route(self, report: StatusReport, scope: Identity | None) -> str | Rejected:
        entry = self.directory.get(report.instance_id)
        if scope is not None and entry is not None:
            refusal = scope_refusal(scope, report.instance_id, report.platform, entry.platform, report.source)
            if refusal is not None:
                return Rejected(refusal[1], refusal[0])  # created since the push was checked, on another platform
        restart = self.restarting.get(report.instance_id)
        if restart is not None:
            restart.pending.append(report)  # in arrival order, behind what the dead actor still held
            return ACCEPTED
        if entry is None:
            return self._auto_create(report)
        try:
            entry.ref.tell(report)
        except pykka.ActorDeadError:
            # Its death notice may still be on the way; hand the report to the replacement.
            self._begin_restart(report.instance_id, entry.ref.actor_urn, "dead on delivery", (report,))
        return ACCEPTED

    def _auto_create(self, report: StatusReport) -> str | Rejected:
        unknown = f"unknown instance {report.instance_id!r}"
        if not self.settings.auto_create:
            return Rejected(f"{unknown} (auto-create is off)", "instanceId", not_found=True)
        if len(self.directory) >= self.settings.auto_create_cap:
            return Rejected(f"{unknown}: auto-create cap reached", "instanceId", not_found=True)
        platform = report.platform or guess_platform(report.source)
        if platform is None:
            return Rejected(f"{unknown}: give its platform to create it", "platform")
        now = self.services.clock()
        record = InstanceRecord(
            instance_id=report.instance_id,
            platform=platform,
            # Observed, not managed: nobody asked us to restart it (PUT .../restart-policy does).
            restart_policy=RestartPolicy(mode=RestartMode.NEVER),
            status=Status.UNKNOWN,
            created_at=now,
            status_since=now,
        )
        self._spawn_instance(record, Resume(control_plane_start=False), report)
        return ACCEPTED

    def _spawn_instance(self, record: InstanceRecord, *first: Any) -> pykka.ActorRef[Any]:
        ref = start_unregistered(self.instance_class, record=record, services=self.services, watcher=self.actor_ref)
        # Told before the ref is published: a push that finds it in the directory queues behind these.
        for message in first:
            ref.tell(message)
        self.directory.put(record.instance_id, Entry(ref, record.platform, record.created_at))
        return ref

    # -- supervision ------------------------------------------------------------------------------

    def _check_children(self) -> None:
        for name, ref in self.refs.core().items():
            if name != "supervisor" and (ref is None or not ref.is_alive()) and f"core:{name}" not in self.escalated:
                self._on_death("core", name, "found stopped", ())
        for instance_id, entry in self.directory.snapshot().items():
            if instance_id not in self.restarting and not entry.ref.is_alive():
                self._on_death("instance", instance_id, "found stopped", ())
        # A LoadRecord lost with a crashed store is sent again (bounded: one per restart per interval).
        now = time.monotonic()
        for instance_id, restart in self.restarting.items():
            if now - restart.asked_at >= self.settings.ask_timeout:
                self._load(InstanceId(instance_id), restart)

    def _on_death(self, kind: str, key: str, error: str, pending: tuple[Any, ...], urn: str = "") -> None:
        self._count_death(kind, key, urn)
        if kind == "instance":
            entry = self.directory.get(key)
            if entry is None:
                return  # deregistered
            if urn and entry.ref.actor_urn != urn:
                return  # about an incarnation that has already been replaced
            if not urn and entry.ref.is_alive():
                return
            self._begin_restart(InstanceId(key), entry.ref.actor_urn, error, pending)
            return
        ref = getattr(self.refs, key, None)
        if ref is not None:
            if urn and ref.actor_urn != urn:
                return
            if not urn and ref.is_alive():
                return
        self._restart_core(key, error, pending)

    def _count_death(self, kind: str, key: str, urn: str) -> None:
        """One death counted once: a report of a death already handled (another incarnation, or the check's
        second look at an actor being replaced) is not a new one."""
        if kind == "instance":
            entry = self.directory.get(key)
            if entry is None or (urn and entry.ref.actor_urn != urn) or (not urn and entry.ref.is_alive()):
                return
            if key in self.restarting and self.restarting[key].urn == entry.ref.actor_urn:
                return
        else:
            ref = getattr(self.refs, key, None)
            if ref is not None and ((urn and ref.actor_urn != urn) or (not urn and ref.is_alive())):
                return
        self.metrics.actor_deaths.labels("instance" if kind == "instance" else key).inc()

    def _allow_restart(self, child: str) -> bool:
        now = time.monotonic()
        times = self.restarts[child]
        while times and times[0] <= now - self.settings.window:
            times.popleft()
        if len(times) >= self.settings.max_restarts:
            return False
        times.append(now)
        self.actor_restarts += 1
        self.metrics.actor_restarts.labels(child.split(":", 1)[0] if child.startswith("instance:") else
                                           child.split(":", 1)[1]).inc()
        return True

    def _restart_core(self, name: str, error: str, pending: tuple[Any, ...]) -> None:
        child = f"core:{name}"
        if not self._allow_restart(child):
            log.critical("%s actor died %d times within %.0fs; giving up: %s", name,
                         self.settings.max_restarts, self.settings.window, error)
            self.escalated.add(child)
            return
        log.error("%s actor died (%s); restarting", name, error)
        ref = self.core_factory(name, self.actor_ref)
        setattr(self.refs, name, ref)
        for message in pending:
            _tell_quietly(ref, message)
        if name == "monitor":
            for entry in self.directory.snapshot().values():
                _tell_quietly(entry.ref, Rewatch())

    def _begin_restart(self, instance_id: InstanceId, urn: str, error: str, pending: tuple[Any, ...]) -> None:
        """Ask the store for the instance's record; the actor is replaced when ``RecordLoaded`` comes back."""
        restart = self.restarting.get(instance_id)
        if restart is not None:
            if urn == restart.urn:
                # The dead actor's own inbox was told before the reports that found it dead: those go first.
                restart.pending[:0] = pending
            return
        restart = _Restart(urn, error, list(pending))
        self.restarting[instance_id] = restart
        self._load(instance_id, restart)

    def _load(self, instance_id: InstanceId, restart: _Restart) -> None:
        restart.asked_at = time.monotonic()
        store = self.refs.store
        try:
            if store is None:
                raise pykka.ActorDeadError("store")
            store.tell(LoadRecord(instance_id, reply_to=self.actor_ref))
        except pykka.ActorDeadError:
            log.warning("instance %s waits for the store to come back to be restarted", instance_id)

    def _on_record_loaded(self, instance_id: InstanceId, record: InstanceRecord | None) -> None:
        restart = self.restarting.pop(instance_id, None)
        if restart is None:
            return  # deregistered meanwhile, or an answer to a LoadRecord sent twice
        if record is None:
            log.error("instance %s died and has no stored record; dropping it", instance_id)
            self.directory.pop(instance_id)
            return
        if not self._allow_restart(f"instance:{instance_id}"):
            self._escalate_instance(record, restart.error)
            return
        log.error("instance actor %s died (%s); restarting from its stored state", instance_id, restart.error)
        self._spawn_instance(record, Resume(control_plane_start=False), *restart.pending)

    def _escalate_instance(self, record: InstanceRecord, error: str) -> None:
        limit = f"{self.settings.max_restarts} times within {self.settings.window:.0f}s"
        reason = f"instance actor crashed {limit}: {error}"
        log.critical("instance %s: %s", record.instance_id, reason)
        self.escalated.add(f"instance:{record.instance_id}")
        self.directory.pop(record.instance_id)
        now = self.services.clock()
        failed = record.replace(
            status=Status.FAILED, status_since=now, updated_at=now, version=record.version + 1, last_reason=reason,
            last_stop_cause=StopCause.ESCALATED,
        )
        change = StatusChanged(
            instance_id=record.instance_id, platform=record.platform, old_status=record.status,
            new_status=Status.FAILED, source="supervisor", timestamp=now, metadata={"reason": reason},
        )
        if self.refs.bus is not None:
            _tell_quietly(self.refs.bus, Publish(change=change if record.status is not Status.FAILED else None,
                                                 record=failed))


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.warning("could not deliver %s: actor is gone", type(message).__name__)


def start_unregistered(actor_class: type[pykka.Actor], **kwargs: Any) -> pykka.ActorRef[Any]:
    """``actor_class.start(**kwargs)`` without pykka's ``ActorRegistry``: instance actors are found through the
    ``Directory``, and the registry's list makes stopping N registered actors cost O(N^2) (each stop removes
    itself from the list). The control plane stops them itself (``ControlPlane._stop_actors``)."""
    if issubclass(actor_class, PooledActor):
        return actor_class.start(**kwargs)  # registers with its pool, which the control plane shuts down
    actor = actor_class(**kwargs)
    actor._start_actor_loop()
    return actor.actor_ref
