"""One tenant's memory bombs and infinite loops in code nodes against real API
and worker processes, while another tenant's code executions keep completing.

Tenant A submits, again and again, a code node that grows an array without
end and one that loops forever; tenant B runs code executions one after
another. A's executions must fail with code_memory_exceeded and code_timeout,
every one of B's must complete, and the process running them (the worker in
queue mode, the API in direct mode) must be the same process at the end. B's
start latency (created -> started) and its code node's run time are printed
(pytest -s), not asserted: the machine is shared. In direct mode tenant A also
sends ExecuteNode test runs of an infinite loop, which must end in code_timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TypeAlias

import pytest
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_pb2
from tests.isolation.stack import DIRECT, QUEUE, Stack, running_stack

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

RUN_FOR_S = 8.0
Mode: TypeAlias = execution_pb2.ExecutionMode.ValueType


def _code(name: str, source: str) -> dict[str, object]:
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {"id": "c", "type": "code", "parameters": {"code": source}},
        ],
        "connections": [{"from": "start", "to": "c"}],
    }


BOMB = _code("bomb", "const a = []; while (true) a.push('x'.repeat(4096))")
LOOP = _code("loop", "while (true) {}")
WORK = _code("work", "return $input.all().map(i => ({json: {n: i.json.n * 2}}))")
ENV = {"NODEDROP_CODE_RUNNERS": "3", "NODEDROP_CODE_CPU_MS": "1000"}


def _ms(start: Timestamp, end: Timestamp) -> float:
    return float(end.ToNanoseconds() - start.ToNanoseconds()) / 1e6


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _tenant_a(stack: Stack, mode: Mode, stop: asyncio.Event, codes: list[str]) -> None:
    while not stop.is_set():
        ids = [await stack.execute("tenant-a", wf, {}, mode) for wf in (BOMB, LOOP)]
        for execution_id in ids:
            done = await stack.wait_terminal("tenant-a", execution_id, 60)
            codes.append(done.error.code)


async def _tenant_b(
    stack: Stack, mode: Mode, stop: asyncio.Event, runs: list[execution_pb2.Execution]
) -> None:
    while not stop.is_set():
        execution_id = await stack.execute("tenant-b", WORK, [{"n": 1}, {"n": 2}], mode)
        done = await stack.wait_terminal("tenant-b", execution_id, 30)
        assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done
        runs.append(done)


async def _run(
    stack: Stack, mode: Mode, pid: int, label: str, capsys: pytest.CaptureFixture[str]
) -> None:
    warm = await stack.execute("tenant-b", WORK, [{"n": 0}], mode)
    assert (await stack.wait_terminal("tenant-b", warm, 60)).status == (
        execution_pb2.EXECUTION_STATUS_COMPLETED
    )
    stop = asyncio.Event()
    codes: list[str] = []
    runs: list[execution_pb2.Execution] = []
    a = asyncio.create_task(_tenant_a(stack, mode, stop, codes))
    b = asyncio.create_task(_tenant_b(stack, mode, stop, runs))
    await asyncio.sleep(RUN_FOR_S)
    stop.set()
    await asyncio.wait_for(asyncio.gather(a, b), 120)
    assert codes and set(codes) == {"code_memory_exceeded", "code_timeout"}, codes
    assert codes.count("code_memory_exceeded") == codes.count("code_timeout")
    assert runs, "tenant B's executions did not complete"
    assert stack_pid_alive(pid)
    starts = [_ms(r.create_time, r.start_time) for r in runs]
    nodes = [
        _ms(node.start_time, node.end_time)
        for r in runs
        for node in r.node_runs
        if node.node_id == "c"
    ]
    with capsys.disabled():
        print(
            f"\n[{label}] tenant A: {len(codes)} executions failed as expected; tenant B: "
            f"{len(runs)} completed; start latency p50 {_pct(starts, 0.5):.1f} ms, "
            f"p99 {_pct(starts, 0.99):.1f} ms; code node p50 {_pct(nodes, 0.5):.1f} ms, "
            f"p99 {_pct(nodes, 0.99):.1f} ms"
        )


def stack_pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] not in ("Z", "X")
    except FileNotFoundError:
        return False


async def test_queue_mode_worker_keeps_serving_the_other_tenant(
    redis_url: str,
    redis_prefix: str,
    pg_dsn: str,
    redis_client: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=True, extra=ENV) as stack:
        assert stack.worker is not None
        await _run(stack, QUEUE, stack.worker.process.pid, "queue mode, worker", capsys)


async def _execute_node_loops(stack: Stack, stop: asyncio.Event, codes: list[str]) -> None:
    """Tenant A's ExecuteNode test runs of an infinite loop, in the API itself."""
    node = workflow_pb2.Node(id="c", type="code", parameters_json='{"code": "while (true) {}"}')
    while not stop.is_set():
        response = await stack.ex.ExecuteNode(
            ex_pb.ExecuteNodeRequest(node=node, input_items_json="[{}]"),
            metadata=stack.md("tenant-a"),
            timeout=60,
        )
        codes.append(response.error.code)


async def test_direct_mode_api_keeps_serving_the_other_tenant(
    redis_url: str,
    redis_prefix: str,
    pg_dsn: str,
    redis_client: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=False, extra=ENV) as stack:
        stop = asyncio.Event()
        node_codes: list[str] = []
        loops = asyncio.create_task(_execute_node_loops(stack, stop, node_codes))
        try:
            await _run(stack, DIRECT, stack.api.process.pid, "direct mode, API", capsys)
        finally:
            stop.set()
            await asyncio.wait_for(loops, 60)
        assert node_codes and set(node_codes) == {"code_timeout"}, node_codes


def _running_children(pid: int) -> list[int]:
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(c) for c in f.read().split()]
    busy = []
    for child in children:
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{child}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "R":
                busy.append(child)
    return busy


async def test_queue_mode_a_dead_runner_fails_the_attempt_and_a_retry_completes(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> None:
    slow = {**ENV, "NODEDROP_CODE_CPU_MS": "60000"}
    workflow = _code(
        "lost",
        "if ($execution.attempt === 1) { while (true) {} }\nreturn [{attempt: $execution.attempt}]",
    )
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=True, extra=slow) as stack:
        assert stack.worker is not None
        # A first run starts the worker's runner, so that the busy child found
        # below is the one running the loop, not one starting up.
        warm = await stack.execute("tenant-a", WORK, [{"n": 1}], QUEUE)
        assert (await stack.wait_terminal("tenant-a", warm, 60)).status == (
            execution_pb2.EXECUTION_STATUS_COMPLETED
        )
        await asyncio.sleep(1.0)
        execution_id = await stack.execute("tenant-a", workflow, {}, QUEUE)
        busy: list[int] = []
        for _ in range(200):
            busy = _running_children(stack.worker.process.pid)
            if busy:
                break
            await asyncio.sleep(0.05)
        assert len(busy) == 1, busy
        os.kill(busy[0], signal.SIGKILL)
        done = await stack.wait_terminal("tenant-a", execution_id, 60)
        assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done
        assert done.attempt == 2
        assert stack_pid_alive(stack.worker.process.pid)
