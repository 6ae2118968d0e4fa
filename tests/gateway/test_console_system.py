"""The console in headless Chromium on the real system (`nodedrop dev`):
20 executions, one failing and one cancelled from the console; filters;
the detail's graph, errors, items and retry; cursor pages over 10,000
executions inserted through the repository. Screenshots: docs/console.md, Tests."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from nodedrop.api.model import NewExecution
from nodedrop.api.repository_pg import PostgresRepository

from .browser import live_view, needs_chromium
from .system import LiveSystem

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

# The screenshots of docs/ are rewritten only when asked for
# (NODEDROP_SCREENSHOTS=1): a test run leaves the working tree as it was.
IMG = (
    Path(__file__).resolve().parents[2] / "docs" / "img"
    if os.environ.get("NODEDROP_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="nodedrop-screenshots-"))
)

# manual_trigger -> if failing? -> stop_and_error | wait (json.wait s) -> set
ORDERS = {
    "name": "orders",
    "nodes": [
        {"id": "start", "type": "manual_trigger", "parametersJson": "{}"},
        {"id": "check", "type": "if", "parametersJson": json.dumps({"condition": "json.fail"})},
        {
            "id": "reject",
            "type": "stop_and_error",
            "parametersJson": json.dumps({"message": "order {{ json.order }} rejected"}),
        },
        {"id": "hold", "type": "wait", "parametersJson": json.dumps({"seconds": "json.wait"})},
        {"id": "done", "type": "set", "parametersJson": json.dumps({"fields": {"ok": True}})},
    ],
    "connections": [
        {"source": "start", "target": "check"},
        {"source": "check", "sourceOutput": "true", "target": "reject"},
        {"source": "check", "sourceOutput": "false", "target": "hold"},
        {"source": "hold", "target": "done"},
    ],
}


async def _connect(client: httpx.AsyncClient, method: str, body: dict[str, Any]) -> Any:
    r = await client.post(f"/nodedrop.{method}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def _execute(client: httpx.AsyncClient, workflow_id: str, data: dict[str, Any]) -> str:
    r = await client.post(f"/api/workflows/{workflow_id}/execute", json=data)
    assert r.status_code == 202, r.text
    return str(r.json()["executionId"])


async def _wait_status(client: httpx.AsyncClient, ids: list[str], statuses: set[str]) -> None:
    for _ in range(300):
        got = [
            (
                await _connect(
                    client, "execution.v1.ExecutionService/GetExecution", {"executionId": i}
                )
            )["execution"]["status"]
            for i in ids
        ]
        if all(s.removeprefix("EXECUTION_STATUS_").lower() in statuses for s in got):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{ids} never reached {statuses}: {got}")


async def test_console_lists_filters_inspects_cancels_and_retries(
    live_system: LiveSystem,
) -> None:
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
        failing = await _execute(client, wf["id"], {"order": 7, "fail": True, "wait": 0})
        slow = await _execute(client, wf["id"], {"order": 8, "fail": False, "wait": 120})
        fine = [
            await _execute(client, wf["id"], {"order": n, "fail": False, "wait": 0})
            for n in range(18)
        ]
        await _wait_status(client, [*fine, failing], {"completed", "failed"})
        await _wait_status(client, [slow], {"running"})

        async with live_view(
            f"{live_system.gateway}/#key={live_system.api_key}", online_timeout_ms=15_000
        ) as page:
            rows = page.locator(".exec-row")
            await expect(rows).to_have_count(20, timeout=10_000)
            await expect(page.locator(f'.exec-row[data-id="{failing}"]')).to_have_attribute(
                "data-status", "failed"
            )
            await expect(page.locator(".exec-row").first).to_contain_text("orders v1")

            # Cancel the slow one from its detail; back on the list its badge is cancelled.
            await page.click(f'.exec-row[data-id="{slow}"] a')
            await expect(page.locator('g.gnode[data-node="hold"]')).to_have_attribute(
                "data-status", "running", timeout=10_000
            )
            await page.click("#cancel")
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "cancelled", timeout=10_000
            )
            await expect(page.locator('g.gnode[data-node="hold"]')).to_have_attribute(
                "data-status", "cancelled", timeout=10_000
            )
            await page.click("nav a[data-page=executions]")
            await expect(page.locator(f'.exec-row[data-id="{slow}"]')).to_have_attribute(
                "data-status", "cancelled", timeout=10_000
            )
            await page.screenshot(path=str(IMG / "console-executions.png"), full_page=True)

            # Filters: status, then workflow.
            await page.select_option("#f-status", "failed")
            await expect(rows).to_have_count(1, timeout=10_000)
            await expect(rows.first).to_have_attribute("data-id", failing)
            await page.select_option("#f-status", "cancelled")
            await expect(rows).to_have_count(1, timeout=10_000)
            await expect(rows.first).to_have_attribute("data-id", slow)
            await page.select_option("#f-status", "completed")
            await expect(rows).to_have_count(18, timeout=10_000)
            await page.select_option("#f-workflow", wf["id"])
            await expect(rows).to_have_count(18, timeout=10_000)
            await page.fill("#f-after", "2000-01-01T00:00")
            await page.fill("#f-before", "2001-01-01T00:00")
            await page.dispatch_event("#f-before", "change")
            await expect(page.locator("#x-empty")).to_be_visible(timeout=10_000)

            # Search by id opens the failed one: graph by status, the error with its code, items.
            await page.fill("#x-id", failing)
            await page.click("#x-search button")
            await expect(page.locator('g.gnode[data-node="reject"]')).to_have_attribute(
                "data-status", "failed", timeout=10_000
            )
            await expect(page.locator('g.gnode[data-node="check"]')).to_have_attribute(
                "data-status", "completed"
            )
            await expect(page.locator('g.gnode[data-node="hold"]')).to_have_attribute(
                "data-status", "not_run"
            )
            await expect(page.locator("#d-error")).to_contain_text("stop_and_error")
            await expect(page.locator("#d-error")).to_contain_text("order 7 rejected")
            await page.click('.node[data-node="check"] button[data-port="true"]')
            await expect(page.locator('.node[data-node="check"] pre')).to_contain_text('"order":7')
            await expect(page.locator("#d-events tr")).not_to_have_count(0)
            await page.screenshot(path=str(IMG / "console-execution.png"), full_page=True)

            # Retry from the start: a new execution, shown at once, retry of the first.
            await page.click("#retry-start")
            await expect(page.locator("#d-title")).not_to_have_text(failing, timeout=10_000)
            await expect(page.locator("#d-meta")).to_contain_text(
                f"retry of {failing}", timeout=10_000
            )
            await expect(page.locator("#status")).to_have_attribute(
                "data-status", "failed", timeout=20_000
            )
            retry = await page.locator("#d-title").inner_text()

            # The trigger filter: the retry is the one execution a retry started.
            await page.click("nav a[data-page=executions]")
            await page.fill("#f-after", "")
            await page.fill("#f-before", "")
            await page.select_option("#f-status", "")
            await page.select_option("#f-trigger", "retry")
            await expect(rows).to_have_count(1, timeout=10_000)
            await expect(rows.first).to_have_attribute("data-id", retry)
            await page.select_option("#f-trigger", "manual")
            await expect(rows).to_have_count(20, timeout=10_000)


async def test_console_pages_through_ten_thousand_executions(live_system: LiveSystem) -> None:
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
        first = await _execute(client, wf["id"], {"order": 0, "fail": False, "wait": 0})
        await _wait_status(client, [first], {"completed"})
    conn = await asyncpg.connect(live_system.database)
    try:
        tenant = await conn.fetchval("SELECT tenant_id FROM executions WHERE id = $1", first)
    finally:
        await conn.close()
    repo = await PostgresRepository.connect(live_system.database)
    try:
        now = datetime.now(UTC)
        batch = [
            NewExecution(
                id=f"bulk-{n:05d}-{uuid.uuid4().hex[:6]}",
                tenant_id=tenant,
                workflow_id=wf["id"],
                workflow_version=1,
                definition_json="{}",
                mode="queue",
                trigger_kind="manual",
                trigger_data_json="{}",
                max_attempts=1,
                priority=0,
                run_at=now,
                definition_is_version=True,
            )
            for n in range(10_000)
        ]
        await repo.insert_executions(batch)
    finally:
        await repo.close()
    # Finished at once, so recovery never hands them to the worker.
    conn = await asyncpg.connect(live_system.database)
    try:
        await conn.execute(
            "UPDATE executions SET status = 'completed' WHERE id LIKE 'bulk-%' AND tenant_id = $1",
            tenant,
        )
    finally:
        await conn.close()

    async with live_view(
        f"{live_system.gateway}/#key={live_system.api_key}", online_timeout_ms=15_000
    ) as page:
        rows = page.locator(".exec-row")
        await expect(rows).to_have_count(25, timeout=10_000)
        seen: list[str] = []
        for n in range(1, 5):
            await expect(page.locator("#x-page")).to_have_text(f"page {n}")
            ids = [await r.get_attribute("data-id") for r in await rows.all()]
            assert len(ids) == 25
            seen.extend(i for i in ids if i)
            await page.click("#x-older")
            await expect(page.locator("#x-page")).to_have_text(f"page {n + 1}", timeout=10_000)
        assert len(set(seen)) == 100  # no row twice across four pages
        await page.click("#x-newer")
        await expect(page.locator("#x-page")).to_have_text("page 4")
        ids = [await r.get_attribute("data-id") for r in await rows.all()]
        assert ids == seen[75:100]
        # A page chosen while a read for another is in flight: the late answer
        # never shows under the chosen page's label.
        held: list[Any] = []

        async def hold_read(route: Any) -> None:
            held.append(route)

        await page.route("**/ListExecutions", hold_read)
        await page.click("#x-newer")  # its read (page 3) is held
        for _ in range(100):
            if held:
                break
            await asyncio.sleep(0.05)
        await page.click("#x-older")  # back to page 4 while page 3's read is out
        for route in held:
            await route.continue_()
        await page.unroute("**/ListExecutions")
        shown: set[tuple[str, str | None]] = set()
        for _ in range(40):
            label, first = await page.evaluate(
                "[document.getElementById('x-page').textContent,"
                " document.querySelector('.exec-row')?.dataset.id ?? null]"
            )
            shown.add((label, first))
            await asyncio.sleep(0.025)
        assert shown == {("page 4", seen[75])}, shown
        await page.select_option("#f-status", "completed")
        await expect(page.locator("#x-page")).to_have_text("page 1", timeout=10_000)
        await expect(page.locator("#x-older")).to_be_enabled()
        await page.screenshot(path=str(IMG / "console-pages.png"), full_page=True)
