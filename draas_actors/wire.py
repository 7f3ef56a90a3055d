"""JSON <-> messages and records, with validation that names the offending field.

Schemas are plain JSON Schema (validated by ``jsonschema``) so that the OpenAPI document and the config
loader use exactly the same definitions as the HTTP handlers.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from .errors import InvalidInput, MalformedInput
from .messages import StatusChanged, StatusReport
from .model import (
    CONFIGURATION_CHANGED,
    STATUS_ALIASES,
    UPSTREAM_STATUS_NUMBERS,
    ChangeKind,
    InstanceId,
    Platform,
    Status,
    is_alive,
    is_configuration_changed,
    parse_status,
)
from .policy import RestartMode, RestartPolicy
from .records import InstanceRecord, ProcessSpec
from .tracecontext import DESCRIPTION as TRACEPARENT_DESCRIPTION
from .tracecontext import MAX_LENGTH as TRACEPARENT_MAX_LENGTH
from .tracecontext import PATTERN as TRACEPARENT_PATTERN
from .tracecontext import parse_traceparent

DEFAULT_NAMESPACE = "default"  # what Kubernetes itself assumes when a pod's namespace is not given
STATUS_NAMES = [s.value for s in Status] + list(STATUS_ALIASES)
# What a push may name as its status: a lifecycle status, or upstream's configuration change (no lifecycle status).
REPORT_STATUS_NAMES = [*STATUS_NAMES, CONFIGURATION_CHANGED]
PATTERN_MESSAGE = "x-pattern-message"  # a schema's words for a value its "pattern" refuses, instead of the regex
# No "/": a route's {instance_id} cannot hold one, so such an instance could be created but never read or acted on.
# "$(?![\s\S])" is the end of the string in both dialects: a bare "$" also matches before a final newline in
# Python's re, which is how jsonschema applies "pattern".
_ID: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$(?![\s\S])",
    PATTERN_MESSAGE: "is not an instance id: a letter or digit, then letters, digits, '.', '_', ':', '@' or '-'",
}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
# Every number a policy or a process spec holds has an upper bound: json.loads reads 1e999 as infinity (which a
# view would echo as a bare Infinity, not JSON), and a wait no timer can hold is no setting anybody needs.
MAX_SECONDS = 1e9  # about 31.7 years: within what a timer and a datetime hold, longer than any real wait
MAX_MULTIPLIER = 1000.0
MAX_RESTARTS = 1000  # each restart of the window is kept (and saved) with the instance
MAX_PID = 4_194_304  # PID_MAX_LIMIT on 64-bit Linux
_SECONDS = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
_EXIT_CODE = {"type": "integer", "minimum": -255, "maximum": 255}  # negative: killed by that signal

# As upstream's ASP.NET binding reads a push: property names in any case, unknown properties ignored (each named in
# the 202's "warnings"), an enum as its name in any case or its integer, null metadata as none.
STATUS_UPDATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["instanceId", "status", "source"],
    "description": "property names match in any case (InstanceId, instanceId); other properties are ignored and "
    "listed in the answer's warnings",
    "properties": {
        "instanceId": _ID,
        "status": {
            "type": ["string", "integer"],
            "description": "one of " + ", ".join(REPORT_STATUS_NAMES) + ", in any case; or upstream's number: "
            + ", ".join(f"{n} {name}" for n, name in enumerate(UPSTREAM_STATUS_NUMBERS)),
        },
        "source": {
            "type": "string", "minLength": 1, "maxLength": 128, "pattern": r"\S", PATTERN_MESSAGE: "is blank",
        },
        "metadata": {
            "type": ["object", "null"],
            "additionalProperties": _SCALAR,
            "description": "at most [limits] maxMetadataKeys keys (64), values at most maxMetadataValueLength (1024)",
        },
        "observedAt": {
            "type": ["string", "number"],
            "description": "when the source observed the status: RFC 3339 time or epoch seconds",
        },
        "platform": {"enum": [p.value for p in Platform]},
        "traceparent": {
            "type": ["string", "null"], "maxLength": TRACEPARENT_MAX_LENGTH, "pattern": TRACEPARENT_PATTERN,
            PATTERN_MESSAGE: f"is {TRACEPARENT_DESCRIPTION}",
            "description": "W3C trace context of this update (a daemon batches events of several traces): wins "
            "over the push's traceparent header; the change it causes keeps it",
        },
    },
}

RESTART_POLICY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": [m.value for m in RestartMode]},
        "successExitCodes": {"type": "array", "items": _EXIT_CODE, "maxItems": 256},
        "initialBackoff": _SECONDS,
        "multiplier": {"type": "number", "minimum": 1, "maximum": MAX_MULTIPLIER},
        "maxBackoff": _SECONDS,
        "jitter": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
        "resetAfter": _SECONDS,
        "maxRestarts": {"type": "integer", "minimum": 0, "maximum": MAX_RESTARTS},
        "window": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
    },
}

PROCESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "cwd": {"type": "string", "minLength": 1},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "pid": {"type": "integer", "minimum": 1, "maximum": MAX_PID},
        "stopTimeout": _SECONDS,
    },
}

REGISTRATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["instanceId", "platform"],
    "additionalProperties": False,
    "properties": {
        "instanceId": _ID,
        "platform": {"enum": [p.value for p in Platform]},
        "process": PROCESS_SCHEMA,
        "restartPolicy": RESTART_POLICY_SCHEMA,
    },
}

_POLICY_FIELDS = {
    "mode": "mode",
    "successExitCodes": "success_exit_codes",
    "initialBackoff": "initial_backoff",
    "multiplier": "multiplier",
    "maxBackoff": "max_backoff",
    "jitter": "jitter",
    "resetAfter": "reset_after",
    "maxRestarts": "max_restarts",
    "window": "window",
}


def validate(schema: Mapping[str, Any], value: Any, *, prefix: str = "") -> None:
    """Raise InvalidInput naming the first offending field (dotted path, ``[i]`` for array items)."""
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = jsonschema.Draft202012Validator(schema)
    error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))), None)
    if error is None:
        return
    path = [str(p) for p in error.absolute_path]
    # The stubs type these as unions over every keyword (or Unset); here each is what its keyword holds.
    expected: Any = error.validator_value
    subschema: Any = error.schema
    instance: Any = error.instance
    if error.validator == "required":
        missing = [p for p in expected if p not in instance]
        path.append(missing[0])
        message = f"{missing[0]} is required"
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(subschema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        path.append(extra[0] if extra else "")
        message = f"unknown field {extra[0]!r}" if extra else error.message
    elif error.validator == "pattern" and PATTERN_MESSAGE in subschema:
        message = f"{error.instance!r} {subschema[PATTERN_MESSAGE]}"
    else:
        message = error.message
    field = _join(prefix, path)
    raise InvalidInput(f"{field}: {message}" if field else message, field=field or None)


_validators: dict[int, jsonschema.protocols.Validator] = {}


def _join(prefix: str, path: Iterable[str]) -> str:
    out = prefix
    for part in path:
        if part.isdigit():
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


# -- status updates ---------------------------------------------------------------------------------


def is_instance_id(value: Any) -> bool:
    """True when ``value`` is a valid instance id: what the API accepts as ``instanceId``."""
    try:
        validate(_ID, value)
    except InvalidInput:
        return False
    return True


@dataclass(frozen=True)
class UpdateLimits:
    max_keys: int = 64  # of metadata
    max_value_length: int = 1024  # characters of a metadata value as stored (numbers and booleans as text)
    # How far ahead of the receiving clock observedAt may be. Reports are ordered by it per source, and an exit
    # "observed" in the future makes every real exit until then look like a replay: a clock that jumped ahead
    # once would silence its source (and its instance's restarts) until the real time caught up.
    max_clock_skew: float = 300.0


def parse_status_update(
    body: Any,
    *,
    received_at: float | None = None,
    prefix: str = "",
    limits: UpdateLimits = UpdateLimits(),
    traceparent: str | None = None,
) -> StatusReport:
    """One pushed update; ``traceparent``, the push's (its header, valid), applies unless the update has its own."""
    if not isinstance(body, dict):
        raise MalformedInput("a status update must be a JSON object", field=prefix or None)
    body = canonical_update(body, prefix=prefix)
    _require_text(body, prefix)
    if not plainly_valid_update(body):
        validate(STATUS_UPDATE_SCHEMA, body, prefix=prefix)  # names what is wrong (or finds nothing is)
    metadata = _metadata(body.get("metadata") or {}, limits, _join(prefix, ["metadata"]))
    raw_metadata = body.get("metadata") or {}
    kind, status = _report_status(body["status"], _join(prefix, ["status"]))
    now = received_at if received_at is not None else time.time()
    observed = body.get("observedAt")
    return StatusReport(
        instance_id=InstanceId(body["instanceId"]),
        status=status,
        source=body["source"],
        observed_at=now if observed is None else _observed_at(observed, now, limits, _join(prefix, ["observedAt"])),
        metadata=metadata,
        platform=Platform(body["platform"]) if "platform" in body else None,
        exit_code=_exit_code(raw_metadata, _join(prefix, ["metadata", "exitCode"])),
        workload_id=pod_key(metadata) or metadata.get("containerId") or None,
        kind=kind,
        # The schema let only a valid one (or null) through.
        traceparent=parse_traceparent(body.get("traceparent")) or traceparent,
    )


