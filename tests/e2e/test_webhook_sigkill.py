"""Webhooks lose nothing to a SIGKILL of run.py mid-delivery: after a restart the change is delivered again, with
the same webhook-id and body, and the changes behind it follow in order."""

from __future__ import annotations

import signal
from pathlib import Path

from bench.receiver import receiving
from tests.e2e.conftest import RunPy, write_config
from tests.webhook_support import subjects_and_statuses


def test_a_sigkill_mid_delivery_loses_nothing_and_the_redelivery_carries_the_same_webhook_id(
    run_py: RunPy, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "draas.toml", "[webhooks]\nfirstBackoff = 0.05\n")
    data_dir = tmp_path / "var"
    with receiving(hold=True) as receiver:
        control_plane = run_py.start(config=config, data_dir=data_dir)
        created = control_plane.request("POST", "/api/webhooks", json={"url": receiver.url})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        for status in ("Running", "Stopped"):
            pushed = control_plane.request(
                "POST", "/api/status/updates", key=control_plane.daemon_key,
                json={"instanceId": "killed-1", "status": status, "source": "e2e", "platform": "docker"},
            )
            assert pushed.status_code == 202, pushed.text
        (held,) = receiver.wait_for(1, 10.0)  # the first delivery, never answered

        control_plane.process.send_signal(signal.SIGKILL)
        control_plane.process.wait(timeout=10)
        receiver.release()
        run_py.start(config=config, data_dir=data_dir)

        got = receiver.wait_for(3, 15.0)
        assert len(got) == 3, [r.headers.get("webhook-id") for r in got]
        assert got[1].headers["webhook-id"] == held.headers["webhook-id"]
        assert got[1].body == held.body
        assert subjects_and_statuses(secret, got) == [
            ("killed-1", "Running"), ("killed-1", "Running"), ("killed-1", "Stopped")
        ]
