"""``draasctl webhooks`` as a subprocess against a control plane on real HTTP: create, list, delete, refusals."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import RunningControlPlane
from tests.integration.ctl_support import ctl, ctl_env

RECEIVER = "http://127.0.0.1:9/hook"  # nothing listens there: deliveries fail and retry, none leaves the machine


def test_webhooks_are_created_listed_and_deleted(plane: RunningControlPlane, tmp_path: Path) -> None:
    env = ctl_env(tmp_path / "config", plane)
    assert ctl(env, "webhooks", "list").stdout.strip() == "No webhooks found."
    created = ctl(env, "webhooks", "create", RECEIVER, "--description", "ops", "--platform", "docker",
                  "--status", "Failed")
    assert created.returncode == 0, created.stderr
    first, second = created.stdout.splitlines()
    webhook_id = first.split()[0].removeprefix("webhook/")
    assert second.startswith("secret: whsec_")

    listed = ctl(env, "webhooks", "list").stdout.splitlines()
    assert listed[1].split()[:2] == [webhook_id, RECEIVER]
    assert "platforms=docker statuses=Failed" in listed[1]
    as_json = ctl(env, "webhooks", "list", "-o", "json").stdout
    assert [w["id"] for w in json.loads(as_json)] == [webhook_id] and "whsec_" not in as_json

    deleted = ctl(env, "webhooks", "delete", webhook_id, "wh_0000000000000000")
    assert deleted.returncode == 1  # the second was refused (404), after the first was deleted
    assert f"webhook/{webhook_id} deleted" in deleted.stdout
    assert ctl(env, "webhooks", "list").stdout.strip() == "No webhooks found."


def test_a_refused_webhook_prints_the_field(plane: RunningControlPlane, tmp_path: Path) -> None:
    refused = ctl(ctl_env(tmp_path / "config", plane), "webhooks", "create", "ftp://127.0.0.1/x")
    assert refused.returncode == 1
    assert "(field: url)" in refused.stderr
