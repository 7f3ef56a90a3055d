"""Take the README's screenshot of the dashboard: docs/dashboard.png.

    .venv/bin/python scripts/dashboard_screenshot.py [docs/dashboard.png]

Starts a control plane of its own (a temporary data dir, 127.0.0.1 and a free port), registers three local
processes and has a daemon key report a few Docker containers and Kubernetes pods, signs in with headless
Chromium (Debian's, scripts/ensure-chromium.sh) and saves the page. Everything it started is stopped at the end.
"""
from __future__ import annotations

import pathlib
import secrets
import sys
import tempfile

import requests
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chromium import launch  # noqa: E402
from draas_actors.api.app import create_app  # noqa: E402
from draas_actors.api.server import HttpServer  # noqa: E402
from draas_actors.system import ControlPlane, SystemSettings  # noqa: E402

PROCESSES = {
    "billing-worker": "import time; time.sleep(3600)",
    "mail-relay": "import time; time.sleep(3600)",
    "report-cron": "import sys, time; time.sleep(1); sys.exit(3)",
}
PUSHED = [
    ("web-frontend-1", "docker", "Running"), ("web-frontend-2", "docker", "Running"),
    ("redis-cache", "docker", "Stopped"), ("search-indexer", "docker", "Failed"),
    ("shop-api-7d9f-abcde", "kubernetes", "Running"), ("shop-api-7d9f-fghij", "kubernetes", "Restarting"),
    ("shop-worker-5c4b-klmno", "kubernetes", "Running"), ("shop-queue-0", "kubernetes", "Unhealthy"),
]


def main(argv: list[str]) -> int:
    target = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "dashboard.png"
    daemon_key, operator_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="draas-screenshot-") as tmp:
        cp = ControlPlane(SystemSettings(data_dir=pathlib.Path(tmp)))
        cp.start()
        server = None
        try:
            app = create_app(cp, daemon_keys=(daemon_key,), operator_keys=(operator_key,))
            server = HttpServer(app, host="127.0.0.1", port=0, threads=8, streams=cp.streams).start()
            url = f"http://127.0.0.1:{server.port}"
            for name, code in PROCESSES.items():
                body = {"instanceId": name, "platform": "process", "process": {"command": [sys.executable, "-c", code]},
                        "restartPolicy": {"initialBackoff": 2}}
                requests.post(url + "/api/instances", json=body, headers={"X-API-Key": operator_key},
                              timeout=10).raise_for_status()
            updates = [{"instanceId": i, "platform": p, "status": s, "source": "screenshot"} for i, p, s in PUSHED]
            requests.post(url + "/api/status/updates", json=updates, headers={"X-API-Key": daemon_key},
                          timeout=10).raise_for_status()
            with sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 720}, color_scheme="light")
                    page.goto(url + "/ui/signin")
                    page.get_by_label("Operator API key").fill(operator_key)
                    page.get_by_role("button", name="Sign in").click()
                    page.wait_for_selector("#connection[data-state='live']")
                    # report-cron exits with code 3 every second: its row shows the exit code, reason and restarts.
                    page.wait_for_function(
                        """() => {
                          const row = document.querySelector("tr[data-id='report-cron']");
                          return row !== null && row.children[5].textContent === "3";
                        }""",
                        timeout=15_000,
                    )
                    page.screenshot(path=str(target))
                finally:
                    browser.close()
        finally:
            if server is not None:
                server.stop()
            cp.stop(stop_processes=True, timeout=5.0)
    print(f"saved {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
