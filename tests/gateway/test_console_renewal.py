"""The console outlives its tickets: with 2-second tickets, one WebSocket
stays open for several lifetimes (renewed, never reopened) and still
delivers events live: the executions list shows a new execution and its
status changes as they happen (no poll runs while the list is live), and
an execution's page colours its nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from .browser import CHROMIUM, needs_chromium
from .system import nodedrop_dev
from .test_console_system import ORDERS, _connect, _execute

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]


async def test_console_renews_its_ticket_on_one_socket(
    redis: Redis, redis_url: str, empty_pg_dsn: str
) -> None:
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415

    async with (
        nodedrop_dev(redis, redis_url, empty_pg_dsn, NODEDROP_TICKET_TTL="2s") as system,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
        )
        try:
            page = await browser.new_page()
            sockets: list[Any] = []
            renewals: list[str] = []

            def on_frame(payload: str | bytes) -> None:
                if '"renew"' in str(payload):
                    renewals.append(str(payload))

            def on_socket(ws: Any) -> None:
                sockets.append(ws)
                ws.on("framesent", on_frame)

            page.on("websocket", on_socket)
            await page.goto(f"{system.gateway}/#key={system.api_key}")
            await expect(page.locator("#conn")).to_have_text("online", timeout=15_000)
            await asyncio.sleep(7)  # three and a half ticket lifetimes
            assert len(renewals) >= 3
            assert len(sockets) == 1 and not sockets[0].is_closed()
            await expect(page.locator("#conn")).to_have_text("online")

            headers = {"Authorization": f"Bearer {system.api_key}"}
            async with httpx.AsyncClient(base_url=system.gateway, headers=headers) as client:
                wf = (
                    await _connect(
                        client,
                        "workflow.v1.WorkflowService/CreateWorkflow",
                        {"workflow": ORDERS},
                    )
                )["workflow"]
                # The list: a new execution appears at once (its EXECUTION_QUEUED
                # reads the page again), long before any poll would.
                await expect(page.locator("#x-live")).to_have_text("live")
                listed = await _execute(client, wf["id"], {"order": 0, "fail": False, "wait": 3})
                row = page.locator(f'.exec-row[data-id="{listed}"]')
                await expect(row).to_have_count(1, timeout=2_000)
                await expect(row).to_have_attribute("data-status", "running", timeout=5_000)
                # Its status changes with the list's reads held: only the pushed
                # EXECUTION_COMPLETED can turn it completed.
                held: list[Any] = []

                async def hold_read(route: Any) -> None:
                    held.append(route)

                await page.route("**/ListExecutions", hold_read)
                await expect(row).to_have_attribute("data-status", "completed", timeout=10_000)
                for route in held:
                    await route.continue_()
                await page.unroute("**/ListExecutions")
                slow = await _execute(client, wf["id"], {"order": 1, "fail": False, "wait": 3})
            await page.goto(f"{system.gateway}/#/executions/{slow}")
            # Live: the wait node is seen running, then done, over the same page's socket.
            hold = page.locator('g.gnode[data-node="hold"]')
            await expect(hold).to_have_attribute("data-status", "running", timeout=10_000)
            await expect(hold).to_have_attribute("data-status", "completed", timeout=10_000)
        finally:
            await browser.close()
