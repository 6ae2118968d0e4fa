"""One tenant's adversarial workflow against real API and worker processes.

Tenant A runs a cubic CEL comprehension (1,000 elements, timeout_s 1), a
chain of 26 merges that doubles its items at each step, or a set node that
copies all items into each item; meanwhile a probe
checks the health of the process running it every 20 ms and tenant B runs
one-node executions. The process must never stall past 100 ms, B's runs
must complete, A's node must fail with the documented code within 2 s and
the process's peak memory must stay under its bound.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_pb2
from tests.isolation.stack import (
    DIRECT,
    MAX_STALL_S,
    QUEUE,
    Stack,
    peak_rss_mb,
    probing,
    running_stack,
)

pytestmark = pytest.mark.slow

# Peak resident memory a process may reach over a test (it starts near 100 MiB).
RSS_BOUND_MB = 400
FAIL_WITHIN_S = 2.0

CUBIC = {
    "name": "cubic",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {
            "id": "f",
            "type": "filter",
            "timeout_s": 1,
            "parameters": {"condition": "json.l.all(a, json.l.all(b, json.l.all(c, true)))"},
        },
    ],
    "connections": [{"from": "start", "to": "f"}],
}


def _doubling(merges: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "manual_trigger"}]
    connections = []
    previous = "start"
    for k in range(merges):
        node = f"m{k}"
        nodes.append({"id": node, "type": "merge", "parameters": {"mode": "append"}})
        connections.append({"from": previous, "to": node, "input": "a"})
        connections.append({"from": previous, "to": node, "input": "b"})
        previous = node
    return {"name": "doubling", "nodes": nodes, "connections": connections}


TRIVIAL = {
    "name": "trivial",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "s", "type": "set", "parameters": {"fields": {"ok": "true"}}},
    ],
    "connections": [{"from": "start", "to": "s"}],
}

# Every output item gets all input items: the result grows with the square
# of the trigger (1,500 items of 30 bytes would make 68 MB of JSON).
FAN = {
    "name": "fan",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "s", "type": "set", "parameters": {"fields": {"all": "items"}}},
    ],
    "connections": [{"from": "start", "to": "s"}],
}

CASES = {
    "cubic": (CUBIC, {"l": list(range(1000))}, "expression_cost_exceeded"),
    "doubling": (_doubling(26), {"x": 1}, "limit_exceeded"),
    "fan": (FAN, [{"i": i, "s": "abcdefghij"} for i in range(1500)], "expression_cost_exceeded"),
}


async def _tenant_b(
    stack: Stack,
    mode: execution_pb2.ExecutionMode.ValueType,
    stop: asyncio.Event,
    done: list[float],
) -> None:
    """One-node executions, one after another, each timed from submit to end."""
    while not stop.is_set():
        started = time.perf_counter()
        execution_id = await stack.execute("tenant-b", TRIVIAL, {"n": 1}, mode)
        execution = await stack.wait_terminal("tenant-b", execution_id, 10)
        assert execution.status == execution_pb2.EXECUTION_STATUS_COMPLETED, execution
        done.append(time.perf_counter() - started)


async def _run_case(
    stack: Stack, case: str, mode: execution_pb2.ExecutionMode.ValueType, target: str, pid: int
) -> None:
    workflow, trigger, code = CASES[case]
    # Warm up both tenants' paths, so the probe measures the adversarial run only.
    warm = await stack.execute("tenant-b", TRIVIAL, {"n": 0}, mode)
    await stack.wait_terminal("tenant-b", warm, 10)
    b_done: list[float] = []
    stop = asyncio.Event()
    async with probing(target) as probe:
        b_task = asyncio.create_task(_tenant_b(stack, mode, stop, b_done))
        started = time.perf_counter()
        a_id = await stack.execute("tenant-a", workflow, trigger, mode)
        try:
            a = await stack.wait_terminal("tenant-a", a_id, FAIL_WITHIN_S)
            took = time.perf_counter() - started
            # B keeps running for a while after A's end.
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.wait_for(b_task, 30)
    assert a.status == execution_pb2.EXECUTION_STATUS_FAILED, a
    assert a.error.code == code, a.error
    assert took < FAIL_WITHIN_S, took
    assert b_done, "tenant B's executions did not complete"
    assert probe.worst < MAX_STALL_S, f"the process stalled {probe.worst:.3f} s"
    rss = peak_rss_mb(pid)
    assert rss < RSS_BOUND_MB, f"peak RSS {rss:.0f} MiB"


@pytest.mark.parametrize("case", sorted(CASES))
async def test_direct_mode_api_stays_responsive(
    case: str, redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> None:
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=False) as stack:
        pid = stack.api.process.pid
        await _run_case(stack, case, DIRECT, stack.api.target, pid)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_queue_mode_worker_stays_responsive(
    case: str, redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> None:
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=True) as stack:
        assert stack.worker is not None
        pid = stack.worker.process.pid
        await _run_case(stack, case, QUEUE, stack.worker.target, pid)


async def test_execute_node_cubic_filter_is_refused_at_once(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> None:
    node = workflow_pb2.Node(
        id="f",
        type="filter",
        parameters_json='{"condition": "json.l.all(a, json.l.all(b, json.l.all(c, true)))"}',
        timeout_s=1,
    )
    items = '[{"l": [' + ",".join(str(i) for i in range(350)) + "]}]"
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=False) as stack:
        b_done: list[float] = []
        stop = asyncio.Event()
        async with probing(stack.api.target) as probe:
            b_task = asyncio.create_task(_tenant_b(stack, DIRECT, stop, b_done))
            started = time.perf_counter()
            try:
                response = await stack.ex.ExecuteNode(
                    ex_pb.ExecuteNodeRequest(node=node, input_items_json=items),
                    metadata=stack.md("tenant-a"),
                    timeout=FAIL_WITHIN_S,
                )
                took = time.perf_counter() - started
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await asyncio.wait_for(b_task, 30)
        assert response.error.code == "expression_cost_exceeded", response
        assert took < FAIL_WITHIN_S
        assert b_done
        assert probe.worst < MAX_STALL_S, f"the API stalled {probe.worst:.3f} s"
        assert peak_rss_mb(stack.api.process.pid) < RSS_BOUND_MB
