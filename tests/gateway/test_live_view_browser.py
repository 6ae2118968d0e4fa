"""The live view in headless Chromium: run the example and watch every node complete.

Uses Debian's chromium through Playwright (never `playwright install`); CI
installs the package, a machine without it skips with the reason.
"""

from __future__ import annotations

import pytest

from .browser import ARTIFACTS, live_view, needs_chromium, run_the_example
from .conftest import KEY_A, GatewayStack

pytestmark = [pytest.mark.browser, needs_chromium]


async def test_live_view_runs_the_example_and_shows_every_node_completed(
    gw: GatewayStack,
) -> None:
    from playwright.async_api import expect  # noqa: PLC0415

    gw.executions.node_delay_s = 0.15
    async with live_view(f"{gw.http}/#key={KEY_A}", online_timeout_ms=10_000) as page:
        await run_the_example(page, node_timeout_ms=10_000)
        await page.click("nav a[data-page=executions]")
        await expect(page.locator(".exec-row")).to_have_count(1, timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "live-view.png"), full_page=True)
