"""Resources: parse, delegate to the control plane, render. No logic of their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import falcon
from opentelemetry import trace

from ..commit import Outcome
from ..errors import InvalidInput, MalformedInput, NotFound
from ..messages import AuditEntry, OutOfScope, Rejected, StatusReport
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..metrics import Metrics
from ..model import Platform, Status, is_configuration_changed, parse_status
from ..security import DAEMON, Identity, LimitSettings, scope_refusal
from ..system import ControlPlane
from ..tracecontext import DESCRIPTION as TRACEPARENT_DESCRIPTION
from ..tracecontext import parse_traceparent, traceparent_of
from ..wire import (
    UpdateLimits,
    change_view,
    format_time,
    instance_view,
    parse_registration,
    parse_restart_policy,
    parse_status_update,
    parse_status_updates,
    parse_time,
    runtime_info_view,
    update_warnings,
    upstream_change_view,
)
from . import limits
from .auth import HTTPForbidden
from .errors import error_body
from .ratelimit import charge_items
from .stream import MAX_ID_LENGTH
from .tracing import PushTracing, default_tracer


def read_json(req: falcon.Request) -> Any:
    return limits.read_json(req)  # the body BodyLimits read, within its size and depth limits


def _enum_param(req: falcon.Request, name: str, parse: Callable[[str], Any]) -> Any:
    value = req.get_param(name)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        raise InvalidInput(f"{name}: {value!r} is not a valid value", field=name) from None


def _int_param(req: falcon.Request, name: str, default: int, low: int, high: int) -> int:
    value = req.get_param(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name}: expected an integer, got {value!r}", field=name) from None
    if not low <= number <= high:
        raise InvalidInput(f"{name}: must be between {low} and {high}", field=name)
    return number


class StatusUpdates:
    """POST /api/status/updates: one update (object) or a batch (array)."""

    def __init__(
        self,
        control_plane: ControlPlane,
        clock: Callable[[], float] = time.time,
        limits: LimitSettings = LimitSettings(),
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.cp = control_plane
        self.clock = clock
        self.update_limits = UpdateLimits(
            limits.max_metadata_keys, limits.max_metadata_value_length, limits.max_clock_skew
        )
        self.tracing = PushTracing(tracer or default_tracer())

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.tracing.push(req) as span:
            self._post(req, resp, span)

    def _post(self, req: falcon.Request, resp: falcon.Response, span: trace.Span) -> None:
        body = read_json(req)
        received_at = self.clock()
        # The push span's: the pushed header's, or (with an SDK) the control plane's span continuing it.
        traceparent = traceparent_of(span)
        push_warnings = header_warnings(req)
        if isinstance(body, list):
            charge_items(req, len(body))  # a batch costs one token per item; the middleware took the first
            self._batch(req, body, received_at, resp, span, traceparent)
            if push_warnings:
                resp.media["warnings"] = push_warnings
            return
        report = parse_status_update(
            body, received_at=received_at, limits=self.update_limits, traceparent=traceparent
        )
        (outcome,) = self._submit(req, (report,), [""], span)
        if isinstance(outcome, Rejected):
            if outcome.not_found:
                raise NotFound(outcome.message, field=outcome.field)
            raise InvalidInput(outcome.message, field=outcome.field)
        # 202 as upstream answers, but only once what the update caused is committed.
        resp.status = falcon.HTTP_202
        resp.media = {
            "status": "accepted", "instanceId": report.instance_id, "outcome": outcome.value,
            "storeId": self.cp.store_id,
        }
        warnings = push_warnings + update_warnings(body)
        if warnings:
            resp.media["warnings"] = warnings

    def _batch(
        self,
        req: falcon.Request,
        body: list[Any],
        received_at: float,
        resp: falcon.Response,
        span: trace.Span,
        traceparent: str | None,
    ) -> None:
        if not body:
            raise InvalidInput("the batch is empty", field="body")
        parsed = parse_status_updates(
            body, received_at=received_at, limits=self.update_limits, traceparent=traceparent
        )
        valid = [(f"[{i}].", p) for i, p in enumerate(parsed) if not isinstance(p, InvalidInput)]
        outcomes = iter(self._submit(req, tuple(p for _, p in valid), [prefix for prefix, _ in valid], span))
        results: list[dict[str, Any]] = []
        for index, item in enumerate(parsed):
            outcome = item if isinstance(item, InvalidInput) else next(outcomes)
            if isinstance(outcome, (InvalidInput, Rejected)):
                field = outcome.field if isinstance(outcome, InvalidInput) else f"[{index}].{outcome.field}"
                results.append({"index": index, "status": "rejected", **error_body(outcome.message, None, field)})
            else:
                results.append({"index": index, "status": "accepted", "outcome": outcome.value})
            warnings = update_warnings(body[index])
            if warnings:
                results[-1]["warnings"] = warnings
        accepted = sum(1 for r in results if r["status"] == "accepted")
        applied = sum(1 for r in results if r.get("outcome") == Outcome.APPLIED.value)
        resp.status = falcon.HTTP_202 if accepted else falcon.HTTP_422
        resp.media = {
            "accepted": accepted, "applied": applied, "ignored": accepted - applied,
            "rejected": len(results) - accepted, "results": results, "storeId": self.cp.store_id,
        }

    def _submit(
        self, req: falcon.Request, reports: tuple[StatusReport, ...], prefixes: list[str], span: trace.Span
    ) -> tuple[Outcome | Rejected, ...]:
        """Hand the reports to the control plane, judged against the daemon's scope on the way: one report out of
        it refuses them all (403 naming ``[i].instanceId`` or ``[i].platform``), before anything is applied."""
        if not reports:
            return ()
        span.set_attribute("draas.updates", len(reports))
        with self.tracing.updates(span, reports) as traced:
            outcome = self.cp.submit(traced, scope=req.context.identity)
        if isinstance(outcome, OutOfScope):
            raise HTTPForbidden(outcome.message, field=prefixes[outcome.index] + outcome.field)
        return outcome


def header_warnings(req: falcon.Request) -> list[str]:
    """A warning for a ``traceparent`` header that is not a valid one. It is ignored, as W3C Trace Context has a
    receiver do (the push's span starts a trace afresh): a push is never refused for its trace. An invalid
    ``traceparent`` field of an update, by contrast, is the update's own bad input (422 naming ``traceparent`` or
    ``[i].traceparent``)."""
    header = req.get_header("traceparent")
    if header is None or parse_traceparent(header) is not None:
        return []
    return [f"traceparent header ignored: {TRACEPARENT_DESCRIPTION}"]


class InstanceStatus:
    """GET /api/status/{instance_id}/status: today's fields and upstream's InstanceRuntimeInfo's.

    Daemons may read it too (upstream: for their health checks and synchronisation), within their scope."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        identity: Identity | None = getattr(req.context, "identity", None)
        daemon = identity if identity is not None and identity.kind == DAEMON else None
        if daemon is not None and not daemon.may_report_on(instance_id):
            # Before the lookup: a daemon learns nothing of instances outside its scope, not even that they exist.
            refusal = scope_refusal(daemon, instance_id, None, None, "")
            assert refusal is not None
            raise HTTPForbidden(refusal[1], field=refusal[0])
        record = self.cp.get_instance(instance_id)
        if daemon is not None:
            refusal = scope_refusal(daemon, instance_id, None, record.platform, "")
            if refusal is not None:
                raise HTTPForbidden(refusal[1], field=refusal[0])
        resp.media = {
            "instanceId": record.instance_id,
            "platform": record.platform.value,
            "status": record.status.value,
            "statusSince": format_time(record.status_since),
            "lastReason": record.last_reason,
            "metadata": dict(record.metadata),
            **runtime_info_view(record),
        }


