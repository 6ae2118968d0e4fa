"""The ports beyond the queue: schedules (both adapters), and the capabilities
only the Redis adapter has, which the in-memory one visibly declines."""

from __future__ import annotations

import asyncio
import time

import structlog

from nodedrop.store import (
    BlobCache,
    CancelNotices,
    Delivery,
    EventError,
    EventType,
    FailedQueueStore,
    JobSpec,
    ScheduleTable,
)
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

Store = RedisStore | MemoryStore


async def test_schedule_table(store: Store) -> None:
    assert isinstance(store, ScheduleTable)
    assert await store.get_schedule("sch_a") is None
    await store.put_schedule("sch_a", '{"v": 1}')
    await store.put_schedule("sch_b", '{"v": 2}')
    await store.put_schedule("sch_a", '{"v": 3}')
    assert await store.get_schedule("sch_a") == '{"v": 3}'
    assert sorted(await store.all_schedules()) == ['{"v": 2}', '{"v": 3}']
    assert await store.delete_schedule("sch_b")
    assert not await store.delete_schedule("sch_b")
    assert await store.all_schedules() == ['{"v": 3}']
    # A write on what was read: refused once another write (or a delete) came first.
    assert await store.swap_schedule("sch_a", '{"v": 3}', '{"v": 4}')
    assert not await store.swap_schedule("sch_a", '{"v": 3}', '{"v": 5}')
    assert await store.get_schedule("sch_a") == '{"v": 4}'
    assert not await store.swap_schedule("sch_b", '{"v": 2}', '{"v": 6}')
    assert await store.get_schedule("sch_b") is None


async def test_a_cancel_of_a_running_execution_is_a_notice(store: Store) -> None:
    """The store's cancel path pushes to every listener; a cancel that ends the
    execution at once (not running) sends none: nothing runs it."""
    assert isinstance(store, CancelNotices)
    now = int(time.time() * 1000)
    running, queued = (
        JobSpec("ex-run", "t1", "wf1", "{}", **DEFAULT_JOB_SETTINGS),
        JobSpec("ex-q", "t1", "wf1", "{}", **DEFAULT_JOB_SETTINGS),
    )
    await store.enqueue(running, now)
    own = Delivery(store.config.keys.partition("ex-run"), 0, "", "ex-run", 1, "", now)
    (acq,) = await store.acquire([own], 30_000, now)
    assert acq.lease is not None
    await store.enqueue(queued, now)
    notices = store.cancel_notices()
    first = asyncio.ensure_future(anext(notices))
    # The subscription is in place once the iterator runs: give it the time to.
    await asyncio.sleep(0.2)
    try:
        await store.cancel("ex-q", "t1", now, "not this one")
        await store.cancel("ex-run", "t1", now, "stop it")
        execution_id, error = await asyncio.wait_for(first, 5.0)
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await notices.aclose()
    assert execution_id == "ex-run"
    assert EventError.from_json(error) == EventError("stop it", "cancelled", False)


def test_the_memory_store_declines_the_redis_capabilities() -> None:
    store = MemoryStore()
    assert not isinstance(store, BlobCache)
    assert not isinstance(store, FailedQueueStore)


async def test_blobs_keep_any_bytes_until_their_ttl(redis_store: RedisStore) -> None:
    assert isinstance(redis_store, BlobCache) and isinstance(redis_store, FailedQueueStore)
    blob = bytes(range(256)) * 3  # not UTF-8: the store's client decodes replies
    assert await redis_store.get_blob("api:result:{x}:t") is None
    await redis_store.put_blob("api:result:{x}:t", blob, 1)
    assert await redis_store.get_blob("api:result:{x}:t") == blob
    assert await redis_store.client.ttl(f"{redis_store.config.keys.prefix}:api:result:{{x}}:t") == 1


async def test_tail_skips_an_undecodable_entry(redis_store: RedisStore) -> None:
    keys = redis_store.config.keys
    x = "ex-bad-entry"
    start = await redis_store.tail_position()
    now = int(time.time() * 1000)
    await redis_store.enqueue(JobSpec(x, "t1", "wf1", '{"nodes": []}', **DEFAULT_JOB_SETTINGS), now)
    stream = keys.events(keys.partition(x))
    bad = await redis_store.client.xadd(stream, {"x": x, "s": "two", "t": "X"})
    with structlog.testing.capture_logs() as logs:
        entries, cursor = await redis_store.tail(start, 100, 0)
    assert [e.record.type for e in entries] == [EventType.EXECUTION_QUEUED]
    assert cursor[keys.partition(x)] == bad
    assert [e["entry_id"] for e in logs if e["event"] == "undecodable event entry skipped"] == [bad]
    # Read on from there: nothing left, the bad entry is not met again.
    assert (await redis_store.tail(cursor, 100, 0))[0] == []
