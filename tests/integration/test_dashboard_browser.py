"""The dashboard in headless Chromium against a real control plane: sign-in, the live table, actions by role,
the cross-site refusal and sign-out. Screenshots go to a temp folder, printed when a test fails."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from draas_actors.security import READ, AuthSettings, SecuritySettings, operator_identity
from tests.helpers import ProcessJanitor, RunningControlPlane, holds_for, running_control_plane, wait_until
from tests.integration.browser_support import CuttableProxy, Shots, browser, context, playwright, shots, sign_in
from tests.security_fixtures import credential, fixed_key

__all__ = ["browser", "context", "playwright", "shots"]  # fixtures, used by name

READER_KEY = fixed_key("dashboard-reader")
SECURITY = SecuritySettings(auth=AuthSettings(credentials=(credential(operator_identity("viewer", READ), READER_KEY),)))
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
DB = {"instanceId": "db-1", "platform": "docker", "source": "test"}  # a container, as a daemon reports it
ROW_DEADLINE_MS = 2000
PRINTER = [sys.executable, "-c", "import time\nfor i in range(10000):\n    print('line', i, flush=True)\n"
           "    time.sleep(0.1)"]  # the issue's: Failed and then Running in the row within 2 s of the kill

# Records each status the row of an instance shows, with the page's clock, across re-renders.
WATCH_ROW = """(id) => {
  window.draasSeen = [];
  window.draasNotReloaded = true;
  const rows = document.getElementById("rows");
  const look = () => {
    const row = rows.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    const since = row ? row.children[3].textContent : null;
    const status = row ? row.dataset.status : null;
    const last = window.draasSeen[window.draasSeen.length - 1];
    if (!last || last.status !== status || last.since !== since)
      window.draasSeen.push({ status, since, at: performance.now() });
  };
  new MutationObserver(look).observe(rows, { childList: true, subtree: true, attributes: true });
  look();
}"""


@pytest.fixture
def plane(tmp_path: Path, janitor: ProcessJanitor) -> Iterator[RunningControlPlane]:
    with running_control_plane(tmp_path / "data", janitor=janitor, security=SECURITY) as running:
        yield running


def register(plane: RunningControlPlane, instance_id: str) -> dict[str, Any]:
    return plane.register(
        {"instanceId": instance_id, "platform": "process", "process": {"command": SLEEPER}}
    )


def row(page: Page, instance_id: str) -> Any:
    return page.locator(f"tr[data-id='{instance_id}']")


def test_sign_in_lists_the_instances_with_counts_and_sign_out_ends_the_session(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    for name in ("web-1", "web-2"):
        register(plane, name)
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)
    for name in ("web-1", "web-2"):
        assert row(page, name).get_attribute("data-status") == "Running"
        assert row(page, name).locator(".badge").inner_text() == "Running"  # colour and text
    assert page.locator("#counts li[data-status='Running']").inner_text().endswith("2")
    assert plane.operator_key not in page.content() and plane.operator_key not in page.url
    cookie = next(c for c in context.cookies() if c["name"] == "draas_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    shots.take(page, "signed-in")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/signin")
    assert context.request.get(plane.base_url + "/api/instances").status == 401
    assert context.request.get(plane.base_url + "/ui/session").status == 401


def test_a_killed_process_turns_failed_then_running_in_its_row_within_2_s_without_a_reload(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    pid = register(plane, "worker")["runtime"]["pid"]
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)
    page.evaluate(WATCH_ROW, "worker")
    killed_at = page.evaluate("performance.now()")
    os.kill(pid, signal.SIGKILL)
    try:
        page.wait_for_function(
            """() => {
              const seen = window.draasSeen.map((s) => s.status);
              const failed = seen.indexOf("Failed");
              return failed >= 0 && seen.indexOf("Running", failed) > failed;
            }""",
            timeout=ROW_DEADLINE_MS,
        )
    except Exception:
        seen = page.evaluate("window.draasSeen")
        pytest.fail(f"the row showed {seen}; the change log has {plane.transitions('worker')}")
    finally:
        shots.take(page, "after-kill")
    seen = page.evaluate("window.draasSeen")
    assert page.evaluate("window.draasNotReloaded") is True  # the same document: no reload
    failed = next(s for s in seen if s["status"] == "Failed")
    running = next(s for s in seen if s["status"] == "Running" and s["at"] > failed["at"])
    # The restart itself takes milliseconds; the page holds each status on screen for MIN_DWELL_MS (app.js).
    print(f"row update after SIGKILL: Failed at {failed['at'] - killed_at:.0f} ms, "
          f"Running at {running['at'] - killed_at:.0f} ms")
    janitor_tracks_new_pid(plane, "worker")


def janitor_tracks_new_pid(plane: RunningControlPlane, instance_id: str) -> None:
    plane.wait_for(instance_id, lambda v: v["runtime"] is not None and v["status"] == "Running")


def test_restart_from_the_page_makes_a_change_appear(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    register(plane, "api-1")
    before = len(plane.changes("api-1"))
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)
    page.evaluate(WATCH_ROW, "api-1")
    page.get_by_role("button", name="restart api-1").click()
    wait_until(lambda: len(plane.changes("api-1")) > before, 5.0, 0.05, "the restart's changes")
    # The row follows: it shows the restart's statuses or at least a new "since", live.
    page.wait_for_function("() => window.draasSeen.length > 1", timeout=5000)
    janitor_tracks_new_pid(plane, "api-1")
    shots.take(page, "restarted")
    assert page.locator("#message").is_hidden()


def test_a_read_only_key_sees_the_table_but_no_action_buttons(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    register(plane, "web-1")
    page = context.new_page()
    sign_in(page, plane.base_url, READER_KEY)
    assert row(page, "web-1").get_attribute("data-status") == "Running"
    assert page.locator("button[data-action]").count() == 0
    assert page.locator("#admin").is_hidden()
    page.goto(plane.base_url + "/ui/instance?id=web-1")
    page.wait_for_selector("#record dd")
    assert page.locator("button[data-action]").count() == 0
    assert page.locator("#policy-form").is_hidden()
    shots.take(page, "read-only")


def test_a_cross_site_post_carrying_the_cookie_is_refused(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    register(plane, "web-1")
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)
    before = len(plane.changes("web-1"))
    session = context.request.get(plane.base_url + "/ui/session").json()
    url = plane.base_url + "/api/instances/web-1/restart"
    # The browser context's cookie rides along; the Origin is another site's, the CSRF token even right.
    cross_site = context.request.post(
        url, headers={"Origin": "https://evil.example", "X-Draas-CSRF": session["csrfToken"]}
    )
    assert cross_site.status == 403 and cross_site.json()["field"] == "Origin"
    no_token = context.request.post(url, headers={"Origin": plane.base_url})
    assert no_token.status == 403 and no_token.json()["field"] == "X-Draas-CSRF"
    holds_for(lambda: len(plane.changes("web-1")) == before, 0.3, message="no restart was committed")


def test_after_a_dropped_connection_the_table_says_reconnecting_and_catches_up_from_its_last_event_id(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    assert plane.push({**DB, "status": "Running"}).status_code == 202
    proxy = CuttableProxy(plane.server.port)
    try:
        page = context.new_page()
        sign_in(page, proxy.base_url, plane.operator_key)
        page.evaluate(WATCH_ROW, "db-1")
        # One event heard live: the stream's last event id is now the cursor of this change.
        assert plane.push({**DB, "status": "Stopped"}).status_code == 202
        page.wait_for_selector("tr[data-id='db-1'][data-status='Stopped']")
        proxy.cut()
        page.wait_for_selector("#connection[data-state='reconnecting']")
        # Changed while the page cannot hear: it must still see it, from the stream's replay after its last id.
        assert plane.push({**DB, "status": "Failed"}).status_code == 202
        page.wait_for_selector("#connection[data-state='live']")
        page.wait_for_selector("tr[data-id='db-1'][data-status='Failed']")
        assert page.evaluate("window.draasNotReloaded") is True
        streams = [r for r in proxy.requests if r.startswith(b"GET /api/status/stream")]
        cursor = plane.changes("db-1")[-2]["cursor"]  # the Stopped change, the last the page heard before the cut
        assert len(streams) >= 2 and f"last-event-id: {cursor}\r\n".encode() in streams[-1].lower(), streams
        shots.take(page, "caught-up")
    finally:
        proxy.stop()


def test_filters_search_and_sort_narrow_and_order_the_table(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    for name, platform, status in (("a-web", "docker", "Running"), ("b-pod", "kubernetes", "Failed"),
                                   ("c-web", "docker", "Stopped")):
        pushed = plane.push({"instanceId": name, "platform": platform, "status": status, "source": "t"})
        assert pushed.status_code == 202
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)

    def ids() -> list[str]:
        return [r.get_attribute("data-id") or "" for r in page.locator("#rows tr").all()]

    assert ids() == ["a-web", "b-pod", "c-web"]
    # A pod is started and stopped by scaling its Deployment (the API answers 409): its row offers restart only.
    def actions(instance: str) -> list[str]:
        buttons = page.locator(f'#rows tr[data-id="{instance}"] button[data-action]').all()
        return [b.get_attribute("data-action") or "" for b in buttons]

    assert actions("b-pod") == ["restart", "remove"]  # an admin key: remove too
    assert actions("a-web") == ["start", "stop", "restart", "remove"]
    page.get_by_role("button", name="Id").click()  # sorted by id already: a second press reverses it
    page.wait_for_function("() => document.querySelector('#rows tr').dataset.id === 'c-web'")
    assert ids() == ["c-web", "b-pod", "a-web"]
    page.get_by_label("Platform", exact=True).select_option("docker")
    assert sorted(ids()) == ["a-web", "c-web"]
    page.get_by_label("Status", exact=True).select_option("Stopped")
    assert ids() == ["c-web"]
    page.get_by_label("Platform", exact=True).select_option("")
    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Search by id").fill("pod")
    assert ids() == ["b-pod"]
    shots.take(page, "filtered")
    page.get_by_label("Search by id").fill("")
    # Keyboard only: Tab to the Id column's sort button and press Enter.
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.key") == "instanceId":
            break
    else:
        pytest.fail("Tab never reached the Id column's sort button")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#rows tr').dataset.id === 'a-web'")
    # The theme follows the system's setting.
    background = "() => getComputedStyle(document.body).backgroundColor"
    page.emulate_media(color_scheme="light")
    light = page.evaluate(background)
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(background) != light
    shots.take(page, "dark")


def test_the_instance_page_shows_the_record_and_timeline_and_an_admin_edits_the_policy(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    register(plane, "job-1")
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)
    page.get_by_role("link", name="job-1").click()
    page.wait_for_url("**/ui/instance?id=job-1")
    page.wait_for_selector("#timeline li")
    assert page.locator("#timeline li").count() == len(plane.changes("job-1")) >= 1
    assert "import time" in page.locator("#record").inner_text()  # the command
    assert not page.locator("#output-placeholder").is_visible()  # GET /api/instances/{id}/logs answers
    page.get_by_label("Max restarts").fill("3")
    page.get_by_role("button", name="Save restart policy").click()
    page.wait_for_selector("#message:has-text('Restart policy saved.')")
    assert plane.instance("job-1")["restartPolicy"]["maxRestarts"] == 3
    # Live: a restart from this page adds to its timeline without a reload.
    before = page.locator("#timeline li").count()
    page.get_by_role("button", name="restart", exact=True).click()
    page.wait_for_function(f"() => document.querySelectorAll('#timeline li').length > {before}")
    janitor_tracks_new_pid(plane, "job-1")
    shots.take(page, "instance")


def test_the_instance_page_shows_a_process_s_output_and_follows_it(
    plane: RunningControlPlane, context: BrowserContext, shots: Shots
) -> None:
    plane.register({"instanceId": "printer", "platform": "process", "process": {"command": PRINTER}})
    page = context.new_page()
    sign_in(page, plane.base_url, plane.operator_key)
    page.goto(plane.base_url + "/ui/instance?id=printer")
    page.wait_for_selector("#output-text:has-text('line 0')")
    shown = page.locator("#output-text").inner_text()
    page.get_by_label("Follow").check()
    # Follow mode appends what the process writes next, without a reload.
    page.wait_for_function(
        "(before) => document.getElementById('output-text').textContent.length > before + 40", arg=len(shown)
    )
    assert page.locator("#output-text").inner_text().startswith("line 0")
    shots.take(page, "output")
