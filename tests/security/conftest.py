"""Fixtures of the security tests: services as separate processes, started
with the test service credential, and a trusted view of their Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nodedrop.store import Commit, EventDraft, EventType, ExecutionStatus, JobSpec, Transition
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from tests.helpers.services import isolated_env

PARTITIONS = 4
GRACE_S = 3.0
# A workflow that waits: a job of it stays queued or running long enough to
# be cancelled (or not).
WAIT_WF = (
    '{"name": "slow", "nodes": [{"id": "start", "type": "manual_trigger"},'
    ' {"id": "pause", "type": "wait", "parameters": {"seconds": 60}}],'
    ' "connections": [{"from": "start", "to": "pause"}]}'
)


@pytest.fixture
def env(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> dict[str, str]:
    """``redis_client`` deletes what the processes wrote under the prefix."""
    return {
        **isolated_env(redis_url, redis_prefix, pg_dsn, GRACE_S),
        "NODEDROP_PARTITIONS": str(PARTITIONS),
        "NODEDROP_METRICS_ADDR": "off",
        "LOG_LEVEL": "warning",
    }


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    """The queue as the test sees it, without going through any service."""
    s = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, PARTITIONS)))
    try:
        yield s
    finally:
        await s.close()


async def fail_jobs(store: RedisStore, jobs: dict[str, str]) -> None:
    """Puts each execution id (-> tenant) in the failed queue, as a worker's
    last failed attempt would. No worker may consume meanwhile."""
    now = int(time.time() * 1000)
    for execution_id, tenant in jobs.items():
        await store.enqueue(JobSpec(execution_id, tenant, "wf", WAIT_WF), now)
    deliveries = [d for d in await store.read_jobs("test", 100, 0) if d.execution_id in jobs]
    acquired = await store.acquire(deliveries, 30_000, now)
    await store.commit(
        [
            Commit(
                a.lease,
                events=(EventDraft(EventType.EXECUTION_FAILED),),
                transition=Transition(ExecutionStatus.FAILED, dead_letter_reason="boom"),
            )
            for a in acquired
            if a.lease
        ],
        now,
    )
    failed, _ = await store.list_failed(100, "")
    assert {j.execution_id for j in failed} >= set(jobs)
