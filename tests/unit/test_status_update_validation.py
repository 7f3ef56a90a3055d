"""The fast path of status-update validation against the JSON schema it stands in for."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemons.updates import StatusUpdate
from draas_actors.errors import InvalidInput, MalformedInput
from draas_actors.model import Platform, Status
from draas_actors.tracecontext import PATTERN as TRACEPARENT_PATTERN
from draas_actors.wire import (
    REPORT_STATUS_NAMES,
    STATUS_UPDATE_SCHEMA,
    parse_status_update,
    plainly_valid_update,
    validate,
)

SCHEMA = jsonschema.Draft202012Validator(STATUS_UPDATE_SCHEMA)
FIELDS = sorted(STATUS_UPDATE_SCHEMA["properties"])
# What the instance-id pattern accepts, without its end-of-string lookahead (fullmatch does that for the generator).
ID_PATTERN_PLAIN = r"[A-Za-z0-9][A-Za-z0-9._:@-]*"
# Deterministic, and no example database written into the working tree.
EXAMPLES = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Strings at and just over the schema's lengths, and just outside its instance-id pattern.
_EDGE_TEXT = st.sampled_from(["", "a" * 129, "a" * 254, "-web", "a" * 128, "a" * 253, " ", "web-1\n", "é"])
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), _EDGE_TEXT)
_ANY = st.recursive(
    _SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
_VALID = {
    "instanceId": st.from_regex(ID_PATTERN_PLAIN, fullmatch=True).filter(lambda s: len(s) <= 253),
    "status": st.sampled_from(REPORT_STATUS_NAMES) | st.text(max_size=10) | st.integers(-1, 5),
    "source": st.text(min_size=1, max_size=128),
    "metadata": st.none() | st.dictionaries(
        st.text(max_size=10), st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        max_size=4,
    ),
    "observedAt": st.one_of(st.integers(), st.floats(), st.text(max_size=30)),
    "platform": st.sampled_from([p.value for p in Platform]),
    # Valid ones, and each way W3C Trace Context refuses one: upper case, zero ids, version ff, a long version 00.
    "traceparent": st.none() | st.from_regex(TRACEPARENT_PATTERN) | st.sampled_from([
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
    ]),
}


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    """A valid update, or one with a field replaced (by an edge case or anything), a metadata value replaced, a
    field dropped, or one added."""
    required = {name: _VALID[name] for name in STATUS_UPDATE_SCHEMA["required"]}
    optional = {name: strategy for name, strategy in _VALID.items() if name not in required}
    body: dict[str, Any] = draw(st.fixed_dictionaries(required, optional=optional))
    change = draw(st.sampled_from(["none", "edge", "replace", "metadata", "drop", "add"]))
    if change == "edge":
        body[draw(st.sampled_from(["instanceId", "source"]))] = draw(_EDGE_TEXT)
    elif change == "replace":
        body[draw(st.sampled_from(FIELDS))] = draw(_EDGE_TEXT | _ANY)
    elif change == "metadata":
        body["metadata"] = {"key": draw(_ANY)}
    elif change == "drop":
        del body[draw(st.sampled_from(sorted(body)))]
    elif change == "add":
        body[draw(st.text(max_size=8))] = draw(_ANY)
    return body


def _upstreams_400(body: dict[str, Any], prefix: str) -> tuple[type[Exception], str] | None:
    """What upstream refuses first, with 400: a missing, null or blank instanceId or source."""
    for name in ("instanceId", "source"):
        value = body.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return MalformedInput, f"{prefix}.{name}" if prefix else name
    return None


def _refusal(call: Any) -> tuple[str, str | None] | None:
    try:
        call()
    except (InvalidInput, MalformedInput) as error:
        return error.message, error.field
    return None


@given(updates())
@EXAMPLES
def test_the_fast_path_accepts_nothing_the_schema_refuses(body: dict[str, Any]) -> None:
    if plainly_valid_update(body):
        assert SCHEMA.is_valid(body)


@given(updates(), st.sampled_from(["", "[3]"]))
@EXAMPLES
def test_an_update_the_schema_refuses_is_refused_with_the_schema_message_and_field(
    body: dict[str, Any], prefix: str
) -> None:
    first = _upstreams_400(body, prefix)
    if first is not None:
        with pytest.raises(first[0]) as caught:
            parse_status_update(body, received_at=0.0, prefix=prefix)
        assert caught.value.field == first[1]  # type: ignore[attr-defined]
        return
    expected = _refusal(lambda: validate(STATUS_UPDATE_SCHEMA, body, prefix=prefix))
    if expected is not None:
        assert _refusal(lambda: parse_status_update(body, received_at=0.0, prefix=prefix)) == expected


def test_the_generated_updates_include_valid_ones_and_each_kind_of_refusal() -> None:
    """Guards the two properties above against a strategy that has drifted into testing nothing."""
    seen: Counter[str] = Counter()

    @given(updates())
    @EXAMPLES
    def collect(body: dict[str, Any]) -> None:
        seen.update({str(error.validator) for error in SCHEMA.iter_errors(body)} or {"valid"})

    collect()
    kinds = ("valid", "required", "type", "pattern", "minLength", "maxLength", "enum")
    assert all(seen[kind] >= 3 for kind in kinds), seen


@pytest.mark.parametrize(
    "update",
    [
        StatusUpdate(instance_id="web-1", workload_id="3f2a9c", status=Status.FAILED, observed_at=1_700_000_000.5,
                     source="DockerDaemon", platform=Platform.DOCKER,
                     metadata={"containerId": "3f2a9c", "exitCode": 137, "reason": "OOMKilled"}),
        StatusUpdate(instance_id="default.api", workload_id="uid-1", status=Status.RUNNING, observed_at=1_700_000_000,
                     source="k8s-daemon@node-1", platform=Platform.KUBERNETES,
                     metadata={"podName": "api-5d9c", "namespace": "default"}),
    ],
    ids=["docker", "kubernetes"],
)
def test_what_the_daemons_push_takes_the_fast_path(update: StatusUpdate) -> None:
    body = json.loads(json.dumps(update.to_wire()))
    assert plainly_valid_update(body)
    assert plainly_valid_update({"instanceId": "web-1", "status": "Running", "source": "DockerDaemon"})


@pytest.mark.parametrize(
    ("override", "field", "needle"),
    [
        ({"instanceId": "a" * 254}, "instanceId", "is too long"),
        ({"source": "s" * 129}, "source", "is too long"),
        ({"platform": ["docker"]}, "platform", "is not one of"),
        ({"platform": None}, "platform", "is not one of"),
        ({"metadata": "none"}, "metadata", "is not of type 'object', 'null'"),
        ({"metadata": {"nested": [1]}}, "metadata.nested", "is not of type"),
        ({"observedAt": False}, "observedAt", "is not of type"),
    ],
)
def test_an_update_just_outside_the_schema_is_refused_naming_the_field(
    override: dict[str, Any], field: str, needle: str
) -> None:
    body = {"instanceId": "web-1", "status": "Running", "source": "DockerDaemon", **override}
    assert not plainly_valid_update(body)
    with pytest.raises(InvalidInput) as caught:
        parse_status_update(body, received_at=0.0)
    assert caught.value.field == field
    assert needle in caught.value.message


def test_null_metadata_takes_the_fast_path_and_a_blank_source_does_not() -> None:
    assert plainly_valid_update({"instanceId": "web-1", "status": "Running", "source": "d", "metadata": None})
    assert not plainly_valid_update({"instanceId": "web-1", "status": "Running", "source": " \t"})
    assert not SCHEMA.is_valid({"instanceId": "web-1", "status": "Running", "source": " \t"})


def test_an_update_at_the_schema_s_length_limits_is_accepted() -> None:
    body = {"instanceId": "a" * 253, "status": "Running", "source": "s" * 128}
    assert plainly_valid_update(body)
    assert parse_status_update(body, received_at=0.0).instance_id == "a" * 253


@pytest.mark.parametrize("instance_id", ["ns/api", "web-1\n", "web-1\r\n", "-web", "web 1", "é"])
def test_an_instance_id_no_route_could_reach_or_with_a_trailing_newline_is_refused_in_words(instance_id: str) -> None:
    body = {"instanceId": instance_id, "status": "Running", "source": "DockerDaemon"}

    refusal = _refusal(lambda: parse_status_update(body, received_at=0.0))

    assert refusal == (f"instanceId: {instance_id!r} is not an instance id: a letter or digit, then letters, digits, "
                       "'.', '_', ':', '@' or '-'", "instanceId")
