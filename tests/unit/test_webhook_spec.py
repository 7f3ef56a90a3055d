"""A webhook's definition from the API's JSON: secrets, filters, and every refusal naming its field."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from draas_actors.errors import InvalidInput, MalformedInput
from draas_actors.messages import StatusChanged
from draas_actors.model import ChangeKind, InstanceId, Platform, Status
from draas_actors.webhooks.guard import AllowedHosts
from draas_actors.webhooks.spec import Filter, WebhookSpec, parse_patch, parse_spec, secret_key

OPEN = AllowedHosts()
URL = "http://127.0.0.1:9/hook"


def _change(instance: str = "a", platform: Platform = Platform.PROCESS, new: Status = Status.FAILED,
            kind: ChangeKind = ChangeKind.STATUS) -> StatusChanged:
    return StatusChanged(
        instance_id=InstanceId(instance), platform=platform, old_status=Status.RUNNING, new_status=new, source="test",
        timestamp=1.0, metadata={}, cursor=1, kind=kind,
    )


def test_a_secret_is_generated_in_whsec_form_when_none_is_given() -> None:
    one, two = parse_spec({"url": URL}, OPEN), parse_spec({"url": URL}, OPEN)
    assert one.secret.startswith("whsec_") and one.secret != two.secret
    assert len(secret_key(one.secret)) >= 24


def test_a_given_secret_is_kept() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert parse_spec({"url": URL, "secret": secret}, OPEN).secret == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": "ftp://x/y"}, "url"),
        ({"url": URL, "secret": "plain-text"}, "secret"),
        ({"url": URL, "secret": "whsec_" + base64.b64encode(b"short").decode()}, "secret"),
        ({"url": URL, "filter": {"platforms": ["mainframe"]}}, "filter.platforms[0]"),
        ({"url": URL, "filter": {"statuses": ["Running", "Exploded"]}}, "filter.statuses[1]"),
        ({"url": URL, "filter": {"colour": "red"}}, "filter.colour"),
        ({"url": URL, "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_spec(body, OPEN)
    assert raised.value.field == field


def test_a_body_that_is_not_an_object_is_a_400() -> None:
    with pytest.raises(MalformedInput):
        parse_spec([URL], OPEN)


def test_a_patch_replaces_only_what_it_gives() -> None:
    current = WebhookSpec(URL, "old", Filter(platforms=frozenset({Platform.DOCKER})), "whsec_" + "A" * 32)
    patched = parse_patch({"description": "new"}, current, OPEN)
    assert patched == WebhookSpec(URL, "new", current.filter, current.secret)
    with pytest.raises(InvalidInput) as raised:
        parse_patch({}, current, OPEN)
    assert raised.value.field is None or raised.value.field == ""


def test_the_filter_matches_every_list_given() -> None:
    f = Filter(instance_ids=frozenset({"a"}), platforms=frozenset({Platform.PROCESS}),
               statuses=frozenset({Status.FAILED}))
    assert f.matches(_change())
    assert not f.matches(_change(instance="b"))
    assert not f.matches(_change(platform=Platform.DOCKER))
    assert not f.matches(_change(new=Status.RUNNING))
    assert Filter().matches(_change(kind=ChangeKind.CONFIGURATION))


def test_a_configuration_change_is_no_move_into_a_filtered_status() -> None:
    assert not Filter(statuses=frozenset({Status.FAILED})).matches(_change(kind=ChangeKind.CONFIGURATION))
