"""Headless Chromium for the page tests: Debian's ``chromium`` (``CHORUSLINE_CHROMIUM``
names another binary) driven by Playwright's sync API, which runs on a worker thread
beside the server's trio run."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect, sync_playwright

CHROMIUM = os.environ.get("CHORUSLINE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000  # a hang guard for each wait, not a speed
expect.set_options(timeout=WAIT_MS)


def with_browser(use: Callable[[Browser], None]) -> None:
    """Launch Chromium, hand it to ``use``, and close it however ``use`` ends."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            use(browser)
        finally:
            browser.close()


def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``CHORUSLINE_SCREENSHOTS`` (to refresh the docs' pictures),
    else the test's own temporary folder."""
    folder = Path(os.environ.get("CHORUSLINE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
