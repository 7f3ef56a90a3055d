"""run.py and its store, as an operator meets them: what was acknowledged survives a SIGKILL, and a damaged or
missing store stops the start in one line instead of being replaced by an empty one."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.e2e.conftest import REPO_ROOT, ControlPlaneProcess, RunPy, clean_environment
from tests.helpers import wait_until
from tests.mounts import tmpfs

CLIENTS = 4
ROUNDS = 15
BATCH = 50  # one of the clients pushes batches


def run_py_once(data_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "run.py", "--config", str(data_dir.parent / "empty.toml"), "--port", "0",
         "--data-dir", str(data_dir), *extra],
        cwd=REPO_ROOT, env=clean_environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=15, check=False,
    )
    return result, time.monotonic() - started


def test_a_damaged_store_stops_run_py_in_one_line_and_fresh_store_starts_it_afresh(
    run_py: RunPy, tmp_path: Path, config: Path
) -> None:
    (tmp_path / "empty.toml").write_text("")
    data_dir = tmp_path / "var"
    control_plane = run_py.start(config=config, data_dir=data_dir)
    for i in range(5):
        assert control_plane.request("POST", "/api/status/updates", key=control_plane.daemon_key, json={
            "instanceId": f"web-{i}", "status": "Running", "source": "e2e", "platform": "docker",
        }).status_code == 202
    control_plane.process.kill()  # the commits are in the WAL, not checkpointed
    control_plane.process.wait(timeout=10)
    wal = data_dir / "draas.sqlite3-wal"
    content = bytearray(wal.read_bytes())
    content[12:16] = b"\xff\xff\xff\xff"  # the checkpoint sequence: the header's checksum no longer matches
    wal.write_bytes(bytes(content))

    refused, took = run_py_once(data_dir)

    assert refused.returncode == 2, refused.stderr
    assert took < 1.0 + 0.5  # under a second on a quiet machine; the margin is for a loaded one
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert str(data_dir / "draas.sqlite3") in lines[0] and "--fresh-store" in lines[0]

    fresh = run_py.start(config=config, data_dir=data_dir, extra_args=("--fresh-store",))
    assert fresh.instances() == []
    assert any(".aside-" in p.name for p in data_dir.iterdir())


def test_a_read_only_data_dir_stops_run_py_in_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    with tmpfs(tmp_path / "var", size="1m", read_only=True) as data_dir:
        refused, _ = run_py_once(data_dir)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert str(data_dir) in lines[0] and "not writable" in lines[0]


class Pusher(threading.Thread):
    """Pushes status flips for its own instance, each with a sequence number, and remembers what got a 202;
    with ``batch`` > 1 it sends that many flips per request, as a daemon drains its spool."""

    def __init__(self, url: str, key: str, name: str, stop: threading.Event, batch: int = 1) -> None:
        super().__init__(daemon=True)
        self.url, self.key, self.name, self.stop, self.batch = url, key, name, stop, batch
        self.acknowledged: list[int] = []
        self.outcomes: dict[int, str] = {}

    def _update(self, seq: int) -> dict[str, Any]:
        return {
            "instanceId": self.name, "status": "Running" if seq % 2 else "Stopped", "source": "e2e",
            "platform": "docker", "observedAt": time.time() + seq * 1e-6, "metadata": {"seq": str(seq)},
        }

    def run(self) -> None:
        session = requests.Session()
        for _ in range(100_000):  # bounded; the control plane is killed long before
            if self.stop.is_set():
                return
            # The next flips only once the last ones were acknowledged (a 429 or 503 is sent again), so that every
            # acknowledged update is a change of status, and so in the change log.
            seqs = [len(self.acknowledged) + 1 + i for i in range(self.batch)]
            body: Any = [self._update(seq) for seq in seqs] if self.batch > 1 else self._update(seqs[0])
            try:
                answer = session.post(
                    f"{self.url}/api/status/updates", headers={"X-API-Key": self.key}, json=body, timeout=5
                )
            except requests.RequestException:
                return  # killed under us
            if answer.status_code == 202:
                results = answer.json()["results"] if self.batch > 1 else [answer.json()]
                for seq, result in zip(seqs, results, strict=True):
                    self.acknowledged.append(seq)
                    self.outcomes[seq] = result["outcome"]


def _logged_seqs(control_plane: ControlPlaneProcess) -> dict[str, set[int]]:
    logged: dict[str, set[int]] = {}
    cursor = 0
    for _ in range(10_000):
        page: dict[str, Any] = control_plane.request("GET", "/api/status/changes", params={
            "after": cursor, "limit": 1000}).json()
        for change in page["changes"]:
            if "seq" in change["metadata"]:
                logged.setdefault(change["instanceId"], set()).add(int(change["metadata"]["seq"]))
        if not page["changes"]:
            return logged
        cursor = page["nextCursor"]
    raise AssertionError("the change feed did not end")


def test_every_acknowledged_update_survives_a_sigkill_at_a_random_moment(
    run_py: RunPy, tmp_path: Path, config: Path
) -> None:
    data_dir = tmp_path / "var"
    dice = random.Random(20261204)
    acknowledged: dict[str, set[int]] = {}
    outcomes: dict[str, dict[int, str]] = {}
    for round_ in range(ROUNDS):
        control_plane = run_py.start(config=config, data_dir=data_dir)
        stop = threading.Event()
        pushers = [
            Pusher(control_plane.url, control_plane.daemon_key, f"r{round_}-c{i}", stop, batch=BATCH if i == 0 else 1)
            for i in range(CLIENTS)
        ]
        for pusher in pushers:
            pusher.start()
        def first_acknowledged(group: list[Pusher] = pushers) -> bool:
            return sum(len(p.acknowledged) for p in group) >= 20

        wait_until(first_acknowledged, timeout=10, message="first 202s")
        time.sleep(dice.uniform(0.0, 0.3))  # the random moment of the kill is the point of the test
        control_plane.process.send_signal(signal.SIGKILL)
        control_plane.process.wait(timeout=10)
        stop.set()
        for pusher in pushers:
            pusher.join(timeout=10)
            acknowledged[pusher.name] = set(pusher.acknowledged)
            outcomes[pusher.name] = pusher.outcomes

    survivor = run_py.start(config=config, data_dir=data_dir)
    logged = _logged_seqs(survivor)
    lost = {name: sorted(seqs - logged.get(name, set())) for name, seqs in acknowledged.items()}
    assert all(not seqs for seqs in lost.values()), (
        {name: [(seq, outcomes[name][seq]) for seq in seqs] for name, seqs in lost.items() if seqs}
    )
    assert sum(len(seqs) for seqs in acknowledged.values()) >= ROUNDS * 20
