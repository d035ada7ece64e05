"""Headless Chromium for tests that look at the app as a person does (Playwright for Python, Debian's chromium).

Playwright's own browser download does not work on these machines; Debian's ``chromium`` package does, started
with flags that keep it off the network (without them it keeps trying to reach Google's hosts). Screenshots go
to ``screenshots/`` at the repository root (git-ignored) so a person can look at what the tests saw.

Where chromium or playwright is missing the browser tests are skipped with the reason, unless
``REQUIRE_BROWSER=1`` (set by ``.ci/run``), in which case they fail: CI must never skip them silently.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The Chromium binary to drive: ``CHROMIUM`` if set, else Debian's."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def require_browser() -> str:
    """The Chromium path, or skip (fail under ``REQUIRE_BROWSER=1``) saying what to install."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -r requirements-test.txt)")
    path = chromium_path()
    if path is None:
        missing.append("chromium (apt-get install -y chromium)")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator:
    """A fresh page in a new headless Chromium (closed on exit)."""
    from playwright.sync_api import sync_playwright

    executable = require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Save the whole page as ``screenshots/<name>.png`` and return the path."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_tab(page, url: str, tab: str) -> None:
    """Load the app and switch to the tab titled ``tab``."""
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name=tab).click()  # auto-waits until Gradio has rendered the tabs


def choose(page, elem_id: str, label: str) -> None:
    """Pick ``label`` in the Gradio dropdown ``#elem_id`` the way a person does: open it, click the option."""
    page.locator(f"#{elem_id} input[role=combobox]").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=label, exact=True).click()
    page.wait_for_function(
        f"document.querySelector('#{elem_id} input[role=combobox]').value === {label!r}", timeout=10_000)