def pod_key(metadata: Mapping[str, str]) -> str | None:
    """``"<namespace>/<podName>"`` from a report's metadata; None when it names no pod."""
    if not metadata.get("podName"):
        return None
    return f"{metadata.get('namespace') or DEFAULT_NAMESPACE}/{metadata['podName']}"


def _exit_code(raw: Mapping[str, Any], field: str) -> int | None:
    """``metadata.exitCode`` as an integer (a number, or text of one as a C# client may send); None when absent, null
    or blank (as null reads in metadata, and as clients send "no code yet"). Anything else is refused here, naming
    the field, rather than read as "no exit" by an actor later."""
    value = raw.get("exitCode")
    if value is None or (type(value) is str and not value.strip()):
        return None
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str:
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInput(f"{field}: {value!r} is not an integer exit code", field=field)


def canonical_update(body: dict[str, Any], *, prefix: str = "") -> dict[str, Any]:
    """The update with its property names spelled as the schema spells them and its unknown properties dropped
    (``update_warnings`` names them). One property given twice in two spellings is refused: which one was meant?"""
    if body.keys() <= _UPDATE_FIELDS:
        return body  # every push from our daemons
    canonical: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in body.items():
        name = _FIELD_BY_LOWER.get(key.lower())
        if name is None:
            continue
        if name in canonical:
            field = _join(prefix, [name])
            raise InvalidInput(f"{field}: given twice, as {spelled[name]!r} and {key!r}", field=field)
        canonical[name] = value
        spelled[name] = key
    return canonical