# Upstream's default window: a part of its API (GetRecentStatusChanges), not a setting.
RECENT_WINDOW = 300.0


class RecentChanges:
    """GET /api/status/recent-changes?since=&statusFilter=&limit= : upstream's query, in upstream's shape (a bare
    array of StatusChangeRecord); the richer feed is /api/status/changes."""

    def __init__(self, control_plane: ControlPlane, clock: Callable[[], float] = time.time) -> None:
        self.cp = control_plane
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since_text = req.get_param("since")
        if since_text is None:
            since = self.clock() - RECENT_WINDOW
        else:
            since = parse_time(_number_or_text(since_text), field="since")
        statuses: frozenset[Status] | None = None
        configuration = False
        status_filter = req.get_param("statusFilter")
        if status_filter:
            names = [name.strip() for name in status_filter.split(",")]
            configuration = any(is_configuration_changed(name) for name in names)
            try:
                statuses = frozenset(parse_status(name) for name in names if not is_configuration_changed(name))
            except ValueError:
                raise InvalidInput("statusFilter: unknown status", field="statusFilter") from None
        limit = _int_param(req, "limit", 1000, 1, 10_000)
        instance_id = req.get_param("instanceId")
        if instance_id is not None and not 1 <= len(instance_id) <= MAX_ID_LENGTH:
            raise InvalidInput(f"instanceId: must be 1 to {MAX_ID_LENGTH} characters", field="instanceId")
        changes = self.cp.recent_changes(
            since, statuses, limit, configuration=configuration, instance_id=instance_id
        )
        resp.media = [upstream_change_view(c) for c in changes]


