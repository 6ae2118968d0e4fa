"""Redis restarted without persistence: the job streams and their group are gone.
Every call that reads through the group recreates it and goes on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nodedrop.store import JobSpec, ReclaimReport
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

LEASE = 30_000


def now() -> int:
    return int(time.time() * 1000)


async def _lose_the_streams(store: RedisStore) -> None:
    keys = store.config.keys
    for p in range(keys.partitions):
        for lane in store.config.lanes:
            await store.client.delete(keys.jobs(p, lane))


READERS: dict[str, Callable[[RedisStore], Awaitable[Any]]] = {
    "read_jobs": lambda s: s.read_jobs("w1", 10, 0),
    "take": lambda s: s.take("w1", 10, LEASE, now()),
    "reclaim": lambda s: s.reclaim(1, 3, 10),
}


@pytest.mark.parametrize("reader", sorted(READERS))
async def test_a_lost_group_is_recreated_and_work_goes_on(
    redis_store: RedisStore, reader: str
) -> None:
    await _lose_the_streams(redis_store)
    # Nothing to read, and no NOGROUP error either.
    got = await READERS[reader](redis_store)
    assert got in ([], ReclaimReport())
    x = f"ex-{uuid.uuid4().hex[:12]}"
    await redis_store.enqueue(
        JobSpec(x, "t1", "wf1", '{"nodes": []}', "{}", **DEFAULT_JOB_SETTINGS), now()
    )
    taken = []
    for _ in range(redis_store.config.keys.partitions):
        taken += await redis_store.take("w1", 1, LEASE, now())
    assert [(a.delivery.execution_id, a.lease is not None) for a in taken] == [(x, True)]
