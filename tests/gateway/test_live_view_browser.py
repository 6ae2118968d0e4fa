"""The live view in headless Chromium: run the example and watch every node complete.

Uses Debian's chromium through Playwright (never `playwright install`); CI
installs the package, a machine without it skips with the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import KEY_A, GatewayStack

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
EXAMPLE_NODES = ["start", "pause", "big", "vip", "std", "all"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"{CHROMIUM} not installed (apt-get install chromium)",
    ),
]


async def test_live_view_runs_the_example_and_shows_every_node_completed(
    gw: GatewayStack,
) -> None:
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415

    gw.executions.node_delay_s = 0.15
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{gw.http}/#key={KEY_A}")
            await expect(page.locator("#conn")).to_have_text("online", timeout=10_000)
            await page.click("#run")
            for node in EXAMPLE_NODES:
                await expect(page.locator(f'.node[data-node="{node}"]')).to_have_attribute(
                    "data-status", "completed", timeout=10_000
                )
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "completed", timeout=10_000
            )
            await expect(page.locator("#executions li")).to_have_count(1, timeout=10_000)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "live-view.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()