class Changes:
    """GET /api/status/changes?after=<cursor>&limit= : the change feed, resumable by cursor."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        after = _int_param(req, "after", 0, 0, 2**62)
        limit = _int_param(req, "limit", 100, 1, 1000)
        page = self.cp.changes(after, limit, req.get_param("storeId"))
        resp.media = {
            "changes": [change_view(c) for c in page.changes], "nextCursor": page.next_cursor,
            "storeId": page.store_id,
        }


class Instances:
    """GET /api/instances?platform=&status= ; POST /api/instances"""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        platform = _enum_param(req, "platform", Platform)
        status = _enum_param(req, "status", parse_status)
        # The cursor at which the list was read: follow the change log (or the stream) from it to miss nothing.
        listed = self.cp.list_instances_at(platform=platform, status=status)
        resp.set_header("X-Draas-Cursor", str(listed.cursor))
        resp.media = {
            "instances": [instance_view(r) for r in listed.records], "cursor": listed.cursor,
            "storeId": self.cp.store_id,
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        record = self.cp.register(parse_registration(read_json(req)))
        resp.status = falcon.HTTP_201
        resp.location = f"/api/instances/{record.instance_id}"
        resp.media = instance_view(record)


class Instance:
    """GET / DELETE /api/instances/{instance_id}"""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        resp.media = instance_view(self.cp.get_instance(instance_id))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        stop = req.get_param_as_bool("stop", default=True)
        self.cp.deregister(instance_id, stop_workload=stop)
        resp.status = falcon.HTTP_204


class InstanceRestartPolicy:
    """PUT /api/instances/{instance_id}/restart-policy: replace the policy (e.g. of an auto-created instance)."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_put(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        body = read_json(req)
        if not isinstance(body, dict):
            raise MalformedInput("a restart policy must be a JSON object", field="body")
        policy = parse_restart_policy(body, prefix="")
        resp.media = instance_view(self.cp.set_restart_policy(instance_id, policy))


class InstanceAction:
    """POST /api/instances/{instance_id}/{start|stop|restart}; the effect is asynchronous, hence 202."""

    def __init__(self, control_plane: ControlPlane, action: str) -> None:
        self.cp = control_plane
        self.action = action

    def on_post(self, req: falcon.Request, resp: falcon.Response, instance_id: str) -> None:
        resp.status = falcon.HTTP_202
        resp.media = instance_view(self.cp.act(instance_id, self.action))


class Healthz:
    """Liveness, and which store answers: a daemon that pushes nothing asks here whether the control plane at its
    URL is still the one it filled (``daemons.outbox``). The ``storeId`` is a random identifier, not a secret, so
    it is public like the rest of this answer. Read as a plain attribute, with no ask of any actor: a liveness
    probe stays cheap and answers while the actors are busy."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "alive", "storeId": self.cp.store_id}


class Readyz:
    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ready, details = self.cp.ready()
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = {"status": "ready" if ready else "not ready", **details}


class MetricsExposition:
    """GET /metrics: this control plane's metrics in the Prometheus text format (``draas_actors/metrics.py``)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = METRICS_CONTENT_TYPE
        resp.data = self.metrics.exposition()


class OpenApi:
    """GET /api/openapi.json: the document built from the route table."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document


def _number_or_text(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text



class Audit:
    """GET /api/audit?since=&limit= : rejected requests, newest first (admin)."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since_text = req.get_param("since")
        since = None if since_text is None else parse_time(_number_or_text(since_text), field="since")
        limit = _int_param(req, "limit", 100, 1, 1000)
        resp.media = {"entries": [audit_view(e) for e in self.cp.audit_log(since=since, limit=limit)]}


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "time": format_time(entry.time),
        "identity": entry.identity,
        "client": entry.client,
        "method": entry.method,
        "route": entry.route,
        "status": entry.status,
        "reason": entry.reason,
        "count": entry.count,
    }
