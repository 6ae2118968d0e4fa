"""Runners shared between tenants, on real runner processes: one tenant's flood
of slow code never holds every runner, and a runner that frees up goes to the
tenant holding the fewest, ahead of another's queue."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from nodedrop.engine.errors import CodeError
from nodedrop.sandbox import ProcessSandbox
from tests.sandbox.conftest import code_run

pytestmark = pytest.mark.asyncio(loop_scope="session")

MEMORY = 32 * 1024 * 1024
LOOP = "while (true) {}"


def _busy(sandbox: ProcessSandbox) -> int:
    """Runners on a CPU or waiting for one (running code, not idle on their pipe)."""
    count = 0
    for pid in sandbox.pids:
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/stat") as f:
            count += f.read().rsplit(")", 1)[1].split()[0] == "R"
    return count


async def _until_busy(sandbox: ProcessSandbox, runners: int) -> None:
    for _ in range(400):
        if _busy(sandbox) >= runners:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{runners} runners never got busy")


async def test_a_flooding_tenant_leaves_a_runner_to_the_others() -> None:
    sandbox = ProcessSandbox(3, MEMORY)  # at most 2 for one tenant, by default
    await sandbox.start()
    flood = [
        asyncio.create_task(sandbox.run(code_run(LOOP, cpu_ms=20_000, tenant="a")))
        for _ in range(6)
    ]
    try:
        await _until_busy(sandbox, 2)
        await asyncio.sleep(0.3)  # time for a third runner to be taken, if it could be
        assert _busy(sandbox) == 2
        out = await asyncio.wait_for(
            sandbox.run(code_run("return [{b: 1}]", tenant="b")), timeout=30
        )
        assert out.items == [{"b": 1}]
        # Tenant A's runs are all still running or waiting: B did not wait for them.
        assert not any(task.done() for task in flood)
    finally:
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
        await sandbox.close()


async def test_a_free_runner_goes_to_the_tenant_holding_fewest() -> None:
    sandbox = ProcessSandbox(2, MEMORY, per_tenant=2)
    await sandbox.start()
    order: list[str] = []

    async def run(tenant: str, source: str, cpu_ms: int) -> None:
        with contextlib.suppress(CodeError):
            await sandbox.run(code_run(source, cpu_ms=cpu_ms, tenant=tenant))
        order.append(tenant)

    try:
        a = [asyncio.create_task(run("a", LOOP, 300)) for _ in range(4)]
        await _until_busy(sandbox, 2)
        b = asyncio.create_task(run("b", "return []", 300))
        await asyncio.wait_for(asyncio.gather(*a, b), timeout=120)
        # First come first served would run B after all four of A's (B last);
        # B goes first to the first runner A frees, ahead of A's two waiting runs.
        assert order.index("b") <= 2, order
    finally:
        await sandbox.close()


async def test_a_run_cancelled_while_waiting_gives_no_runner_away() -> None:
    sandbox = ProcessSandbox(1, MEMORY)
    await sandbox.start()
    try:
        long = asyncio.create_task(sandbox.run(code_run(LOOP, cpu_ms=20_000, tenant="a")))
        await _until_busy(sandbox, 1)
        waiting = asyncio.create_task(sandbox.run(code_run("return []", tenant="b")))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        # The one runner is free again (its successor), for either tenant.
        for tenant in ("a", "b"):
            out = await asyncio.wait_for(
                sandbox.run(code_run("return [{ok: 1}]", tenant=tenant)), timeout=60
            )
            assert out.items == [{"ok": 1}]
    finally:
        await sandbox.close()


async def test_a_tenant_needs_a_runner() -> None:
    with pytest.raises(ValueError, match="at least one runner"):
        ProcessSandbox(2, MEMORY, per_tenant=0)
