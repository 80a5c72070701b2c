"""The console in Debian's chromium against a region started by `steadymail up`: sign in,
import a CSV with bad rows, write and preview a template, send to 100 %, watch a killed
worker's restart alert arrive without a reload; axe-core on every page; the keyboard alone.
Screenshots of each page go to test-artifacts/console/."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import axe_violations, browser, mark_page, same_page, shot
from tests.e2e.conftest import up_env
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

CSV = (
    "email,first_name\n"
    "ann@example.com,Ann\n"
    "bob@example,Bob\n"
    "cat@example.com,Cat\n"
    "dan@example.com,Dan,too,many\n"
    "eve@example.com,Eve\n"
)


@dataclass
class Region:
    url: str
    key: str
    root: Path

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {self.key}"}, **kw
        )
        assert r.status_code < 400, r.text
        return r.json()

    def workers(self) -> list[dict[str, Any]]:
        return [w for w in self.api("GET", "/v1/workers") if w["service"] == "worker"]


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    root = tmp_path_factory.mktemp("console")
    env, ports = up_env(
        metrics_interval=1,
        monitor_interval=0.5,
        lease_ttl=6,
        restart_resolve_after=60,
        scanner_click_window=0,
        tracking_flush_interval=0.1,
    )
    log = open(root / "up.log", "wb")  # noqa: SIM115
    up = subprocess.Popen(
        [sys.executable, "-m", "steadymail", "up"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    key_file = root / ".steadymail" / "dev-api-key"
    try:
        wait_until(key_file.exists, timeout=60)
        r = Region(f"http://127.0.0.1:{ports.api}", key_file.read_text().strip(), root)

        def ready() -> bool:
            try:
                return len(r.workers()) == 2
            except (httpx.HTTPError, AssertionError):
                return False

        wait_until(ready, timeout=60, interval=0.3)
        yield r
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium: Browser, region: Region) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(15_000)
    blocked: list[str] = []

    def watch(text: str) -> None:
        # The console's own policy names 'self'; a captured mail's frame blocking its tracking
        # pixel (img-src data:) is that frame's policy doing its job.
        if "Content Security Policy" in text and "'self'" in text:
            blocked.append(text)

    p.on("console", lambda m: watch(m.text))
    yield p
    context.close()
    assert not blocked, f"the CSP blocked something the console needs: {blocked}"


def sign_in(page: Page, region: Region) -> None:
    page.goto(region.url + "/ui/")
    expect(page).to_have_url(region.url + "/ui/login?next=%2Fui%2F")
    page.fill("#api_key", region.key)
    page.click("form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Region R1")


def test_import_template_preview_and_a_send_to_100_percent(page: Page, region: Region) -> None:
    page.goto(region.url + "/ui/login")
    assert axe_violations(page) == []
    shot(page, "01-sign-in")
    sign_in(page, region)
    # A list, and a CSV with two bad rows: both reported by line, the good rows kept.
    page.click("nav >> text=Lists")
    page.fill("#list-name", "newsletter")
    page.get_by_role("button", name="Create list", exact=True).click()
    expect(page.locator("h1")).to_have_text("List newsletter")
    csv = region.root / "contacts.csv"
    csv.write_text(CSV)
    page.set_input_files("#csv-file", str(csv))
    page.get_by_role("button", name="Import", exact=True).click()
    report = page.locator("#import-report")
    expect(report).to_contain_text("3 imported")
    expect(report.locator("table.errors tbody tr")).to_have_count(2)
    expect(report.locator("table.errors")).to_contain_text("3")
    expect(report.locator("table.errors")).to_contain_text("5")
    shot(page, "02-import-with-bad-rows")
    # A template with a mistake: the error names its line; fixed, the preview renders for Cat.
    page.click("nav >> text=Templates")
    page.get_by_role("link", name="New template").click()
    page.fill("#t-name", "welcome")
    page.fill("#t-subject", "Hello {{ first_name }}")
    page.fill("#t-html", "<h1>Welcome</h1>\n<p>Hi {{ first_name }</p>")
    expect(page.locator("#template-check")).to_contain_text("line 2")
    page.fill(
        "#t-html",
        '<h1>Welcome</h1>\n<p>Hi {{ first_name }}, read <a href="https://example.com/n">this</a>'
        "</p>",
    )
    page.select_option("#p-list", "newsletter")
    page.fill("#p-email", "cat@example.com")
    expect(page.locator("#template-check")).to_contain_text("Subject: Hello Cat")
    frame = page.frame_locator("iframe[name=preview]")
    expect(frame.locator("p")).to_contain_text("Hi Cat")
    shot(page, "03-template-preview")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".status.good")).to_contain_text("Saved")
    # A campaign started now; its page shows it reach 100 % without a reload.
    page.click("nav >> text=Sends")
    page.fill("#c-name", "welcome-wave")
    page.select_option("#c-list", "newsletter")
    page.select_option("#c-template", label="welcome")
    page.fill("#c-from", "News <news@example.com>")
    page.check("input[name=when][value=now]")
    page.get_by_role("button", name="Create campaign", exact=True).click()
    expect(page.locator("h1")).to_contain_text("welcome-wave")
    mark_page(page)
    expect(page.locator("#send-live .pct")).to_have_text("100.0%", timeout=60_000)
    expect(page.locator("#send-live .state")).to_have_text("completed")
    assert same_page(page), "the progress arrived without a reload"
    shot(page, "04-send-complete")
    # The messages in the capture server's inbox, the HTML in a sandboxed frame.
    page.click("nav >> text=Captured mail")
    page.get_by_role("link", name="Hello Cat").click()
    expect(page.frame_locator("iframe.mail").locator("p")).to_contain_text("Hi Cat")
    expect(page.locator("pre.source").first).to_contain_text("List-Unsubscribe")
    shot(page, "05-captured")
    # Cat clicks the tracked link: the send's page counts it per link and draws it over time.
    link = page.frame_locator("iframe.mail").locator("a").first.get_attribute("href")
    assert link and "/t/c/" in link
    assert httpx.get(link, follow_redirects=False).status_code == 302
    page.go_back()
    page.click("nav >> text=Sends")
    page.get_by_role("link", name="welcome-wave").click()
    expect(page.locator("#send-live")).to_contain_text("https://example.com/n", timeout=15_000)
    page.reload()
    expect(page.locator("[data-chart=engagement] canvas")).to_be_visible()
    shot(page, "07-send-engagement")


def test_a_killed_worker_s_restart_alert_appears_without_a_reload(
    page: Page, region: Region
) -> None:
    sign_in(page, region)
    mark_page(page)
    victim = region.workers()[0]
    os.kill(victim["pid"], signal.SIGKILL)
    alerts = page.locator("#live-overview .alerts")
    expect(alerts).to_contain_text("service_restarted", timeout=30_000)
    slot = page.locator("#live-overview tr", has_text=victim["slot"])
    expect(slot.locator("td").nth(3)).to_have_text("1")
    expect(slot.locator("td").nth(6)).to_contain_text("SIGKILL")
    assert same_page(page), "the alert arrived without a reload"
    shot(page, "06-overview-restart-alert")


def _pages(region: Region) -> list[tuple[str, str]]:
    send = region.api("GET", "/v1/sends")[-1]["id"]
    alert = region.api("GET", "/v1/alerts")[0]["id"]
    captured = region.api("GET", "/v1/captured")[0]["id"]
    template = region.api("GET", "/v1/templates")[0]["id"]
    series = region.api("GET", "/v1/metrics/series")[0]
    return [
        ("overview", "/ui/"),
        ("sends", "/ui/sends"),
        ("send", f"/ui/sends/{send}"),
        ("lists", "/ui/lists"),
        ("list", "/ui/lists/newsletter"),
        ("suppressions", "/ui/suppressions"),
        ("templates", "/ui/templates"),
        ("template-edit", f"/ui/templates/{template}"),
        ("captured-list", "/ui/captured"),
        ("captured-one", f"/ui/captured/{captured}"),
        ("alerts", "/ui/alerts"),
        ("alert", f"/ui/alerts/{alert}"),
        ("metrics", "/ui/metrics"),
        ("metric", f"/ui/metrics/series?name={series}"),
        ("error-page", "/ui/sends/999999"),
    ]


def test_every_page_passes_axe_and_draws_its_charts(page: Page, region: Region) -> None:
    wait_until(lambda: region.api("GET", "/v1/alerts"), timeout=30)
    sign_in(page, region)
    # The check can fail: an image without a text alternative is a critical violation.
    page.set_content('<html lang="en"><title>t</title><main><img src="x.png"></main></html>')
    assert [v["id"] for v in axe_violations(page)] == ["image-alt"]
    failures = {}
    for name, path in _pages(region):
        page.goto(region.url + path)
        for chart in page.locator("[data-chart]").all():
            expect(chart).to_have_attribute("data-drawn", "1")
        found = axe_violations(page)
        if found:
            failures[name] = found
        shot(page, f"page-{name}")
    assert not failures, failures


def test_signing_in_and_acknowledging_an_alert_with_the_keyboard_alone(
    page: Page, region: Region
) -> None:
    alert = region.api("GET", "/v1/alerts", params={"state": "firing"})[0]["id"]
    page.goto(region.url + f"/ui/alerts/{alert}")
    # The key field has the focus as the page opens (autofocus): type, Enter.
    assert page.evaluate("document.activeElement.id") == "api_key"
    page.keyboard.type(region.key)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text(f"Alert #{alert}")

    def focus(label: str) -> None:
        for _ in range(80):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == label:
                return
        raise AssertionError(f"{label!r} is not reachable with Tab")

    focus("Acknowledge")
    page.keyboard.press("Enter")
    expect(page.locator(".facts")).to_contain_text("Acknowledged")
