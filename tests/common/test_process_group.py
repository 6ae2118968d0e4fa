"""`nodedrop api` with NODEDROP_API_PROCESSES=2: two real serving processes on
one port under a supervisor (ProcessGroup), against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from nodedrop.execution.v1 import execution_service_pb2 as pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as pb_grpc
from tests.helpers.ports import free_port
from tests.helpers.services import ServiceProcess, isolated_env, start_service

GRACE_S = 5.0
pytestmark = pytest.mark.slow


@pytest.fixture
def group_env(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> dict[str, str]:
    """``redis_client`` deletes what the processes wrote under the prefix."""
    return {
        **isolated_env(redis_url, redis_prefix, pg_dsn, GRACE_S),
        "NODEDROP_API_PROCESSES": "2",
        "NODEDROP_METRICS_ADDR": f"127.0.0.1:{free_port()}",
    }


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _wait_until(predicate: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _children_of(proc: ServiceProcess) -> list[int]:
    pid = proc.process.pid
    await _wait_until(lambda: len(_children(pid)) == 2, 20)
    return _children(pid)


async def _scrape(metrics_addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://{metrics_addr}/metrics")).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _calls_by_process(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, float]:
    return {
        dict(labels)["process"]: value
        for (name, labels), value in samples.items()
        if name == "nodedrop_request_duration_seconds_count"
        and dict(labels).get("code") == "UNAUTHENTICATED"
    }


async def _unauthenticated_call(target: str) -> None:
    """One call on a connection of its own; without a key it is UNAUTHENTICATED."""
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.ExecutionServiceStub(channel).GetExecution(
                pb.GetExecutionRequest(execution_id="x"), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_two_processes_share_the_port_and_one_metrics_endpoint(
    group_env: dict[str, str],
) -> None:
    async with start_service("api", env=group_env) as proc:
        children = await _children_of(proc)
        metrics_addr = group_env["NODEDROP_METRICS_ADDR"]
        # The kernel spreads connections over the processes listening (the
        # second may still be starting at first): call on fresh connections
        # until both have answered some, within a bound.
        calls = 0
        by_process: dict[str, float] = {}
        while set(by_process) != {"0", "1"}:
            assert calls < 400, f"one process got every call: {by_process}"
            for _ in range(8):
                await _unauthenticated_call(proc.target)
            calls += 8
            samples = await _scrape(metrics_addr)
            by_process = _calls_by_process(samples)
        assert samples[("nodedrop_process_up", (("process", "0"),))] == 1
        assert samples[("nodedrop_process_up", (("process", "1"),))] == 1
        assert sum(by_process.values()) == calls

        started = time.monotonic()
        proc.terminate()
        assert await proc.wait(GRACE_S + 10) == 0, proc.output()
        assert time.monotonic() - started < GRACE_S + 10
        assert not any(_alive(c) for c in children)


async def test_a_child_that_dies_stops_the_group_with_an_error(
    group_env: dict[str, str],
) -> None:
    async with start_service("api", env=group_env) as proc:
        first, second = await _children_of(proc)
        os.kill(first, signal.SIGKILL)
        assert await proc.wait(GRACE_S + 10) == 1, proc.output()
        assert "a process of the group exited" in proc.output()
        await _wait_until(lambda: not _alive(second), 5)


async def test_children_do_not_outlive_a_killed_supervisor(group_env: dict[str, str]) -> None:
    async with start_service("api", env=group_env) as proc:
        children = await _children_of(proc)
        proc.process.kill()
        await proc.process.wait()
        await _wait_until(lambda: not any(_alive(c) for c in children), GRACE_S + 5)


async def test_a_bad_process_count_is_refused_by_name(group_env: dict[str, str]) -> None:
    async with start_service(
        "api", env={**group_env, "NODEDROP_API_PROCESSES": "0"}, wait=False
    ) as proc:
        assert await proc.wait(20) == 2
        assert "NODEDROP_API_PROCESSES" in proc.output()
