"""Messages between actors: frozen dataclasses only.

Commands are told or asked; events are published. Every field an actor needs travels in the message,
so no actor reaches into another's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pykka

from .commit import Ack, Ticket
from .model import ChangeKind, InstanceId, Platform, Status
from .policy import RestartPolicy
from .records import InstanceRecord
from .security import Identity

R_co = TypeVar("R_co", covariant=True)


class Ask(Generic[R_co]):
    """A message that is asked, not told, and answered with an ``R_co``: ``ControlPlane._ask`` takes its answer's type
    from the message, so a caller's use of the answer is checked (mypy --strict) without a cast at each call."""

    __slots__ = ()


# -- status reports and events --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StatusReport:
    """One observation of an instance's status, from a monitor or a daemon."""

    instance_id: InstanceId
    status: Status
    source: str
    observed_at: float  # epoch seconds at the source
    metadata: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None  # used only when the report creates the instance
    # Facts the wire format carries in metadata, typed once by the parser (``wire.py``) so that no actor parses text:
    # the exit code of an exit report, and the workload it is about ("<namespace>/<podName>" or a container id).
    exit_code: int | None = None
    workload_id: str | None = None
    # CONFIGURATION: upstream's ConfigurationChanged, recorded as a change without touching the lifecycle status;
    # ``status`` is then not read (the parser sets UNKNOWN).
    kind: ChangeKind = ChangeKind.STATUS
    # The pusher's claim on the answer: settled with the report's outcome once what it caused is committed.
    ticket: Ticket | None = None
    # The push's W3C traceparent (version 00, validated by the parser): the changes this report causes keep it.
    traceparent: str | None = None


@dataclass(frozen=True, kw_only=True)
class StatusChanged:
    """Published by the bus for every real status change and every configuration change; ``cursor`` is its place in
    the change log. A CONFIGURATION change leaves the status as it was: ``old_status == new_status``."""

    instance_id: InstanceId
    platform: Platform
    old_status: Status
    new_status: Status
    source: str
    timestamp: float
    metadata: Mapping[str, str]
    cursor: int = 0
    kind: ChangeKind = ChangeKind.STATUS
    # The W3C traceparent of the push that caused the change; None for one no push caused (a local process's exit,
    # a timed restart, an operator's action).
    traceparent: str | None = None


@dataclass(frozen=True)
class WorkloadMessage:
    """A message only an instance's workload (``workloads/``) reads: the instance actor hands it on unopened."""


@dataclass(frozen=True)
class ProcessExited(WorkloadMessage):
    instance_id: InstanceId
    pid: int
    exit_code: int | None  # None when the process was not our child
    observed_at: float
    reason: str


# -- instance actor commands -----------------------------------------------------------------------


@dataclass(frozen=True)
class StartInstance(Ask[InstanceRecord]):
    pass


@dataclass(frozen=True)
class StopInstance(Ask[InstanceRecord]):
    # A stop for the control plane's own shutdown is not an operator's: the next start brings it back.
    shutdown: bool = False


@dataclass(frozen=True)
class RestartInstance(Ask[InstanceRecord]):
    pass


@dataclass(frozen=True)
class GetInstance(Ask[InstanceRecord]):
    pass


@dataclass(frozen=True)
class SetRestartPolicy(Ask[InstanceRecord]):
    policy: RestartPolicy


@dataclass(frozen=True)
class PlatformActionFailed:
    """A Docker (or Kubernetes) action that ran off the actor's thread failed."""

    action: str
    error: str
    retryable: bool = True  # False for a refusal (403...) that repeating the action cannot change


@dataclass(frozen=True)
class RestartDue:
    token: int  # only the restart that was scheduled last may fire


@dataclass(frozen=True)
class ReplacementDue(WorkloadMessage):
    """The grace after the pod deleted for a restart was gone: if nothing replaced it, nothing will."""

    pod: str  # "<namespace>/<name>"


