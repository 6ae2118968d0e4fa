"""The README's first run, in headless Chromium on `nodedrop dev`: sign in
with the key, watch examples/restock.json fail while its server is down,
start the server, retry from the failed node in the console, see it complete."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToDict

from nodedrop.contract.workflow import to_proto

from .browser import CHROMIUM, needs_chromium
from .system import LiveSystem
from .test_console_system import IMG, _connect

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_first_run_fail_retry_from_the_console_complete(live_system: LiveSystem) -> None:
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415

    port = _free_port()
    document = json.loads((EXAMPLES / "restock.json").read_text())
    document["nodes"][1]["parameters"]["url"] = f"http://127.0.0.1:{port}/order_pipeline.input.json"
    workflow = MessageToDict(to_proto(document))
    headers = {"Authorization": f"Bearer {live_system.api_key}"}
    async with httpx.AsyncClient(
        base_url=live_system.gateway, headers=headers, timeout=10
    ) as client:
        # `nodedrop workflows create examples/restock.json`
        await _connect(client, "workflow.v1.WorkflowService/CreateWorkflow", {"workflow": workflow})

    server = None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(live_system.gateway)
            await page.fill("#key", live_system.api_key)
            await page.click("#login button")
            await expect(page.locator("#conn")).to_have_text("online", timeout=15_000)
            assert live_system.api_key not in page.url

            await page.click("nav a[data-page=workflows]")
            await page.click('.workflow-row:has-text("restock") a')
            await page.click("#w-run button")
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "failed", timeout=20_000
            )
            failed = await page.locator("#d-title").inner_text()
            await expect(page.locator('g.gnode[data-node="stock"]')).to_have_attribute(
                "data-status", "failed", timeout=10_000
            )
            await expect(page.locator('g.gnode[data-node="count"]')).to_have_attribute(
                "data-status", "not_run"
            )

            server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "http.server",
                str(port),
                "--bind",
                "127.0.0.1",
                "--directory",
                str(EXAMPLES),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            async with httpx.AsyncClient() as probe:
                for _ in range(100):
                    try:
                        await probe.get(f"http://127.0.0.1:{port}/")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)

            await page.click("#retry-failed")
            await expect(page.locator("#d-meta")).to_contain_text(
                f"retry of {failed}", timeout=10_000
            )
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "completed", timeout=20_000
            )
            await expect(page.locator('g.gnode[data-node="count"]')).to_have_attribute(
                "data-status", "completed"
            )
            await page.click('.node[data-node="count"] button[data-port="main"]')
            orders = len(json.loads((EXAMPLES / "order_pipeline.input.json").read_text()))
            await expect(page.locator('.node[data-node="count"] pre')).to_contain_text(
                f'"orders":{orders}'
            )
            await page.screenshot(path=str(IMG / "console-first-run.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()
            if server is not None:
                server.terminate()
                await server.wait()
