"""A full disk, for real: the control plane's data dir on a small tmpfs that a test fills up.

While the store cannot commit, pushes get 503 with Retry-After (nothing acknowledged) and /readyz says why; no actor
is restarted; when space comes back the store commits again by itself, and every update that got a 202, before or
after, is in the change log after a restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from draas_actors.actors.store import Retention, StoreActor, StoreHealth
from draas_actors.messages import CheckWritable
from draas_actors.scheduler import Scheduler
from tests.helpers import RunningControlPlane, running_control_plane, wait_until
from tests.metrics_support import scrape, value
from tests.mounts import fill, tmpfs


def _flip(seq: int, instance: str) -> dict[str, Any]:
    return {
        "instanceId": instance, "status": "Running" if seq % 2 else "Stopped", "source": "disk-test",
        "platform": "docker", "observedAt": time.time(), "metadata": {"seq": str(seq), "pad": "x" * 400},
    }


def _scraped_head(running: RunningControlPlane) -> float:
    return value(scrape(running.base_url + "/metrics"), "draas_change_log_head_cursor")


def _logged_seqs(changes: list[dict[str, Any]], instance: str) -> set[int]:
    return {int(c["metadata"]["seq"]) for c in changes if c["instanceId"] == instance and "seq" in c["metadata"]}


def test_a_full_disk_refuses_writes_with_503_and_recovers_by_itself_losing_nothing(tmp_path: Path) -> None:
    acknowledged: set[int] = set()
    seq = 0
    with tmpfs(tmp_path / "data", size="6m") as data_dir:
        with running_control_plane(data_dir) as running:
            for _ in range(10):
                seq += 1
                assert running.push(_flip(seq, "disk-1")).status_code == 202
                acknowledged.add(seq)
            filler = fill(data_dir)

            refused = None
            for _ in range(2000):  # the WAL's last free pages take a few commits; bounded
                seq += 1
                answer = running.push(_flip(seq, "disk-1"))
                if answer.status_code == 202:
                    acknowledged.add(seq)
                    continue
                if answer.status_code == 429:  # the daemon's request rate: back off as a push client does
                    seq -= 1
                    time.sleep(0.1)
                    continue
                refused = answer
                break
            assert refused is not None, "the disk never filled up"
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            assert "nothing was acknowledged" in refused.json()["detail"]

            ready = running.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["storeWritable"] is False and "full" in ready.json()["storeError"]
            again = running.push(_flip(seq, "disk-1"))
            assert again.status_code == 503 and "Retry-After" in again.headers
            # The head cursor a scrape shows is the newest committed change's, not one the full disk holds back.
            assert _scraped_head(running) == running.cp.changes(0, 10_000).changes[-1].cursor
            assert running.post("/api/instances", json={
                "instanceId": "new-one", "platform": "docker"}).status_code == 503

            filler.unlink()
            wait_until(lambda: running.get("/readyz").status_code == 200, timeout=20, interval=0.1,
                       message="the store commits again once the disk has room")
            for _ in range(5):
                seq += 1
                answer = running.push(_flip(seq, "disk-1"))
                assert answer.status_code == 202, answer.text
                acknowledged.add(seq)
            health = running.cp.health()
            assert all(health.core_alive.values()) and not health.escalated
            assert health.actor_restarts == 0  # the store retried inside itself

        with running_control_plane(data_dir) as restarted:
            changes = restarted.get("/api/status/changes", params={"limit": "1000"}).json()["changes"]
            logged = _logged_seqs(changes, "disk-1")
            assert acknowledged <= logged, sorted(acknowledged - logged)


def test_a_disk_found_full_by_readyz_alone_is_found_writable_again_by_itself(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", size="6m") as data_dir, running_control_plane(data_dir) as running:
        filler = fill(data_dir)
        # Each /readyz writes a heartbeat: the WAL's last free pages take a few of them.
        wait_until(lambda: running.get("/readyz").status_code == 503, timeout=20, interval=0.01,
                   message="/readyz finds the disk full")
        assert running.push(_flip(1, "disk-2")).status_code == 503
        filler.unlink()
        wait_until(lambda: running.get("/readyz").status_code == 200, timeout=20, interval=0.1,
                   message="the store finds it can write again, with nothing of its own to commit")
        assert running.push(_flip(1, "disk-2")).status_code == 202


def _failure(health: StoreHealth) -> str | None:
    """Read anew: a direct read after the assignment above is narrowed to str by mypy."""
    return health.failure


def test_a_store_actor_started_after_a_failing_one_does_not_inherit_its_refusal(tmp_path: Path) -> None:
    health = StoreHealth()
    health.failure = "the store cannot commit: database or disk is full"
    scheduler = Scheduler()
    store = StoreActor.start(path=str(tmp_path / "s.sqlite3"), retention=Retention(), scheduler=scheduler,
                             health=health)
    try:
        assert store.ask(CheckWritable(), timeout=5) is None
        assert _failure(health) is None and health.refusal() is None
    finally:
        store.stop()
        scheduler.stop()
