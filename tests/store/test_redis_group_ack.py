"""group_ack acknowledges a batch spread over several partitions: nothing of it
stays pending in the group (Redis keeps unacknowledged entries for redelivery)."""

from __future__ import annotations

import time
import uuid

from nodedrop.store import JobSpec
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS


async def _pending(store: RedisStore, group: str) -> int:
    keys = store.config.keys
    total = 0
    for p in range(keys.partitions):
        summary = await store.client.xpending(keys.events(p), group)
        total += int(summary["pending"])
    return total


async def test_a_batch_over_several_partitions_is_acknowledged(redis_store: RedisStore) -> None:
    for _ in range(24):
        spec = JobSpec(
            f"ex-{uuid.uuid4().hex[:12]}",
            "t1",
            "wf1",
            '{"nodes": []}',
            "{}",
            **DEFAULT_JOB_SETTINGS,
        )
        await redis_store.enqueue(spec, int(time.time() * 1000))
    entries = await redis_store.group_read("rec", "c1", 100, 10)
    assert len(entries) == 24
    assert len({e.partition for e in entries}) > 1
    assert await _pending(redis_store, "rec") == 24
    await redis_store.group_ack("rec", entries[:5])
    assert await _pending(redis_store, "rec") == 19
    await redis_store.group_ack("rec", entries[5:])
    assert await _pending(redis_store, "rec") == 0