def update_warnings(body: Any) -> list[str]:
    """A warning for each property of a pushed update that is ignored because no field has its name (in any case)."""
    if not isinstance(body, dict) or body.keys() <= _UPDATE_FIELDS:
        return []
    unknown = [key for key in body if key.lower() not in _FIELD_BY_LOWER]
    warnings = [f"unknown property {_shorten(key)!r} ignored" for key in unknown[:MAX_WARNINGS]]
    if len(unknown) > MAX_WARNINGS:
        warnings.append(f"{len(unknown) - MAX_WARNINGS} more unknown properties ignored")
    return warnings


def _shorten(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _require_text(body: dict[str, Any], prefix: str) -> None:
    """A missing, null or blank instanceId or source is malformed (400), as upstream's model validation has it."""
    for name in _REQUIRED_TEXT:
        value = body.get(name)
        field = _join(prefix, [name])
        if value is None:
            raise MalformedInput(f"{field} is required", field=field)
        if type(value) is str and _NONBLANK.search(value) is None:
            raise MalformedInput(f"{field} is blank: it is required", field=field)


def _report_status(value: Any, field: str) -> tuple[ChangeKind, Status]:
    """The report's kind and status from a status name (any case) or upstream's enum number."""
    if type(value) is not str:  # the schema let only an integer through (1.0 too, as JSON Schema counts it)
        number = int(value)
        if not 0 <= number < len(UPSTREAM_STATUS_NUMBERS):
            raise InvalidInput(f"{field}: {value!r} is not one of upstream's status numbers ({_NUMBERS})", field=field)
        value = UPSTREAM_STATUS_NUMBERS[number]
    if is_configuration_changed(value):
        return ChangeKind.CONFIGURATION, Status.UNKNOWN  # the status is not read: the instance keeps its own
    try:
        return ChangeKind.STATUS, parse_status(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: unknown status {value!r}; expected one of {', '.join(REPORT_STATUS_NAMES)} (any case) or "
            f"0-{len(UPSTREAM_STATUS_NUMBERS) - 1}",
            field=field,
        ) from None


def _observed_at(value: Any, now: float, limits: UpdateLimits, field: str) -> float:
    observed = parse_time(value, field=field)
    if observed - now > limits.max_clock_skew:
        raise InvalidInput(
            f"{field}: {value!r} is {observed - now:.0f} s ahead of the control plane's clock (at most "
            f"{limits.max_clock_skew:g} s): check the reporting host's clock",
            field=field,
        )
    return observed


_UPDATE_FIELDS = frozenset(STATUS_UPDATE_SCHEMA["properties"])
_FIELD_BY_LOWER = {name.lower(): name for name in _UPDATE_FIELDS}
_REQUIRED_TEXT = ("instanceId", "source")
_NONBLANK = re.compile(STATUS_UPDATE_SCHEMA["properties"]["source"]["pattern"])
_NUMBERS = ", ".join(f"{n} {name}" for n, name in enumerate(UPSTREAM_STATUS_NUMBERS))
MAX_WARNINGS = 16  # per update: a body of many unknown properties must not make an answer as long
_UPDATE_REQUIRED = tuple(STATUS_UPDATE_SCHEMA["required"])
_SOURCE = STATUS_UPDATE_SCHEMA["properties"]["source"]
_PLATFORMS = frozenset(STATUS_UPDATE_SCHEMA["properties"]["platform"]["enum"])
_ID_PATTERN = re.compile(_ID["pattern"])
_SCALAR_TYPES = (str, int, float, bool, type(None))  # _SCALAR, as json.loads gives it
_TIME_TYPES = (str, int, float)  # observedAt's: a bool is not a number


def plainly_valid_update(body: dict[str, Any]) -> bool:
    """True only for an update that ``STATUS_UPDATE_SCHEMA`` accepts: the fast path of every push.

    jsonschema spends 20-40 µs on an update, many times what the rest of the parsing costs. This check may say False
    of a valid update (then jsonschema decides, as before), never True of an invalid one: a unit test holds it to
    that, and every refusal still comes from jsonschema, so its messages and fields are unchanged.
    """
    if not body.keys() <= _UPDATE_FIELDS or any(name not in body for name in _UPDATE_REQUIRED):
        return False
    instance_id, source = body["instanceId"], body["source"]
    if type(instance_id) is not str or not _ID["minLength"] <= len(instance_id) <= _ID["maxLength"]:
        return False
    if _ID_PATTERN.search(instance_id) is None:  # search, as jsonschema's "pattern" does
        return False
    if type(body["status"]) is not str:
        return False
    if type(source) is not str or not _SOURCE["minLength"] <= len(source) <= _SOURCE["maxLength"]:
        return False
    if _NONBLANK.search(source) is None:
        return False
    metadata = body.get("metadata")
    if metadata is not None and (
        type(metadata) is not dict or any(type(value) not in _SCALAR_TYPES for value in metadata.values())
    ):
        return False
    if "observedAt" in body and type(body["observedAt"]) not in _TIME_TYPES:
        return False
    if body.get("traceparent") is not None and parse_traceparent(body["traceparent"]) is None:
        return False
    return "platform" not in body or (type(body["platform"]) is str and body["platform"] in _PLATFORMS)


def parse_status_updates(
    body: Any,
    *,
    received_at: float | None = None,
    limits: UpdateLimits = UpdateLimits(),
    traceparent: str | None = None,
) -> list[StatusReport | InvalidInput]:
    """A batch: one report or one error per item, so one bad item does not sink the others."""
    results: list[StatusReport | InvalidInput] = []
    for index, item in enumerate(body):
        try:
            results.append(parse_status_update(
                item, received_at=received_at, prefix=f"[{index}]", limits=limits, traceparent=traceparent
            ))
        except (InvalidInput, MalformedInput) as error:
            results.append(InvalidInput(error.message, field=error.field))
    return results


def _metadata(raw: Mapping[str, Any], limits: UpdateLimits, field: str) -> dict[str, str]:
    """Metadata as text, within the key-count and value-length limits (422 naming the field otherwise)."""
    if len(raw) > limits.max_keys:
        raise InvalidInput(f"{field}: {len(raw)} keys; at most {limits.max_keys} are allowed", field=field)
    metadata = {key: _scalar_text(value) for key, value in raw.items()}
    for key, text in metadata.items():
        if len(text) > limits.max_value_length:
            name = f"{field}.{key}"
            raise InvalidInput(
                f"{name}: {len(text)} characters; at most {limits.max_value_length} are allowed", field=name
            )
    return metadata


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


_FIRST_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC).timestamp()
_LAST_EPOCH = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()


