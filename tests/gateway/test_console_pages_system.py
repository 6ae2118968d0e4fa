"""The console's failed queue, schedules, workflows and stats pages in headless
Chromium on the real system (`nodedrop dev`). Screenshots: docs/console.md, Tests."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest

from .browser import live_view, needs_chromium
from .system import LiveSystem
from .test_console_system import IMG, ORDERS, _connect, _execute, _wait_status

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

HOOKED = {
    "name": "orders-hook",
    "nodes": [
        {
            "id": "hook",
            "type": "webhook_trigger",
            "parametersJson": json.dumps({"path": "orders-in"}),
        },
        {"id": "done", "type": "set", "parametersJson": json.dumps({"fields": {"ok": True}})},
    ],
    "connections": [{"source": "hook", "target": "done"}],
}


def flaky(port: int) -> dict[str, Any]:
    """One attempt at a server of the test: a refused connection is a retryable
    failure, so the execution is dead-lettered into the failed queue."""
    return {
        "name": "flaky",
        "nodes": [
            {"id": "start", "type": "manual_trigger", "parametersJson": "{}"},
            {
                "id": "call",
                "type": "http_request",
                "parametersJson": json.dumps(
                    {"url": f"http://127.0.0.1:{port}/ok", "timeout_s": 2}
                ),
            },
        ],
        "connections": [{"source": "start", "target": "call"}],
        "settings": {"maxAttempts": 1, "backoffS": 0},
    }


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _failed_jobs(client: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    for _ in range(150):
        jobs = await _connect(client, "admin.v1.QueueAdminService/ListFailedJobs", {"pageSize": 50})
        if len(jobs.get("jobs", [])) >= n:
            return list(jobs["jobs"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"fewer than {n} failed jobs: {jobs}")


async def test_console_failed_queue_schedules_workflows_and_stats(live_system: LiveSystem) -> None:
    from playwright.async_api import expect  # noqa: PLC0415

    headers = {"Authorization": f"Bearer {live_system.api_key}"}
    async with httpx.AsyncClient(
        base_url=live_system.gateway, headers=headers, timeout=10
    ) as client:
        wf = (
            await _connect(
                client, "workflow.v1.WorkflowService/CreateWorkflow", {"workflow": ORDERS}
            )
        )["workflow"]
        await _connect(client, "workflow.v1.WorkflowService/CreateWorkflow", {"workflow": HOOKED})
        down = (
            await _connect(
                client,
                "workflow.v1.WorkflowService/CreateWorkflow",
                {"workflow": flaky(closed_port())},
            )
        )["workflow"]
        bad = [await _execute(client, down["id"], {"order": n}) for n in range(3)]
        failing = await _execute(client, wf["id"], {"order": 1, "fail": True, "wait": 0})
        good = [
            await _execute(client, wf["id"], {"order": n, "fail": False, "wait": 0})
            for n in range(5)
        ]
        await _wait_status(client, [*bad, *good, failing], {"completed", "failed"})
        await _failed_jobs(client, 3)
        schedule = (
            await _connect(
                client,
                "admin.v1.QueueAdminService/CreateSchedule",
                {"workflowId": wf["id"], "cron": "0 0 1 1 *", "timezone": "UTC"},
            )
        )["schedule"]

        async with live_view(
            f"{live_system.gateway}/#key={live_system.api_key}", online_timeout_ms=15_000
        ) as page:
            # Failed queue: inspect, retry one, purge one, then purge all in two clicks.
            await page.click("nav a[data-page=failed]")
            jobs = page.locator(".job-row")
            await expect(jobs).to_have_count(3, timeout=10_000)
            await expect(page.locator(f'.job-row[data-id="{bad[0]}"] .reason')).to_contain_text(
                "connection attempts failed"
            )
            await page.screenshot(path=str(IMG / "console-failed.png"), full_page=True)
            await page.click(f'.job-row[data-id="{bad[0]}"] button:text("Retry")')
            await expect(page.locator("#q-result")).to_have_text("retried 1", timeout=10_000)
            await page.click(f'.job-row[data-id="{bad[1]}"] button:text("Purge")')
            await expect(page.locator("#q-result")).to_have_text("purged 1", timeout=10_000)
            await expect(page.locator(f'.job-row[data-id="{bad[1]}"]')).to_have_count(0)
            await page.click(f'.job-row[data-id="{bad[2]}"] a')
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "failed", timeout=10_000
            )
            await page.click("nav a[data-page=failed]")
            await expect(jobs.first).to_be_visible(timeout=10_000)
            await page.click("#q-purge-all")
            await expect(page.locator("#q-result")).to_have_text("")
            await page.click("#q-purge-all")
            await expect(page.locator("#q-result")).to_contain_text("purged", timeout=10_000)
            await expect(page.locator("#q-empty")).to_be_visible(timeout=10_000)

            # Schedules: pause, resume, trigger now.
            await page.click("nav a[data-page=schedules]")
            row = page.locator(f'.schedule-row[data-id="{schedule["id"]}"]')
            await expect(row).to_have_attribute("data-paused", "false", timeout=10_000)
            await row.locator('[data-action="pause"]').click()
            await expect(row).to_have_attribute("data-paused", "true", timeout=10_000)
            await row.locator('[data-action="resume"]').click()
            await expect(row).to_have_attribute("data-paused", "false", timeout=10_000)
            await row.locator('[data-action="trigger-now"]').click()
            await expect(page.locator("#s-result a")).to_be_visible(timeout=10_000)
            await page.screenshot(path=str(IMG / "console-schedules.png"), full_page=True)
            await page.click("#s-result a")
            await expect(page.locator("#d-meta")).to_contain_text(
                "trigger schedule", timeout=10_000
            )

            # Workflows: versions, activate, deactivate, run with input.
            await page.click("nav a[data-page=workflows]")
            await page.click('.workflow-row:has-text("orders-hook") a')
            await expect(page.locator(".version-row")).to_have_count(1, timeout=10_000)
            await page.click('.version-row [data-action="activate"]')
            await expect(page.locator('.workflow-row:has-text("orders-hook")')).to_contain_text(
                "active v1", timeout=10_000
            )
            await page.click("#w-deactivate")
            await expect(page.locator('.workflow-row:has-text("orders-hook")')).to_contain_text(
                "inactive", timeout=10_000
            )
            # A workflow without a trigger to register is refused, with the API's reason.
            await page.click(f'.workflow-row[data-id="{wf["id"]}"] a')
            await page.click('.version-row [data-action="activate"]')
            await expect(page.locator("#notice")).to_contain_text(
                "nothing to activate", timeout=10_000
            )
            await page.fill("#w-input", '{"order": 42, "fail": false, "wait": 0}')
            await page.screenshot(path=str(IMG / "console-workflows.png"), full_page=True)
            await page.click("#w-run button")
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "completed", timeout=20_000
            )
            await page.click('.node[data-node="done"] button[data-port="main"]')
            await expect(page.locator('.node[data-node="done"] pre')).to_contain_text('"order":42')

            # Stats: this run's outcomes per minute, per workflow and per node,
            # from one GetExecutionStats call per refresh (its per-minute buckets).
            stats_calls: list[str] = []
            page.on(
                "request",
                lambda r: (
                    stats_calls.append(r.url) if r.url.endswith("/GetExecutionStats") else None
                ),
            )
            await page.click("nav a[data-page=stats]")
            await expect(
                page.locator('[data-chart="per-minute"] rect[data-outcome="failed"]').first
            ).to_be_visible(timeout=10_000)
            await expect(
                page.locator('[data-chart="per-minute"] rect[data-outcome="completed"]').first
            ).to_be_visible()
            await expect(page.locator(f'.stat-workflow[data-id="{wf["id"]}"]')).to_contain_text(
                "orders"
            )
            await expect(page.locator('.stat-node[data-node="reject"]')).to_contain_text("100.0%")
            assert len(stats_calls) == 1
            bars = page.locator('[data-chart="per-minute"] rect')
            per_minute = sum(
                int(c or 0)
                for c in await bars.evaluate_all("rects => rects.map((r) => r.dataset.count)")
            )
            total = await page.locator('[data-figure="total"] strong').text_content()
            assert per_minute == int(total or "-1")
            await page.click("#st-refresh")
            await expect(page.locator('[data-figure="total"] strong')).to_have_text(total or "")
            await asyncio.sleep(0.5)
            assert len(stats_calls) == 2
            await page.screenshot(path=str(IMG / "console-stats.png"), full_page=True)
