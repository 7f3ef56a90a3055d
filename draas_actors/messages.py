"""Messages between actors: frozen dataclasses only.

Commands are told or asked; events are published. Every field an actor needs travels in the message,
so no actor reaches into another's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pykka

from .commit import Ack, Ticket
from .model import ChangeKind, InstanceId, Platform, Status
from .policy import RestartPolicy
from .records import InstanceRecord
from .security import Identity

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
    # CONFIGURATION: upstream's ConfigurationChanged, recorded as a change without touching the lifecycle status;
    # ``status`` is then not read (the parser sets UNKNOWN).
    kind: ChangeKind = ChangeKind.STATUS
    # The pusher's claim on the answer: settled with the report's outcome once what it caused is committed.
    ticket: Ticket | None = None


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


@dataclass(frozen=True)
class ProcessExited:
    instance_id: InstanceId
    pid: int
    exit_code: int | None  # None when the process was not our child
    observed_at: float
    reason: str


# -- instance actor commands -----------------------------------------------------------------------


@dataclass(frozen=True)
class StartInstance:
    pass


@dataclass(frozen=True)
class StopInstance:
    # A stop for the control plane's own shutdown is not an operator's: the next start brings it back.
    shutdown: bool = False


@dataclass(frozen=True)
class RestartInstance:
    pass


@dataclass(frozen=True)
class GetInstance:
    pass


@dataclass(frozen=True)
class SetRestartPolicy:
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
class ReplacementDue:
    """The grace after the pod deleted for a restart was gone: if nothing replaced it, nothing will."""

    pod: str  # "<namespace>/<name>"


@dataclass(frozen=True)
class KillIfAlive:
    """The stop timeout passed: SIGKILL the process if it is still the one we asked to stop."""

    pid: int
    create_time: float


@dataclass(frozen=True)
class Rewatch:
    """The process monitor was restarted: register our PID with it again."""


@dataclass(frozen=True)
class Deregister:
    stop_workload: bool


@dataclass(frozen=True)
class Resume:
    """Sent once after start-up from stored state: re-adopt or start per policy."""

    control_plane_start: bool


# -- supervisor -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterInstance:
    record: InstanceRecord
    start: bool = True


@dataclass(frozen=True)
class DeregisterInstance:
    instance_id: InstanceId
    stop_workload: bool = True


@dataclass(frozen=True)
class SubmitReports:
    """Route these reports; with ``scope`` (the pushing daemon), first check that it may make every one of them."""

    reports: tuple[StatusReport, ...]
    scope: Identity | None = None


@dataclass(frozen=True)
class OutOfScope:
    """The answer to a ``SubmitReports`` with a report its daemon may not make: none of them was routed."""

    index: int  # in SubmitReports.reports
    field: str  # "instanceId" or "platform"
    message: str


@dataclass(frozen=True)
class Rejected:
    """Why the supervisor did not route a report; ``not_found`` separates 404 from 422."""

    message: str
    field: str
    not_found: bool = False


@dataclass(frozen=True)
class LookupInstance:
    instance_id: InstanceId


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
class GetHealth:
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
class Subscribe:
    callback: Callable[[StatusChanged], None]
    filter: SubscriptionFilter = SubscriptionFilter()
    queue_size: int = 10_000


# -- runtime store ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaveRecord:
    record: InstanceRecord
    ack: Ack | None = None  # settled by the store once this and every write before it are committed


@dataclass(frozen=True)
class AppendChange:
    change: StatusChanged


@dataclass(frozen=True)
class DeleteRecord:
    instance_id: InstanceId
    created_at: float  # the deleted instance's: its saves still on the way (through the bus) are ignored, and a
    # new instance of the same id (created later) is kept


@dataclass(frozen=True)
class Flush:
    pass


@dataclass(frozen=True)
class LoadRecords:
    pass


@dataclass(frozen=True)
class LoadRecord:
    instance_id: InstanceId


@dataclass(frozen=True, kw_only=True)
class ListRecords:
    platform: Platform | None = None
    status: Status | None = None


@dataclass(frozen=True)
class QueryChanges:
    after: int
    limit: int
    store_id: str | None = None  # the store the caller's cursor is from; another one is a 409


@dataclass(frozen=True)
class ChangesPage:
    changes: tuple[StatusChanged, ...]
    next_cursor: int
    store_id: str


@dataclass(frozen=True)
class QueryRecent:
    since: float
    statuses: frozenset[Status] | None  # status changes into these (and no configuration change); None: every change
    limit: int
    configuration: bool = False  # with ``statuses``: configuration changes too


@dataclass(frozen=True)
class LastCursor:
    pass


@dataclass(frozen=True)
class CheckWritable:
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
class ListAudit:
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
