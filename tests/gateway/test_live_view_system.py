"""End to end: `nodedrop dev` (real API, scheduler, worker, events, gateway on
Redis and PostgreSQL) driven from the live view in headless Chromium.

Private ports, Redis prefix and PostgreSQL database; all removed afterwards.
"""

from __future__ import annotations

import pytest

from .browser import ARTIFACTS, live_view, needs_chromium, run_the_example
from .system import LiveSystem

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]


async def test_live_view_on_the_real_system(live_system: LiveSystem) -> None:
    from playwright.async_api import expect  # noqa: PLC0415

    url = f"{live_system.gateway}/#key={live_system.api_key}"
    async with live_view(url, online_timeout_ms=15_000) as page:
        await run_the_example(page, node_timeout_ms=20_000)
        # Real outputs: the if node routed the two orders to its two ports,
        # counted per port; the merge's items are paged in on demand.
        big = page.locator('.node[data-node="big"] .ports')
        await expect(big).to_contain_text("false: 1", timeout=10_000)
        await expect(big).to_contain_text("true: 1")
        await page.click('.node[data-node="all"] button[data-port="main"]')
        await expect(page.locator('.node[data-node="all"] pre')).to_contain_text('"vip"')
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "live-view-system.png"), full_page=True)
