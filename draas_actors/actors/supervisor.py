"""The supervisor: creates, routes to, watches and restarts instance actors and the core actors.

Restarts follow OTP's intensity rule: a child may be restarted at most ``max_restarts`` times within
``window`` seconds; past that the supervisor escalates (logs, marks the instance ``Failed``, and makes
``/readyz`` fail) instead of restarting it forever.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import pykka

from ..errors import Conflict
from ..messages import (
    ActorDied,
    CheckChildren,
    Deregister,
    DeregisterInstance,
    GetHealth,
    Health,
    LoadRecord,
    LookupInstance,
    OutOfScope,
    Publish,
    RegisterInstance,
    Rejected,
    Resume,
    Rewatch,
    StatusChanged,
    StatusReport,
    SubmitReports,
)
from ..model import InstanceId, Platform, Status, guess_platform
from ..policy import RestartMode, RestartPolicy
from ..records import InstanceRecord
from ..security import Identity, scope_refusal
from .instance import InstanceActor, InstanceServices
from .refs import CoreRefs
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


# Builds a fresh core actor by name ("store", "bus", "monitor"), watched by the given supervisor.
CoreFactory = Callable[[str, pykka.ActorRef[Any]], pykka.ActorRef[Any]]


class SupervisorActor(WatchedActor):
    kind = "supervisor"

    def __init__(
        self,
        *,
        refs: CoreRefs,
        services: InstanceServices,
        core_factory: CoreFactory,
        settings: SupervisionSettings,
        instance_class: type[InstanceActor] = InstanceActor,
    ) -> None:
        super().__init__(watcher=None, key="supervisor")
        self.instance_class = instance_class  # InstanceActor, or a subclass running on the actor pool
        self.refs = refs
        self.services = services
        self.core_factory = core_factory
        self.settings = settings
        self.instances: dict[str, pykka.ActorRef[Any]] = {}
        self.platforms: dict[str, Platform] = {}  # read only for ids in self.instances
        self.restarts: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.escalated: set[str] = set()
        self.actor_restarts = 0

    def started(self) -> None:
        # Children start in dependency order: the bus reads its first cursor from the store.
        for name in ("store", "bus", "monitor"):
            setattr(self.refs, name, self.core_factory(name, self.actor_ref))
        self.services.scheduler.call_later(self.settings.check_interval, self.actor_ref, CheckChildren())

    def on_receive(self, message: Any) -> Any:
        match message:
            case SubmitReports(reports, scope):
                refused = self._out_of_scope(reports, scope) if scope is not None else None
                return refused or tuple(self._route(report) for report in reports)
            case LookupInstance(instance_id):
                return self.instances.get(instance_id)
            case RegisterInstance(record, start):
                if record.instance_id in self.instances:
                    raise Conflict(f"instance {record.instance_id!r} already exists", field="instanceId")
                self._spawn_instance(record, Resume(control_plane_start=start))
                return record
            case DeregisterInstance(instance_id, stop_workload):
                ref = self.instances.pop(instance_id, None)
                self.platforms.pop(instance_id, None)
                if ref is None:
                    return False
                self.restarts.pop(f"instance:{instance_id}", None)
                self.escalated.discard(f"instance:{instance_id}")
                try:
                    # Asked, not told: once this returns, its DeleteRecord is in the store's inbox.
                    ref.ask(Deregister(stop_workload), timeout=self.settings.ask_timeout)
                except (pykka.ActorDeadError, pykka.Timeout):
                    log.warning("instance %s went away while being deregistered", instance_id)
                return True
            case ActorDied(kind, key, error, pending, urn):
                self._on_death(kind, key, error, pending, urn)
            case CheckChildren():
                self._check_children()
                self.services.scheduler.call_later(self.settings.check_interval, self.actor_ref, CheckChildren())
            case GetHealth():
                core = {name: ref is not None and ref.is_alive() for name, ref in self.refs.core().items()}
                core["supervisor"] = True
                return Health(core, tuple(sorted(self.escalated)), len(self.instances), self.actor_restarts)
            case _:
                return super().on_receive(message)
        return None

    # -- routing ----------------------------------------------------------------------------------

    def _out_of_scope(self, reports: tuple[StatusReport, ...], scope: Identity) -> OutOfScope | None:
        """The first report ``scope`` may not make. Checked here, where the existing instances' platforms are
        known, so that a push is judged and routed in one step (a daemon may not reach another platform's
        instance by naming its own platform)."""
        for index, report in enumerate(reports):
            existing = self.platforms.get(report.instance_id) if report.instance_id in self.instances else None
            refusal = scope_refusal(scope, report.instance_id, report.platform, existing, report.source)
            if refusal is not None:
                return OutOfScope(index, *refusal)
        return None

    def _route(self, report: StatusReport) -> str | Rejected:
        ref = self.instances.get(report.instance_id)
        if ref is None:
            unknown = f"unknown instance {report.instance_id!r}"
            if not self.settings.auto_create:
                return Rejected(f"{unknown} (auto-create is off)", "instanceId", not_found=True)
            if len(self.instances) >= self.settings.auto_create_cap:
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
            ref = self._spawn_instance(record, Resume(control_plane_start=False))
        try:
            ref.tell(report)
        except pykka.ActorDeadError:
            # Its death notice is on the way; hand the report to the replacement.
            self._restart_instance(report.instance_id, "dead on delivery", (report,))
        return ACCEPTED

    def _spawn_instance(self, record: InstanceRecord, *first: Any) -> pykka.ActorRef[Any]:
        ref = self.instance_class.start(record=record, services=self.services, watcher=self.actor_ref)
        self.instances[record.instance_id] = ref
        self.platforms[record.instance_id] = record.platform
        for message in first:
            ref.tell(message)
        return ref

    # -- supervision ------------------------------------------------------------------------------

    def _check_children(self) -> None:
        for name, ref in self.refs.core().items():
            if name != "supervisor" and (ref is None or not ref.is_alive()) and f"core:{name}" not in self.escalated:
                self._on_death("core", name, "found stopped", ())
        for instance_id, ref in list(self.instances.items()):
            if not ref.is_alive():
                self._on_death("instance", instance_id, "found stopped", ())

    def _on_death(self, kind: str, key: str, error: str, pending: tuple[Any, ...], urn: str = "") -> None:
        ref = self.instances.get(key) if kind == "instance" else getattr(self.refs, key, None)
        if ref is None and kind == "instance":
            return  # deregistered
        if ref is not None:
            if urn and ref.actor_urn != urn:
                return  # about an incarnation that has already been replaced
            if not urn and ref.is_alive():
                return
            # A failing on_start reports before pykka marks the actor stopped: let it finish dying.
            ref.actor_stopped.wait(2.0)
        if kind == "instance":
            self._restart_instance(InstanceId(key), error, pending)
        else:
            self._restart_core(key, error, pending)

    def _allow_restart(self, child: str) -> bool:
        now = time.monotonic()
        times = self.restarts[child]
        while times and times[0] <= now - self.settings.window:
            times.popleft()
        if len(times) >= self.settings.max_restarts:
            return False
        times.append(now)
        self.actor_restarts += 1
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
            for instance in self.instances.values():
                _tell_quietly(instance, Rewatch())

    def _restart_instance(self, instance_id: InstanceId, error: str, pending: tuple[Any, ...]) -> None:
        child = f"instance:{instance_id}"
        store = self.refs.store
        record: InstanceRecord | None = (
            store.ask(LoadRecord(instance_id), block=True, timeout=self.settings.ask_timeout) if store else None
        )
        if record is None:
            log.error("instance %s died and has no stored record; dropping it", instance_id)
            self.instances.pop(instance_id, None)
            return
        if not self._allow_restart(child):
            self._escalate_instance(record, error)
            return
        log.error("instance actor %s died (%s); restarting from its stored state", instance_id, error)
        self._spawn_instance(record, Resume(control_plane_start=False), *pending)

    def _escalate_instance(self, record: InstanceRecord, error: str) -> None:
        reason = f"instance actor crashed {self.settings.max_restarts} times within {self.settings.window:.0f}s: {error}"
        log.critical("instance %s: %s", record.instance_id, reason)
        self.escalated.add(f"instance:{record.instance_id}")
        self.instances.pop(record.instance_id, None)
        now = self.services.clock()
        failed = record.replace(
            status=Status.FAILED, status_since=now, updated_at=now, version=record.version + 1, last_reason=reason
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
