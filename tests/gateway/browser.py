"""Headless Chromium for the live-view tests: Debian's chromium through
Playwright (never `playwright install`); a machine without it skips."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
# The nodes of the example the live view's Run button submits.
EXAMPLE_NODES = ["start", "pause", "big", "vip", "std", "all"]

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} not installed (apt-get install chromium)",
)

_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.asynccontextmanager
async def live_view(url: str, online_timeout_ms: int) -> AsyncIterator[Any]:
    """The live view at ``url``, connected; fails if the page threw any error."""
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url)
            await expect(page.locator("#conn")).to_have_text("online", timeout=online_timeout_ms)
            yield page
            assert errors == []
        finally:
            await browser.close()


async def run_the_example(page: Any, node_timeout_ms: int) -> None:
    """Clicks Run and waits for every node, then the execution, to show completed."""
    from playwright.async_api import expect  # noqa: PLC0415

    await page.click("#run")
    for node in EXAMPLE_NODES:
        await expect(page.locator(f'.node[data-node="{node}"]')).to_have_attribute(
            "data-status", "completed", timeout=node_timeout_ms
        )
    await expect(page.locator("#status")).to_have_attribute(
        "data-status", "completed", timeout=10_000
    )
