"""Fairness between tenants on real processes: a scheduler and a worker
subprocess, tenant A's backlog of thousands of executions in the queue, and
tenant B's executions still start promptly (docs/redis-layout.md, "Fairness
between tenants").  In FIFO order B's first start waited for A's whole backlog:
2,000 executions of 50 ms on 4 slots, about 25 s."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.services import service_channel, start_service

pytestmark = pytest.mark.slow

PARTITIONS = 4
BACKLOG = 2000
# Generous on purpose: a shared, loaded machine; FIFO order takes about ten times this.
START_BOUND_S = 1.0


def workflow(wait_s: float | None) -> wf_pb.Workflow:
    nodes = [wf_pb.Node(id="t", type="manual_trigger", parameters_json="{}")]
    connections = []
    if wait_s is not None:
        params = orjson.dumps({"seconds": wait_s}).decode()
        nodes.append(wf_pb.Node(id="w", type="wait", parameters_json=params))
        connections.append(wf_pb.Connection(source="t", target="w"))
    return wf_pb.Workflow(name="fair", nodes=nodes, connections=connections)


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[tuple[pb_grpc.SchedulerServiceStub, str]]:
    prefix = f"ndfair{uuid.uuid4().hex[:8]}"
    env = {
        "REDIS_URL": redis_url,
        "NODEDROP_REDIS_PREFIX": prefix,
        "NODEDROP_PARTITIONS": str(PARTITIONS),
        # Two places per tenant and partition; 4 slots on the worker.
        "NODEDROP_TENANT_MAX_ACTIVE": "8",
        "EXECUTION_WORKER_CONCURRENCY": "4",
        "NODEDROP_METRICS_ADDR": "127.0.0.1:0",
        "LOG_LEVEL": "warning",
    }
    store = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(prefix, PARTITIONS)))
    try:
        async with (
            start_service("scheduler", env=env) as scheduler,
            start_service("worker", env=env),
            service_channel(scheduler.target) as channel,
        ):
            yield pb_grpc.SchedulerServiceStub(channel), prefix
    finally:
        await store.delete_all()
        await store.close()


async def started(client: aioredis.Redis, stream: str, timeout_s: float) -> bool:
    """Waits for the execution's second event, EXECUTION_STARTED (polled every 5 ms)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await client.xrange(stream, min="2-0", max="2-0"):
            return True
        await asyncio.sleep(0.005)
    return False


async def test_a_backlog_of_one_tenant_does_not_delay_another(
    cluster: tuple[pb_grpc.SchedulerServiceStub, str], redis_url: str
) -> None:
    stub, prefix = cluster
    slow = workflow(0.05)
    ids = [f"a-{i}-{uuid.uuid4().hex[:6]}" for i in range(BACKLOG)]
    # 50 calls at a time: the scheduler's Redis pool holds 64 connections.
    for i in range(0, BACKLOG, 50):
        await asyncio.gather(
            *[
                stub.EnqueueExecution(
                    pb.EnqueueExecutionRequest(execution_id=x, tenant_id="tenant-a", workflow=slow)
                )
                for x in ids[i : i + 50]
            ]
        )
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest())
    # Parked executions count as waiting.
    assert stats.waiting >= BACKLOG // 2, stats

    keys = Keys(prefix, PARTITIONS)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    quick = workflow(None)
    waits: list[float | None] = []
    try:
        for i in range(5):
            x = f"b-{i}-{uuid.uuid4().hex[:6]}"
            t0 = time.perf_counter()
            await stub.EnqueueExecution(
                pb.EnqueueExecutionRequest(execution_id=x, tenant_id="tenant-b", workflow=quick)
            )
            ok = await started(client, keys.exec_events(x), 5 * START_BOUND_S)
            waits.append(time.perf_counter() - t0 if ok else None)
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    assert all(w is not None and w < START_BOUND_S for w in waits), waits
    # A's backlog was still there all along.
    stats = await stub.GetQueueStats(pb.GetQueueStatsRequest())
    assert stats.waiting >= BACKLOG // 2, stats
