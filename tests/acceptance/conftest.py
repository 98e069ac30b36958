"""Acceptance suites: the product end to end (processes, browser, outages).

They share the integration suites' fixtures; the database ones are in tests/conftest.py. The
browser suites share one Chromium per module (`browser`) and a fresh tab per test (`page`); a
suite with other needs defines its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.conftest import catalog_path, clock, conn
from tests.integration.web_browser_helpers import CHROMIUM_ARGS, chromium_executable

__all__ = ["browser", "catalog_path", "clock", "conn", "page"]

# long enough for a page polled every few seconds on a loaded machine
BROWSER_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=chromium_executable(driver), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield tab
    context.close()