@dataclass(frozen=True)
class KillIfAlive(WorkloadMessage):
    """The stop timeout passed: SIGKILL the process if it is still the one we asked to stop."""

    pid: int
    create_time: float


@dataclass(frozen=True)
class Rewatch(WorkloadMessage):
    """The process monitor was restarted: register our PID with it again."""


@dataclass(frozen=True)
class Deregister:
    stop_workload: bool


@dataclass(frozen=True)
class Resume:
    """Sent once after start-up from stored state: re-adopt or start per policy.

    ``stored``: the actor's record is the one the store holds, so a resume that changes nothing writes nothing (at a
    control-plane start with 50,000 stored instances, those saves were 50,000 store writes and most of its work)."""

    control_plane_start: bool
    stored: bool = False


# -- supervisor -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterInstances(Ask[None]):
    """Start an actor for each record (at most ``MAX_REGISTER_BATCH``): at start-up for the stored instances, and
    for one new instance from the API. A ``Conflict`` for an id that already has one, and then none is started."""

    records: tuple[InstanceRecord, ...]
    start: bool = True
    stored: bool = False  # each record is as the store holds it (``Resume.stored``)


MAX_REGISTER_BATCH = 1_000  # records per RegisterInstances: keeps the supervisor's other work waiting briefly


@dataclass(frozen=True)
class DeregisterInstance(Ask["pykka.ActorRef[Any] | None"]):
    """Answered with the instance's actor ref, now out of the directory (the caller tells it to ``Deregister``), or
    None when there is no such instance."""

    instance_id: InstanceId


@dataclass(frozen=True)
class RouteReports(Ask["tuple[str | Rejected, ...]"]):
    """Reports the pushing thread could not deliver itself: for an unknown instance (auto-create), or for one whose
    actor it found dead. Answered with one ``ACCEPTED`` or ``Rejected`` per report. ``scope``: the pushing daemon,
    checked again for an instance that another push created after this push's scope check."""

    reports: tuple[StatusReport, ...]
    scope: Identity | None = None


@dataclass(frozen=True)
class OutOfScope:
    """A pushed report its daemon may not make: none of the push was routed."""

    index: int  # in the push
    field: str  # "instanceId" or "platform"
    message: str


@dataclass(frozen=True)
class Rejected:
    """Why the supervisor did not route a report; ``not_found`` separates 404 from 422."""

    message: str
    field: str
    not_found: bool = False


@dataclass(frozen=True)
class ActorDied:
    """Death notice from a watched actor; ``pending`` holds the tells it had not handled yet."""

    kind: str
    key: str
    error: str
    pending: tuple[Any, ...] = ()
    urn: str = ""  # which incarnation died; empty when the supervisor found it stopped itself


@dataclass(frozen=True)
class CheckChildren:
    pass


@dataclass(frozen=True)
class GetHealth(Ask["Health"]):
    pass


@dataclass(frozen=True)
class Health:
    core_alive: Mapping[str, bool]
    escalated: tuple[str, ...]
    instances: int
    actor_restarts: int = 0  # of any child, since the supervisor started


# -- status bus -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Publish:
    """From an instance actor: a status change (cursor not yet assigned) and the record to persist."""

    change: StatusChanged | None
    record: InstanceRecord
    ack: Ack | None = None  # settled by the store once this and every write before it are committed


@dataclass(frozen=True, kw_only=True)
class SubscriptionFilter:
    instance_ids: frozenset[str] | None = None
    platforms: frozenset[Platform] | None = None
    statuses: frozenset[Status] | None = None  # moves into these statuses: a configuration change is no such move
    kinds: frozenset[ChangeKind] | None = None

    def matches(self, event: StatusChanged) -> bool:
        return (
            (self.instance_ids is None or event.instance_id in self.instance_ids)
            and (self.platforms is None or event.platform in self.platforms)
            and (
                self.statuses is None or (event.kind is ChangeKind.STATUS and event.new_status in self.statuses)
            )
            and (self.kinds is None or event.kind in self.kinds)
        )