def parse_time(value: Any, *, field: str) -> float:
    """RFC 3339 text or epoch seconds -> epoch seconds; naive times are taken as UTC."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: expected a time", field=field)
    if isinstance(value, (int, float)):
        # NaN compares false with everything and Infinity is later than everything: either would make every later
        # report from the same source look stale. Epoch seconds must name a time a datetime can hold.
        if not _FIRST_EPOCH <= value <= _LAST_EPOCH:
            raise InvalidInput(f"{field}: {value!r} is not a time (epoch seconds up to year 9999)", field=field)
        return float(value)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not an RFC 3339 time", field=field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def format_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    try:
        moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    except (OverflowError, ValueError, OSError):
        # Past year 9999 (a restart 1e33 s away, from a valid policy): the end of the range, not a 500 on every view.
        moment = (dt.datetime.max if epoch > 0 else dt.datetime.min).replace(tzinfo=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- registrations and policies ---------------------------------------------------------------------


def parse_restart_policy(body: Mapping[str, Any], *, prefix: str = "restartPolicy") -> RestartPolicy:
    validate(RESTART_POLICY_SCHEMA, body, prefix=prefix)
    kwargs: dict[str, Any] = {_POLICY_FIELDS[k]: v for k, v in body.items()}
    if "mode" in kwargs:
        kwargs["mode"] = RestartMode(kwargs["mode"])
    if "success_exit_codes" in kwargs:
        kwargs["success_exit_codes"] = frozenset(kwargs["success_exit_codes"])
    try:
        return RestartPolicy(**kwargs)
    except ValueError as error:
        # RestartPolicy names the field as "restartPolicy.<name>"; put it under our prefix.
        field = _join(prefix, [str(error).split(" ", 1)[0].rpartition(".")[2]])
        raise InvalidInput(f"{field} is out of range", field=field) from None


def parse_registration(body: Any, *, prefix: str = "") -> InstanceRecord:
    if not isinstance(body, dict):
        raise MalformedInput("an instance registration must be a JSON object", field=prefix or None)
    validate(REGISTRATION_SCHEMA, body, prefix=prefix)
    platform = Platform(body["platform"])
    process = body.get("process")
    spec = None
    if platform is Platform.PROCESS:
        field = _join(prefix, ["process"])
        if process is None:
            raise InvalidInput(f"{field} is required for a process instance", field=field)
        # Both may be given: the PID is adopted now and the command restarts it later.
        if "command" not in process and "pid" not in process:
            raise InvalidInput(f"{field}: give a command to run or a pid to adopt", field=f"{field}.command")
        spec = ProcessSpec(
            command=tuple(process.get("command", ())),
            cwd=process.get("cwd"),
            env=dict(process.get("env", {})),
            adopt_pid=None if process.get("pid") is None else int(process["pid"]),  # JSON Schema's integer: 7.0 too
            stop_timeout=float(process.get("stopTimeout", 10.0)),
        )
    elif process is not None:
        field = _join(prefix, ["process"])
        raise InvalidInput(f"{field} applies to process instances only", field=field)
    policy = parse_restart_policy(body.get("restartPolicy", {}), prefix=_join(prefix, ["restartPolicy"]))
    return InstanceRecord(
        instance_id=InstanceId(body["instanceId"]), platform=platform, process=spec, restart_policy=policy
    )


# -- views ------------------------------------------------------------------------------------------


# One rule for every number a view shows: as the type its field declares. JSON has one number type, so a window
# written as 300 in the settings file stays an int in the record, and printed beside the default 300.0 it looked
# like another value; now both print 300.0 (and maxRestarts 7.0 prints 7).
_POLICY_NUMBERS: dict[str, type] = {
    attr: kind for attr, kind in typing.get_type_hints(RestartPolicy).items() if kind in (int, float)
}


def policy_view(policy: RestartPolicy) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for wire, attr in _POLICY_FIELDS.items():
        value = getattr(policy, attr)
        view[wire] = _POLICY_NUMBERS[attr](value) if attr in _POLICY_NUMBERS else value
    view["mode"] = policy.mode.value
    view["successExitCodes"] = sorted(policy.success_exit_codes)
    return view


def instance_view(record: InstanceRecord) -> dict[str, Any]:
    runtime = record.runtime
    process = record.process
    return {
        "instanceId": record.instance_id,
        "platform": record.platform.value,
        "status": record.status.value,
        "statusSince": format_time(record.status_since),
        "operatorStopped": record.operator_stopped,
        "restartCount": record.restart_count,
        "lastExitCode": record.last_exit_code,
        "lastReason": record.last_reason,
        "lastStopCause": None if record.last_stop_cause is None else record.last_stop_cause.value,
        "nextRestartAt": format_time(record.next_restart_at),
        "restartPolicy": policy_view(record.restart_policy),
        "runtime": None
        if runtime is None
        else {"pid": runtime.pid, "startedAt": format_time(runtime.started_at), "child": runtime.child},
        # Environment values can hold secrets: show which variables are set, never their values.
        "process": None
        if process is None
        else {
            "command": list(process.command),
            "cwd": process.cwd,
            "envKeys": sorted(process.env),
            "adoptedPid": process.adopt_pid,
            "stopTimeout": float(process.stop_timeout),
        },
        "staleReportsDropped": record.stale_dropped,
        "rejectedTransitions": record.rejected_transitions,
        "metadata": dict(record.metadata),
        "createdAt": format_time(record.created_at),
        "updatedAt": format_time(record.updated_at),
    }


_ENDED = frozenset({Status.STOPPED, Status.FAILED, Status.REMOVED})


def runtime_info_view(record: InstanceRecord) -> dict[str, Any]:
    """Upstream's InstanceRuntimeInfo fields, from the record's typed fields; null where the record does not know.

    startedAt is the process's start, or else since when a live status holds; stoppedAt since when an ended status
    holds; errorMessage is lastReason while Failed."""
    runtime = record.runtime
    pod = record.workload_id if record.platform is Platform.KUBERNETES else None
    namespace, _, pod_name = pod.partition("/") if pod else ("", "", "")
    if runtime is not None:
        started_at: float | None = runtime.started_at
    else:
        started_at = record.status_since if is_alive(record.status) else None
    return {
        "startedAt": format_time(started_at),
        "stoppedAt": format_time(record.status_since) if record.status in _ENDED else None,
        "containerId": record.workload_id if record.platform is Platform.DOCKER else None,
        "processId": None if runtime is None else str(runtime.pid),  # upstream's is text
        "podName": pod_name or None,
        "namespace": namespace or None,
        "runtimeMetadata": dict(record.metadata),
        "errorMessage": record.last_reason if record.status is Status.FAILED else None,
    }


def change_view(change: StatusChanged) -> dict[str, Any]:
    return {
        "cursor": change.cursor,
        "kind": change.kind.value,
        "instanceId": change.instance_id,
        "platform": change.platform.value,
        "oldStatus": change.old_status.value,
        "newStatus": change.new_status.value,
        "source": change.source,
        "timestamp": format_time(change.timestamp),
        "metadata": dict(change.metadata),
        "traceparent": change.traceparent,  # the trace of the push that caused it; null when none did
    }


def upstream_change_view(change: StatusChanged) -> dict[str, Any]:
    """A change as upstream's StatusChangeRecord: a configuration change's newStatus is ConfigurationChanged."""
    configuration = change.kind is ChangeKind.CONFIGURATION
    return {
        "instanceId": change.instance_id,
        "oldStatus": change.old_status.value,
        "newStatus": CONFIGURATION_CHANGED if configuration else change.new_status.value,
        "source": change.source,
        "timestamp": format_time(change.timestamp),
        "metadata": dict(change.metadata),
    }
