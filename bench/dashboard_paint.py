"""Dashboard first paint: how long the instances table takes to appear with 10,000 instances.

    python -m bench.dashboard_paint [--instances N] [--loads L] [--quick] [--json]

One control plane (ControlPlane + falcon app + waitress on 127.0.0.1, 8 threads), a daemon identity with a rate
high enough to create the instances quickly (Docker instances, each created by its first update, in batches of
500), and an admin key. Headless Chromium (Debian's, through Playwright) signs in once, then loads ``/ui``
``loads`` times; each load's figure is the page's ``draas-first-paint`` mark (app.js: the frame after the table was
drawn), in ms from the start of the navigation. That covers the page, its modules, GET /ui/session, GET
/api/instances (every instance) and drawing the first page of 100 rows.

Target: the slowest load paints in at most 2,000 ms.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from playwright.sync_api import sync_playwright

from draas_actors.api.app import create_app
from draas_actors.messages import StatusChanged
from draas_actors.security import (
    ADMIN,
    AuthSettings,
    Credential,
    SecuritySettings,
    daemon_identity,
    hash_key,
    operator_identity,
)

from .chromium import launch
from .compare import ms
from .plane import served_control_plane
from .stats import median

FULL_INSTANCES = 10_000
QUICK_INSTANCES = 10_000  # the size: creating them takes seconds, so the quick run measures it too
FULL_LOADS = 5
QUICK_LOADS = 2
BATCH = 500
TARGET_MS = 2000.0
PAINT_MARK = "draas-first-paint"
STATUSES = ("Running", "Failed", "Stopped", "Restarting")

Say = Callable[[str], None]


@dataclass(frozen=True)
class PaintResult:
    instances: int
    listed: int  # instances GET /api/instances returned
    list_ms: list[float]  # GET /api/instances alone, from Python (the server's share of a load)
    list_bytes: int
    paint_ms: list[float]  # each load's draas-first-paint mark
    rows: int  # rows the table drew (one page)

    @property
    def passed(self) -> bool:
        return self.listed == self.instances and self.rows > 0 and max(self.paint_ms) <= TARGET_MS

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": "dashboard_paint", "instances": self.instances, "listed": self.listed,
            "list_ms": {"median": median(self.list_ms), "min": min(self.list_ms), "max": max(self.list_ms)},
            "list_bytes": self.list_bytes,
            "first_paint_ms": {"median": median(self.paint_ms), "min": min(self.paint_ms), "max": max(self.paint_ms)},
            "target": f"slowest first paint <= {TARGET_MS:g} ms", "rows": self.rows, "passed": self.passed,
            "samples_ms": {"list": self.list_ms, "first_paint": self.paint_ms},
        }


def _ignore(_: StatusChanged) -> None:
    """served_control_plane's subscriber: this benchmark reads the API, not the bus."""


def _create(base_url: str, key: str, instances: int) -> None:
    with requests.Session() as session:
        for first in range(0, instances, BATCH):
            body = [
                {"instanceId": f"dash-{k:05d}", "platform": "docker", "source": "bench",
                 "status": STATUSES[k % len(STATUSES)]}
                for k in range(first, min(first + BATCH, instances))
            ]
            response = session.post(base_url + "/api/status/updates", json=body, headers={"X-API-Key": key},
                                    timeout=60)
            response.raise_for_status()


def run(*, instances: int = FULL_INSTANCES, loads: int = FULL_LOADS, say: Say | None = None) -> PaintResult:
    progress = say or (lambda _: None)
    daemon_key, admin_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    rate = float(instances * 10)
    security = SecuritySettings(auth=AuthSettings(credentials=(
        Credential(identity=daemon_identity("bench", rate=rate, burst=instances, request_rate=rate),
                   key_hashes=(hash_key(daemon_key),)),
        Credential(identity=operator_identity("admin", ADMIN), key_hashes=(hash_key(admin_key),)),
    )))
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp, served_control_plane(
        pathlib.Path(tmp), lambda cp: create_app(cp, security=security), _ignore, threads=8,
    ) as plane:
        progress(f"creating {instances} instances ...")
        _create(plane.base_url, daemon_key, instances)
        list_ms: list[float] = []
        listed, size = 0, 0
        for _ in range(3):
            started = time.perf_counter()
            response = requests.get(plane.base_url + "/api/instances", headers={"X-API-Key": admin_key}, timeout=60)
            list_ms.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            listed, size = len(response.json()["instances"]), len(response.content)
        progress(f"loading /ui {loads} times in headless Chromium ...")
        paint_ms: list[float] = []
        rows = 0
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(plane.base_url + "/ui/signin")
                page.get_by_label("Operator API key").fill(admin_key)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/ui")
                for _ in range(loads):
                    page.goto(plane.base_url + "/ui")
                    page.wait_for_function(f"() => performance.getEntriesByName('{PAINT_MARK}').length > 0",
                                           timeout=60_000)
                    paint_ms.append(page.evaluate(f"() => performance.getEntriesByName('{PAINT_MARK}')[0].startTime"))
                    rows = page.locator("#rows tr").count()
            finally:
                browser.close()
    return PaintResult(instances=instances, listed=listed, list_ms=list_ms, list_bytes=size, paint_ms=paint_ms,
                       rows=rows)


def render(result: PaintResult) -> str:
    paint = result.paint_ms
    return "\n".join([
        f"dashboard first paint: {result.instances} instances, /ui loaded {len(paint)} times in headless Chromium",
        (f"  first paint       median {ms(median(paint)):>9}   min {ms(min(paint)):>9}   max {ms(max(paint)):>9}"
         f"   (target <= {TARGET_MS:g} ms)"),
        (f"  GET /api/instances median {ms(median(result.list_ms)):>9}   ({result.listed} instances, "
         f"{result.list_bytes / 1e6:.1f} MB)"),
        f"  rows drawn: {result.rows} (one page)",
        "overall: " + ("PASS" if result.passed else "MISS"),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_paint", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int)
    parser.add_argument("--loads", type=int)
    parser.add_argument("--quick", action="store_true", help="fewer loads (a smoke run)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(
        instances=args.instances or (QUICK_INSTANCES if args.quick else FULL_INSTANCES),
        loads=args.loads or (QUICK_LOADS if args.quick else FULL_LOADS),
        say=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(json.dumps(result.to_json()) if args.json else render(result))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