@dataclass(frozen=True)
class Subscribe(Ask[int]):
    callback: Callable[[StatusChanged], None]
    filter: SubscriptionFilter = SubscriptionFilter()
    queue_size: int = 10_000


# -- runtime store ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveRecord:
    record: InstanceRecord
    ack: Ack | None = None  # settled by the store once this and every write before it are committed
    change: StatusChanged | None = None  # the bus's: the change (with its cursor) that made this record, appended
    # to the change log in the same message, one hand-off to the store per change instead of two


@dataclass(frozen=True)
class AppendChange:
    change: StatusChanged


@dataclass(frozen=True)
class DeleteRecord(Ask[None]):
    instance_id: InstanceId
    created_at: float  # the deleted instance's: its saves still on the way (through the bus) are ignored, and a
    # new instance of the same id (created later) is kept


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class LoadRecords(Ask[list[InstanceRecord]]):
    pass


@dataclass(frozen=True)
class LoadRecord(Ask["InstanceRecord | None"]):
    """Asked (answered with the record or None), or told with ``reply_to``: then answered with ``RecordLoaded``,
    so that the supervisor never waits on the store."""

    instance_id: InstanceId
    reply_to: pykka.ActorRef[Any] | None = None


@dataclass(frozen=True)
class RecordLoaded:
    instance_id: InstanceId
    record: InstanceRecord | None


@dataclass(frozen=True, kw_only=True)
class ListRecords(Ask["InstanceList"]):
    platform: Platform | None = None
    status: Status | None = None


@dataclass(frozen=True)
class InstanceList:
    """The records, and the cursor of the newest change committed when they were read: both are read in one turn of
    the store after its flush, so every change up to ``cursor`` is in ``records`` and a client that lists, then
    follows the change log from ``cursor`` misses nothing (list-then-watch)."""

    records: list[InstanceRecord]
    cursor: int


@dataclass(frozen=True)
class QueryChanges(Ask["ChangesPage"]):
    after: int
    limit: int
    store_id: str | None = None  # the store the caller's cursor is from; another one is a 409


@dataclass(frozen=True)
class ChangesPage:
    changes: tuple[StatusChanged, ...]
    next_cursor: int
    store_id: str


@dataclass(frozen=True)
class QueryRecent(Ask["tuple[StatusChanged, ...]"]):
    since: float
    statuses: frozenset[Status] | None  # status changes into these (and no configuration change); None: every change
    limit: int
    configuration: bool = False  # with ``statuses``: configuration changes too
    instance_id: str | None = None  # only this instance's changes (the dashboard's timeline); None: every instance's


@dataclass(frozen=True)
class LastCursor(Ask[int]):
    pass


@dataclass(frozen=True)
class CheckWritable(Ask["str | None"]):
    pass


# -- audit of rejected requests ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """A rejected request, or ``count`` alike ones folded into the second that began at ``time``.

    ``route`` is the URI template (never the path's values or the query string); ``reason`` the error's title
    and description (the first one's, when folded), which never hold a key.
    """

    time: float
    identity: str | None  # None when no identity was established (401, or a limit checked before auth)
    client: str
    method: str
    route: str
    status: int
    reason: str
    count: int = 1


@dataclass(frozen=True)
class RecordAudit:
    """Told, never asked: a folded repeat carries the same ``time`` as its first and a higher ``count``."""

    entry: AuditEntry


@dataclass(frozen=True)
class ListAudit(Ask["tuple[AuditEntry, ...]"]):
    since: float | None
    limit: int


# -- process monitor --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchProcess:
    instance_id: InstanceId
    pid: int
    create_time: float
    owner: pykka.ActorRef[Any]  # the instance actor to tell when the process ends


@dataclass(frozen=True)
class UnwatchProcess:
    instance_id: InstanceId
    pid: int


@dataclass(frozen=True)
class PidfdReady:
    """From the selector thread: the pidfd of this watch became readable, i.e. the process ended."""

    token: int


@dataclass(frozen=True)
class Sweep:
    pass
