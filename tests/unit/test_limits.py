"""Body limits as pure functions: JSON depth without recursion, bounded reads, metadata limits in wire.py."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import falcon
import pytest

from draas_actors.api.app import create_app
from draas_actors.api.limits import json_depth_exceeds, parse_json, read_bounded
from draas_actors.errors import InvalidInput, MalformedInput
from draas_actors.wire import UpdateLimits, parse_status_update, parse_status_updates
from tests.helpers import unstarted_control_plane

UPDATE = {"instanceId": "web-1", "status": "Running", "source": "test"}


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [0, 1, 5, 8])
def test_json_within_the_depth_limit_passes(depth: int) -> None:
    raw = json.dumps(nested(depth)).encode()

    assert not json_depth_exceeds(raw, 8)
    assert parse_json(raw, max_depth=8) == nested(depth)


@pytest.mark.parametrize("depth", [9, 20, 900])
def test_json_deeper_than_the_limit_is_refused_naming_the_body(depth: int) -> None:
    raw = json.dumps(nested(depth)).encode()

    assert json_depth_exceeds(raw, 8)
    with pytest.raises(InvalidInput) as caught:
        parse_json(raw, max_depth=8)
    assert caught.value.field == "body"


def test_brackets_inside_strings_do_not_count() -> None:
    raw = rb'{"a": "[[[[[[[[[[{{{{{{{{", "b": ["\"]]]]\\", "\\\"[["]}'

    assert not json_depth_exceeds(raw, 2)
    assert parse_json(raw, max_depth=2) == {"a": "[[[[[[[[[[{{{{{{{{", "b": ['"]]]]\\', '\\"[[']}


def test_a_wide_batch_is_as_deep_as_its_deepest_item() -> None:
    batch = [{**UPDATE, "metadata": {"k": "v"}} for _ in range(1000)]
    raw = json.dumps(batch).encode()

    # array > update object > metadata object
    assert not json_depth_exceeds(raw, 3)
    assert json_depth_exceeds(raw, 2)


@pytest.mark.parametrize("opener", [b"[", b"{", b'{"a":'])
def test_a_hundred_thousand_openers_are_a_4xx_error_not_a_recursion_error(opener: bytes) -> None:
    raw = opener * 100_000
    started = time.perf_counter()

    with pytest.raises((InvalidInput, MalformedInput)):
        parse_json(raw, max_depth=8)

    assert time.perf_counter() - started < 1.0


def test_a_hundred_thousand_balanced_brackets_are_too_deep() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_json(b"[" * 100_000 + b"]" * 100_000, max_depth=8)
    assert caught.value.field == "body"


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"[1,]", b"\xff\xfe", b'{"a": 1}}'])
def test_empty_or_broken_json_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedInput) as caught:
        parse_json(raw, max_depth=8)
    assert caught.value.field == "body"


@pytest.mark.parametrize(
    "raw",
    [b'{"source": "x\\ud800"}', b'{"k\\udfff": 1}', b'["\\ude00\\ud83d"]', b'["\xed\xa0\x80"]',
     '["\ud800"]'.encode("utf-16-le", "surrogatepass")],
    ids=["escape", "in-a-key", "pair-backwards", "utf8-bytes", "utf16"],
)
def test_a_lone_surrogate_is_malformed(raw: bytes) -> None:
    # Found by probing the API: a push with one killed the store actor (SQLite cannot encode it) and its echo was a 500.
    with pytest.raises(MalformedInput) as caught:
        parse_json(raw, max_depth=8)
    assert caught.value.field == "body"


@pytest.mark.parametrize(
    "raw",
    [json.dumps({"a": "é"}).encode(encoding) for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32")]
    + [b'{"a": "\xff"}', b'{"a": "\xc3"}', b'["\xed\xa0\x80"]'],
    ids=["utf-16", "utf-16-le", "utf-16-be", "utf-32", "invalid-byte", "truncated", "encoded-surrogate"],
)
def test_a_body_that_is_not_utf_8_is_malformed(raw: bytes) -> None:
    # json.loads(bytes) guesses UTF-16 and UTF-32 and took all four.
    with pytest.raises(MalformedInput, match="UTF-8") as caught:
        parse_json(raw, max_depth=8)
    assert caught.value.field == "body"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    with pytest.raises(MalformedInput, match=constant):
        parse_json(f'{{"x": [1, {constant}]}}'.encode(), max_depth=8)


def test_a_number_too_big_for_a_float_parses_as_infinity_for_the_schema_to_name() -> None:
    assert parse_json(b'{"x": 1e999}', max_depth=8) == {"x": float("inf")}


def test_the_json_renderer_never_writes_nan_or_infinity(tmp_path: Path) -> None:
    with unstarted_control_plane(tmp_path) as cp:
        handler = create_app(cp).resp_options.media_handlers[falcon.MEDIA_JSON]
        assert handler.serialize({"x": "é"}, falcon.MEDIA_JSON) == '{"x": "é"}'.encode()
        for number in (float("nan"), float("inf"), float("-inf")):
            with pytest.raises(ValueError):
                handler.serialize({"x": number}, falcon.MEDIA_JSON)


def test_a_surrogate_pair_and_other_escapes_are_characters() -> None:
    raw = b'["\\ud83d\\ude00", "\\u00e9", "\xed\x95\x9c"]'
    assert parse_json(raw, max_depth=8) == ["\U0001f600", "\u00e9", "\ud55c"]


def test_a_bounded_read_stops_at_the_limit() -> None:
    stream = io.BytesIO(b"x" * 1_000_000)

    assert len(read_bounded(stream, 70_001)) == 70_001
    assert stream.tell() == 70_001
    assert read_bounded(io.BytesIO(b"abc"), 10) == b"abc"


# -- metadata limits (wire.py) ------------------------------------------------------------------------


def test_metadata_at_the_limits_is_accepted() -> None:
    limits = UpdateLimits(max_keys=3, max_value_length=5)
    body = {**UPDATE, "metadata": {"a": "12345", "b": 12345, "c": True}}

    report = parse_status_update(body, received_at=0.0, limits=limits)

    assert report.metadata == {"a": "12345", "b": "12345", "c": "true"}


def test_too_many_metadata_keys_name_the_metadata() -> None:
    limits = UpdateLimits(max_keys=3, max_value_length=5)
    body = {**UPDATE, "metadata": {str(i): i for i in range(4)}}

    with pytest.raises(InvalidInput) as caught:
        parse_status_update(body, received_at=0.0, limits=limits)
    assert caught.value.field == "metadata"


@pytest.mark.parametrize("value", ["123456", 123456, 1.23456])
def test_a_long_metadata_value_names_its_key(value: Any) -> None:
    limits = UpdateLimits(max_keys=3, max_value_length=5)
    body = {**UPDATE, "metadata": {"ok": "v", "image": value}}

    with pytest.raises(InvalidInput) as caught:
        parse_status_update(body, received_at=0.0, limits=limits)
    assert caught.value.field == "metadata.image"


def test_the_default_limits_are_64_keys_and_1024_characters() -> None:
    parse_status_update({**UPDATE, "metadata": {str(i): "x" * 1024 for i in range(64)}}, received_at=0.0)
    with pytest.raises(InvalidInput):
        parse_status_update({**UPDATE, "metadata": {str(i): "x" for i in range(65)}}, received_at=0.0)
    with pytest.raises(InvalidInput):
        parse_status_update({**UPDATE, "metadata": {"k": "x" * 1025}}, received_at=0.0)


def test_metadata_limits_in_a_batch_name_the_item_and_spare_the_others() -> None:
    limits = UpdateLimits(max_keys=2, max_value_length=4)
    batch = [UPDATE, {**UPDATE, "metadata": {"a": 1, "b": 2, "c": 3}}, {**UPDATE, "metadata": {"long": "xxxxx"}}]

    results = parse_status_updates(batch, received_at=0.0, limits=limits)

    assert not isinstance(results[0], InvalidInput)
    assert [r.field for r in results[1:] if isinstance(r, InvalidInput)] == ["[1].metadata", "[2].metadata.long"]


# -- observedAt ahead of the clock (wire.py) ---------------------------------------------------------------


def test_an_observed_at_further_ahead_than_the_allowed_clock_skew_is_refused_naming_it() -> None:
    limits = UpdateLimits(max_clock_skew=300.0)
    now = 1_700_000_000.0

    assert parse_status_update({**UPDATE, "observedAt": now + 300}, received_at=now, limits=limits).observed_at == (
        now + 300
    )
    assert parse_status_update({**UPDATE, "observedAt": now - 86_400}, received_at=now).observed_at == now - 86_400
    with pytest.raises(InvalidInput) as caught:
        parse_status_update({**UPDATE, "observedAt": "2100-01-01T00:00:00Z"}, received_at=now, limits=limits)
    assert caught.value.field == "observedAt"
    assert "ahead of the control plane's clock (at most 300 s)" in caught.value.message

    results = parse_status_updates([UPDATE, {**UPDATE, "observedAt": now + 301}], received_at=now, limits=limits)
    assert [r.field for r in results if isinstance(r, InvalidInput)] == ["[1].observedAt"]
