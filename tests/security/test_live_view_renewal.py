"""The live view outlives its tickets: with a 3 s ticket lifetime it keeps
its one WebSocket open for several lifetimes (renewing the ticket over it),
then still runs the example and cancels an execution. A real `nodedrop dev`
(API, scheduler, worker, events, gateway on Redis and PostgreSQL) in headless
Chromium; private ports, Redis prefix and database, removed afterwards."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from redis.asyncio import Redis

from nodedrop.common.auth import bearer_metadata
from nodedrop.execution.v1 import execution_pb2, execution_service_pb2, execution_service_pb2_grpc
from nodedrop.workflow.v1 import workflow_pb2
from tests.gateway.browser import ARTIFACTS, live_view, needs_chromium, run_the_example
from tests.helpers.ports import free_port

from .perimeter_stack import assert_clean, with_password

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

TICKET_TTL_S = 3
# Several lifetimes: without renewal every command would answer UNAUTHENTICATED.
HOLD_S = 4 * TICKET_TTL_S


@dataclass(frozen=True)
class DevSystem:
    gateway: str
    api: str
    api_key: str
    log: str


@pytest.fixture
async def dev_system(redis_url: str, empty_pg_dsn: str) -> AsyncIterator[DevSystem]:
    prefix = f"t-sec-lv-{secrets.token_hex(5)}"
    ports = {name: free_port() for name in ("API", "SCHEDULER", "EVENTS", "WORKER", "GATEWAY")}
    key = f"ndk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    env = {
        **os.environ,
        "REDIS_URL": with_password(redis_url),
        "DATABASE_URL": with_password(empty_pg_dsn),
        "NODEDROP_REDIS_PREFIX": prefix,
        "NODEDROP_API_KEY": key,
        "NODEDROP_METRICS_ADDR": "off",
        "NODEDROP_TICKET_TTL": f"{TICKET_TTL_S}s",
        "NODEDROP_AUTH_CACHE_TTL": "1s",
        "LOG_FORMAT": "json",
        **{f"NODEDROP_{name}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()},
    }
    log = ARTIFACTS / "live-view-renewal.log"
    ARTIFACTS.mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nodedrop.cli.main", "dev", env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{ports['GATEWAY']}"
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            for _ in range(150):
                if process.returncode is not None:
                    raise AssertionError(f"nodedrop dev exited:\n{log.read_text()}")
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the gateway did not come up:\n{log.read_text()}")
        yield DevSystem(url, f"127.0.0.1:{ports['API']}", key, str(log))
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        redis = Redis.from_url(redis_url)
        async for name in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(name)
        await redis.aclose()


async def _long_execution(system: DevSystem) -> str:
    """An execution that waits long enough to be cancelled from the page."""
    workflow = workflow_pb2.Workflow(
        name="long wait",
        nodes=[
            workflow_pb2.Node(id="start", type="manual_trigger", parameters_json="{}"),
            workflow_pb2.Node(
                id="hold", type="wait", parameters_json=orjson.dumps({"seconds": 60}).decode()
            ),
        ],
        connections=[
            workflow_pb2.Connection(
                source="start", source_output="main", target="hold", target_input="main"
            )
        ],
    )
    async with grpc.aio.insecure_channel(system.api) as channel:
        reply = await execution_service_pb2_grpc.ExecutionServiceStub(channel).ExecuteWorkflow(
            execution_service_pb2.ExecuteWorkflowRequest(
                workflow=workflow,
                trigger_data_json="[{}]",
                trigger_kind=execution_pb2.TRIGGER_KIND_MANUAL,
            ),
            metadata=bearer_metadata(system.api_key),
            timeout=10,
        )
    return str(reply.execution_id)


@pytest.mark.timeout(180)
async def test_live_view_renews_its_ticket_and_still_runs_and_cancels(
    dev_system: DevSystem,
) -> None:
    from playwright.async_api import expect  # noqa: PLC0415

    url = f"{dev_system.gateway}/#key={dev_system.api_key}"
    async with live_view(url, online_timeout_ms=20_000) as page:
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        # The socket opened before the listener: it counts as the first.
        await page.wait_for_timeout(HOLD_S * 1000)
        await expect(page.locator("#conn")).to_have_text("online")
        assert sockets == [], f"the live view reconnected instead of renewing: {sockets}"
        await run_the_example(page, node_timeout_ms=20_000)

        execution_id = await _long_execution(dev_system)
        # The console's list (a hash route: the same page and socket).
        await page.evaluate("location.hash = '#/executions'")
        row = page.locator(f'.exec-row[data-id="{execution_id}"]')
        await expect(row).to_have_count(1, timeout=15_000)
        await page.click(f'.exec-row[data-id="{execution_id}"] a')
        await expect(page.locator("#status")).to_have_attribute(
            "data-status", "running", timeout=15_000
        )
        await page.click("#cancel")
        await expect(page.locator("#status")).to_have_attribute(
            "data-status", "cancelled", timeout=15_000
        )
        assert sockets == [], f"the live view reconnected instead of renewing: {sockets}"
        notice = page.locator("#notice")
        if await notice.is_visible():
            assert "UNAUTHENTICATED" not in (await notice.text_content() or "")
    # Only the page's open saw tickets; nothing logged one or the key.
    logged = await asyncio.to_thread(Path(dev_system.log).read_text, errors="replace")
    assert_clean(logged, [dev_system.api_key])
