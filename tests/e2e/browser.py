"""Debian's chromium driven by Playwright for the console's tests, with axe-core's check and
screenshots kept as artefacts (test-artifacts/console/)."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

from tests.helpers import need

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = ROOT / "test-artifacts" / "console"
# Chromium as root, headless, with nothing that reaches for the (closed) network.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium() -> str:
    path = shutil.which("chromium") or ""
    need("CHROMIUM", bool(path), "Debian's chromium (scripts/ensure-chromium installs it)")
    need("CHROMIUM", AXE.exists(), "axe-core in .cache/npm (scripts/ensure-chromium)")
    return path


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot kept for people to look at (CI keeps the folder)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        # Evaluated by the driver: the page's CSP (no inline scripts) does not apply to it.
        page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.map(n => n.html).slice(0, 3)}));
        }"""
    )
    return found


def mark_page(page: Page) -> None:
    """Tag the loaded document; `same_page` is true until the page reloads or navigates."""
    page.evaluate("window.__steadymail_mark = 1")


def same_page(page: Page) -> bool:
    return bool(page.evaluate("window.__steadymail_mark === 1"))
