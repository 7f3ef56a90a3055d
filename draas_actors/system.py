"""The actor system as one object: starts and stops the actors, and is the only door the HTTP layer uses."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pykka

from .actors.bus import BusActor
from .actors.instance import InstanceActor, InstanceServices
from .actors.pool import ActorRuntime, ActorSettings, tell_inline
from .actors.process_monitor import ProcessMonitorActor
from .actors.refs import CoreRefs, Directory
from .actors.store import SYNCHRONOUS, Durability, Retention, StoreActor, StoreHealth
from .actors.supervisor import ACCEPTED, SupervisionSettings, SupervisorActor
from .commit import Outcome, Receipt, barrier
from .delivery import Subscriptions
from .errors import Conflict, NotFound, Unavailable
from .feed import ChangeFeed, next_changes
from .frozen import fast_replace
from .messages import (
    MAX_REGISTER_BATCH,
    Ask,
    AuditEntry,
    ChangesPage,
    CheckWritable,
    CountInstances,
    DeleteRecord,
    Deregister,
    DeregisterInstance,
    GetHealth,
    GetInstance,
    Health,
    InstanceList,
    ListAudit,
    ListRecords,
    LoadRecord,
    LoadRecords,
    OutOfScope,
    QueryChanges,
    QueryRecent,
    RecordAudit,
    RegisterInstances,
    Rejected,
    RestartInstance,
    RouteReports,
    SetRestartPolicy,
    StartInstance,
    StatusChanged,
    StatusReport,
    StopInstance,
    Subscribe,
    SubscriptionFilter,
)
from .metrics import ACCEPTED as PUSH_ACCEPTED
from .metrics import OUT_OF_SCOPE, REFUSED_TRANSITION, REJECTED, STALE, Metrics
from .model import InstanceId, Platform, Status, StopCause
from .platforms.docker import DockerPlatform, DockerSettings
from .platforms.kubernetes import KubernetesPlatform, KubernetesSettings
from .platforms.process import ProcessPlatform
from .policy import RestartPolicy
from .records import InstanceRecord
from .scheduler import Scheduler
from .security import Identity, scope_refusal
from .storefile import prepare_store
from .streams import StreamSettings, StreamThreads
from .webhooks import WebhookManager, WebhookSettings

log = logging.getLogger(__name__)

R = TypeVar("R")
_OUTCOME_LABELS = {Outcome.APPLIED: PUSH_ACCEPTED, Outcome.STALE: STALE, Outcome.INVALID_TRANSITION: REFUSED_TRANSITION}
ACTIONS: dict[str, Ask[InstanceRecord]] = {
    "start": StartInstance(), "stop": StopInstance(), "restart": RestartInstance()
}


@dataclass(frozen=True, kw_only=True)
class SystemSettings:
    data_dir: Path
    store_path: str | None = None  # default: <data_dir>/draas.sqlite3; ":memory:" for tests
    durability: Durability = Durability.PROCESS_CRASH
    retention: Retention = Retention()
    supervision: SupervisionSettings = SupervisionSettings()
    sweep_interval: float = 5.0
    ask_timeout: float = 5.0
    kubernetes: KubernetesSettings = KubernetesSettings()
    docker: DockerSettings = DockerSettings()
    actors: ActorSettings = ActorSettings()
    webhooks: WebhookSettings = WebhookSettings()
    stream: StreamSettings = StreamSettings()


class ControlPlane:
    def __init__(
        self,
        settings: SystemSettings,
        *,
        clock: Callable[[], float] = time.time,
        processes: ProcessPlatform | None = None,
        docker: DockerPlatform | None = None,
        kubernetes: KubernetesPlatform | None = None,
    ) -> None:
        self.settings = settings
        self.refs = CoreRefs()
        self.metrics = Metrics()  # this plane's own registry: two planes in one process count apart
        self.metrics.zero(
            platforms=(p.value for p in Platform), statuses=(s.value for s in Status),
            reasons=(c.value for c in StopCause), actor_kinds=SupervisorActor.child_kinds,
        )
        self.directory = Directory()  # instance id -> its actor; the supervisor keeps it
        self.scheduler = Scheduler()
        self.subscriptions = Subscriptions()  # hear changes before their commit (run.py's log lines)
        self.feed = ChangeFeed()  # committed changes, for readers that hand out cursors (stream, webhooks)
        # The live streams' threads (streams.py), woken by a commit after a quiet spell.
        self.streams = StreamThreads(settings.stream.max_streams)
        self.feed.listen(self.streams.news)
        self.processes = processes or ProcessPlatform(settings.data_dir / "logs")
        self.docker = docker or DockerPlatform(settings.docker)
        # Its client is made on the first delete, so a control plane without Kubernetes starts and works.
        self.kubernetes = kubernetes or KubernetesPlatform(settings.kubernetes)
        self.services = InstanceServices(
            refs=self.refs, scheduler=self.scheduler, processes=self.processes, docker=self.docker,
            kubernetes=self.kubernetes, clock=clock, metrics=self.metrics,
        )
        self.runtime = ActorRuntime(settings.actors)  # where instance actors run; core actors keep their threads
        self.started_at = 0.0
        self.store_health = StoreHealth()
        self.store_id = ""  # the store's identity (storefile.py), known once start() has checked the store
        # Its delivery threads read the committed feed (never the bus) and end in stop(), after the feed closes.
        self.webhooks = WebhookManager(
            settings.webhooks, read=self.next_changes, head=lambda: self.feed.head, closed=lambda: self.feed.closed,
            count=lambda outcome: self.metrics.webhook_deliveries.labels(outcome).inc(),
        )

    @property
    def store_path(self) -> str:
        return self.settings.store_path or str(self.settings.data_dir / "draas.sqlite3")

    # -- life cycle -------------------------------------------------------------------------------

    def start(
        self,
        configured: Iterable[InstanceRecord] = (),
        subscribers: Iterable[Callable[[StatusChanged], None]] = (),
        *,
        fresh_store: bool = False,
    ) -> None:
        """Check the store (``StoreError`` when it is damaged or missing where one existed, unless
        ``fresh_store``), start the core actors, then one instance actor per stored or configured instance."""
        self.store_id = prepare_store(self.store_path, fresh=fresh_store).store_id
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        supervisor = SupervisorActor.start(
            refs=self.refs,
            directory=self.directory,
            services=self.services,
            core_factory=self._start_core,
            settings=self.settings.supervision,
            instance_class=self.runtime.actor_class(InstanceActor),
            metrics=self.metrics,
        )
        self.refs.supervisor = supervisor
        self._ask(supervisor, GetHealth())  # answered only once its on_start has started the core actors
        for callback in subscribers:  # before any instance starts, so they see every change
            self.subscribe(callback)
        stored = {r.instance_id: r for r in self._ask(self.refs.store, LoadRecords())}
        now = self.services.clock()
        changed: dict[InstanceId, InstanceRecord] = {}  # configured ones, new or differing from what is stored
        for record in configured:
            previous = stored.pop(record.instance_id, None)
            # Configuration owns the spec and policy; the stored record owns what happened at run time, and when
            # the instance was first created (a record stored before createdAt was set for configured ones: now).
            changed[record.instance_id] = (
                previous.replace(
                    process=record.process, restart_policy=record.restart_policy,
                    created_at=previous.created_at or now,
                )
                if previous is not None and previous.platform is record.platform
                else record.replace(created_at=now, status_since=now, updated_at=now)
            )
        # The stored ones as they are stored: their actors save nothing unless they change something.
        for records, as_stored in ((tuple(stored.values()), True), (tuple(changed.values()), False)):
            for first in range(0, len(records), MAX_REGISTER_BATCH):
                batch = records[first:first + MAX_REGISTER_BATCH]
                self._ask(supervisor, RegisterInstances(batch, start=True, stored=as_stored))
        self.webhooks.start(self.store_path, self.store_id, synchronous=SYNCHRONOUS[self.settings.durability])
        self.metrics.compute(instance_counts=self._instance_counts, head_cursor=self._head_cursor)
        self.metrics.compute_webhook_lag(self.webhooks.lags)
        self.started_at = time.time()

    def stop(self, *, stop_processes: bool = False, timeout: float = 10.0) -> None:
        """Stop every actor; managed processes keep running for re-adoption unless asked otherwise."""
        self.feed.close()  # its readers (streams, webhook deliveries) end first
        self.webhooks.stop(timeout)
        self.streams.stop_all(timeout)
        supervisor = self.refs.supervisor
        if stop_processes and supervisor is not None:
            asked: set[str] = set()
            for record in self.list_instances():
                if record.runtime is not None:
                    try:
                        self._ask(self._instance(record.instance_id), StopInstance(shutdown=True))
                        asked.add(record.instance_id)
                    except NotFound:
                        # Escalated: no actor will see it stop, so signal it directly and do not wait for it.
                        grace = record.process.stop_timeout if record.process is not None else timeout
                        self.processes.terminate_later(record.runtime, min(grace, timeout))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(
                r.runtime and r.instance_id in asked for r in self.list_instances()
            ):
                time.sleep(0.05)
        self._stop_actors(timeout)
        self.scheduler.stop()
        self.docker.close()
        self.kubernetes.close()
        self.subscriptions.close_all()

    def _stop_actors(self, timeout: float) -> None:
        """Stop this plane's actors, and no other (another plane may run in the same process): the supervisor first,
        so that nothing is restarted, then the instance actors, then the core actors in the order writes flow
        (monitor, bus, store), each finishing what is already in its inbox."""
        deadline = time.monotonic() + timeout
        supervisor = self.refs.supervisor
        if supervisor is not None:
            supervisor.stop(block=True, timeout=timeout)
        # Asked all at once and then awaited: N actors stop in parallel, not one after the other.
        stopping = [entry.ref.stop(block=False) for entry in self.directory.snapshot().values()]
        for future in stopping:
            _await_stop(future, deadline)
        # Any pooled actor not in the directory any more, then the pool's workers; the core actors, which the
        # instances write to, after them.
        self.runtime.shutdown(max(0.0, deadline - time.monotonic()))
        for name in ("monitor", "bus", "store"):
            ref = getattr(self.refs, name)
            if ref is not None:
                _await_stop(ref.stop(block=False), deadline)

    def _start_core(self, name: str, watcher: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        """The supervisor's factory for its core children (at start-up and after a crash)."""
        s = self.settings
        if name == "store":
            return StoreActor.start(
                path=self.store_path, retention=s.retention, scheduler=self.scheduler, store_id=self.store_id,
                durability=s.durability, health=self.store_health, watcher=watcher, metrics=self.metrics,
                feed=self.feed,
            )
        if name == "bus":
            return BusActor.start(
                refs=self.refs, subscriptions=self.subscriptions, ask_timeout=s.ask_timeout, watcher=watcher,
                metrics=self.metrics,
            )
        if name == "monitor":
            return ProcessMonitorActor.start(
                platform=self.processes, scheduler=self.scheduler, sweep_interval=s.sweep_interval,
                watcher=watcher,
            )
        raise ValueError(name)

    # -- the door the API uses --------------------------------------------------------------------

    def submit(
        self, reports: tuple[StatusReport, ...], scope: Identity | None = None
    ) -> tuple[Outcome | Rejected, ...] | OutOfScope:
        """Route reports to their instance actors and wait until what they caused is committed: one outcome per
        report (what it did, or why it was not taken). With ``scope``, the daemon that pushed them: one report it
        may not make and nothing is routed. ``Unavailable`` (503) when the store cannot commit: nothing of the
        push is acknowledged then, and the pusher sends it again."""
        self._refuse_while_store_fails()
        if scope is not None:
            refused = self._out_of_scope(reports, scope)
            if refused is not None:
                self.metrics.pushed_updates.labels(OUT_OF_SCOPE).inc(len(reports))
                return refused
        receipt = Receipt(len(reports))
        tickets = tuple(
            fast_replace(report, ticket=receipt.ticket(i)) for i, report in enumerate(reports)
        )
        routed = self._route(tickets, scope)
        for index, outcome in enumerate(routed):
            if isinstance(outcome, Rejected):
                receipt.settle(index, None)
        committed = receipt.wait(self.settings.ask_timeout)
        outcomes = tuple(
            outcome if isinstance(outcome, Rejected) else committed[i] or Outcome.APPLIED
            for i, outcome in enumerate(routed)
        )
        self._count_outcomes(outcomes)
        return outcomes

    def _count_outcomes(self, outcomes: tuple[Outcome | Rejected, ...]) -> None:
        counts = {PUSH_ACCEPTED: 0, STALE: 0, REFUSED_TRANSITION: 0, REJECTED: 0}
        for outcome in outcomes:
            counts[_OUTCOME_LABELS.get(outcome, REJECTED) if isinstance(outcome, Outcome) else REJECTED] += 1
        for label, count in counts.items():
            if count:
                self.metrics.pushed_updates.labels(label).inc(count)

    def count_invalid(self, count: int) -> None:
        """Updates refused on their face by the API (an unknown status, a missing field) never reach ``submit``:
        they are counted as rejected too, like the ones the supervisor cannot place."""
        self.metrics.pushed_updates.labels(REJECTED).inc(count)

    def _instance_counts(self) -> list[tuple[str, str, int]]:
        """draas_instances at scrape time: the stored records counted by platform and status, in the store (with
        10,000 instances, decoding every record made one scrape take 300 ms)."""
        return self._ask(self.refs.store, CountInstances())

    def _head_cursor(self) -> int:
        """The newest committed change's cursor: what a list's cursor, a stream's id and a webhook's lag are
        measured against (the store's own head runs ahead of it while the store cannot commit)."""
        return self.feed.head

    def _out_of_scope(self, reports: tuple[StatusReport, ...], scope: Identity) -> OutOfScope | None:
        """The first report ``scope`` may not make, judged against the directory's platforms (a daemon may not
        reach another platform's instance by naming its own platform)."""
        for index, report in enumerate(reports):
            entry = self.directory.get(report.instance_id)
            refusal = scope_refusal(
                scope, report.instance_id, report.platform, entry.platform if entry else None, report.source
            )
            if refusal is not None:
                return OutOfScope(index, *refusal)
        return None

    def _route(self, reports: tuple[StatusReport, ...], scope: Identity | None) -> list[str | Rejected]:
        """Tell each report to its instance actor from this (the caller's) thread. Reports for an unknown instance,
        or for an actor found dead, go to the supervisor in one ``RouteReports``, and so do the later reports for
        the same instance in this push, so that an instance still gets its reports in order."""
        routed: list[str | Rejected] = [ACCEPTED] * len(reports)
        via_supervisor: list[int] = []
        handed_over: set[str] = set()
        for index, report in enumerate(reports):
            entry = None if report.instance_id in handed_over else self.directory.get(report.instance_id)
            if entry is not None:
                try:
                    if report.exit_code is None:
                        # The common report runs on this thread when its actor is idle (pool.tell_inline); an exit
                        # may start a workload under the restart policy, which must not hold an HTTP thread.
                        tell_inline(entry.ref, report)
                    else:
                        entry.ref.tell(report)
                    continue
                except pykka.ActorDeadError:
                    pass
            handed_over.add(report.instance_id)
            via_supervisor.append(index)
        if via_supervisor:
            answers = self._ask(self.refs.supervisor, RouteReports(tuple(reports[i] for i in via_supervisor), scope))
            for index, answer in zip(via_supervisor, answers, strict=True):
                routed[index] = answer
        return routed

    def register(self, record: InstanceRecord) -> InstanceRecord:
        self._refuse_while_store_fails()
        if record.process is not None:
            # A command that cannot run (422 naming process.command), or a PID that is not there (process.pid), is
            # the caller's mistake, not an instance to keep failing.
            self.processes.check_command(record.process)
            if record.process.adopt_pid is not None:
                self.processes.adopt(record.process.adopt_pid)
        now = time.time()
        record = record.replace(created_at=now, status_since=now, updated_at=now)
        self._ask(self.refs.supervisor, RegisterInstances((record,), start=False))
        self._commit(self._instance(record.instance_id))
        return self.get_instance(record.instance_id)

    def deregister(self, instance_id: str, *, stop_workload: bool = True) -> None:
        self._refuse_while_store_fails()
        entry = self.directory.get(instance_id)  # read before the supervisor drops it: its created_at
        ref = self._ask(self.refs.supervisor, DeregisterInstance(InstanceId(instance_id)))
        if ref is None:
            raise NotFound(f"no instance {instance_id!r}", field="instanceId")
        try:
            # Asked, not told: once this returns, its DeleteRecord is in the store's inbox.
            ref.ask(Deregister(stop_workload), timeout=self.settings.ask_timeout)
        except pykka.ActorDeadError:
            # Its actor had died and its replacement was waiting for the record: nobody else deletes it now.
            log.warning("instance %s was deregistered while its actor was being restarted; its workload is left "
                        "as it is", instance_id)
            if entry is not None and entry.ref is ref:
                self._ask(self.refs.store, DeleteRecord(InstanceId(instance_id), entry.created_at))
        except pykka.Timeout:
            log.warning("instance %s did not answer its deregistration in time", instance_id)
        self._commit(self.refs.bus)  # behind the deletion

    def get_instance(self, instance_id: str) -> InstanceRecord:
        try:
            return self._ask(self._instance(instance_id), GetInstance())
        except NotFound:
            # An escalated instance has no actor any more, but its last record explains what happened.
            record = self._ask(self.refs.store, LoadRecord(InstanceId(instance_id)))
            if record is None:
                raise
            return record

    def set_restart_policy(self, instance_id: str, policy: RestartPolicy) -> InstanceRecord:
        return self._write(instance_id, SetRestartPolicy(policy))

    def act(self, instance_id: str, action: str) -> InstanceRecord:
        return self._write(instance_id, ACTIONS[action])

    def _write(self, instance_id: str, command: Ask[InstanceRecord]) -> InstanceRecord:
        """An operator's command to an instance, answered once what it changed is committed."""
        self._refuse_while_store_fails()
        ref = self._instance(instance_id)
        record = self._ask(ref, command)
        self._commit(ref)
        return record

    def _refuse_while_store_fails(self) -> None:
        refusal = self.store_health.refusal()
        if refusal is not None:
            raise refusal

    def _commit(self, through: pykka.ActorRef[Any] | None) -> None:
        """Wait until everything ``through`` (an instance actor, or the bus) has written so far is committed."""
        receipt, sync = barrier()
        if through is None:
            raise Unavailable("no actor to pass the commit barrier")
        try:
            through.tell(sync)
        except pykka.ActorDeadError as error:
            raise Unavailable("the actor went away before its writes were committed; retry") from error
        receipt.wait(self.settings.ask_timeout)

    def output_path(self, instance_id: str, stream: str) -> Path:
        """Where a local process's ``stream`` ("stdout" or "stderr") is written (``ProcessPlatform.log_paths``); 404
        for no such instance, 409 for a container or a pod: their output is their engine's, not a file of ours."""
        record = self.get_instance(instance_id)
        if record.platform is not Platform.PROCESS:
            raise Conflict(
                f"{instance_id!r} is a {record.platform.value} instance: only a local process's output is kept here",
                field="instanceId",
            )
        out, err = self.processes.log_paths(instance_id)
        return out if stream == "stdout" else err

    def list_instances(
        self, *, platform: Platform | None = None, status: Status | None = None
    ) -> list[InstanceRecord]:
        return self.list_instances_at(platform=platform, status=status).records

    def list_instances_at(self, *, platform: Platform | None = None, status: Status | None = None) -> InstanceList:
        """The records and the change-log cursor at which they were read (list-then-watch, see ``InstanceList``)."""
        return self._ask(self.refs.store, ListRecords(platform=platform, status=status))

    def changes(self, after: int, limit: int, store_id: str | None = None) -> ChangesPage:
        return self._ask(self.refs.store, QueryChanges(after, limit, store_id))

    def next_changes(self, cursor: int, limit: int, timeout: float) -> tuple[Sequence[StatusChanged], int]:
        """Committed changes after ``cursor`` (waiting up to ``timeout`` for the first) and the cursor to go on
        from; ``CursorExpired`` when retention pruned what follows ``cursor``. See ``feed.py``."""
        return next_changes(
            self.feed, lambda after, n: self.changes(after, n).changes, cursor, limit, timeout
        )

    def recent_changes(
        self, since: float, statuses: frozenset[Status] | None, limit: int, *, configuration: bool = False,
        instance_id: str | None = None,
    ) -> tuple[StatusChanged, ...]:
        """Changes at or after ``since``, oldest first; with ``statuses``, only moves into them (and configuration
        changes when ``configuration``); with ``instance_id``, only that instance's."""
        return self._ask(self.refs.store, QueryRecent(since, statuses, limit, configuration, instance_id))

    def subscribe(
        self,
        callback: Callable[[StatusChanged], None],
        event_filter: SubscriptionFilter | None = None,
        queue_size: int = 10_000,
    ) -> int:
        return self._ask(self.refs.bus, Subscribe(callback, event_filter or SubscriptionFilter(), queue_size))

    def record_audit(self, entry: AuditEntry) -> bool:
        """Hand a rejected request's entry to the store without waiting; False when no store takes it now."""
        store = self.refs.store
        if store is None:
            return False
        try:
            store.tell(RecordAudit(entry))
        except pykka.ActorDeadError:
            return False
        return True

    def audit_log(self, *, since: float | None = None, limit: int = 100) -> tuple[AuditEntry, ...]:
        """Rejected requests, newest first."""
        return self._ask(self.refs.store, ListAudit(since, limit))

    def health(self) -> Health:
        return self._ask(self.refs.supervisor, GetHealth())

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every core actor is alive, nothing has been escalated, and the store takes writes."""
        try:
            health = self.health()
            store_failure: str | None = self._ask(self.refs.store, CheckWritable())
        except Unavailable as error:
            return False, {"error": error.message}
        ok = all(health.core_alive.values()) and not health.escalated and store_failure is None
        return ok, {
            "actors": dict(health.core_alive),
            "escalated": list(health.escalated),
            "storeWritable": store_failure is None,
            **({"storeError": store_failure} if store_failure is not None else {}),
            "storeId": self.store_id,
            "instances": health.instances,
        }

    def _instance(self, instance_id: str) -> pykka.ActorRef[Any]:
        entry = self.directory.get(instance_id)
        if entry is None:
            raise NotFound(f"no instance {instance_id!r}", field="instanceId")
        return entry.ref

    def _ask(self, ref: pykka.ActorRef[Any] | None, message: Ask[R]) -> R:
        if ref is None:
            raise Unavailable(f"no actor to handle {type(message).__name__}")
        try:
            # The actor answers each Ask with its declared type (its handler's match arm returns it).
            return cast(R, ref.ask(message, timeout=self.settings.ask_timeout))
        except pykka.ActorDeadError as error:
            raise Unavailable(f"{type(message).__name__}: actor is down, retry shortly") from error
        except pykka.Timeout as error:
            raise Unavailable(f"{type(message).__name__}: no answer within {self.settings.ask_timeout}s") from error


def _await_stop(future: pykka.Future[bool], deadline: float) -> None:
    try:
        future.get(timeout=max(0.0, deadline - time.monotonic()))
    except pykka.Timeout:
        log.warning("an actor did not stop in time")


__all__ = ["ControlPlane", "SystemSettings"]
