"""The result cache over the store's BlobCache: a hit per tenant and read options,
and a store outage that falls back to the database instead of failing the read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nodedrop.api.result_cache import ResultCache
from nodedrop.execution.v1 import execution_pb2
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from tests.helpers.ports import free_port

DONE = execution_pb2.Execution(id="ex-1", status=execution_pb2.EXECUTION_STATUS_COMPLETED)


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, 4)))
    try:
        yield s
    finally:
        await s.delete_all()
        await s.close()


async def test_a_cached_result_answers_its_tenant_and_read_options_only(
    store: RedisStore,
) -> None:
    cache = ResultCache(store, store, ttl_s=60)
    assert await cache.get("t1", "ex-1", False, 0) is None
    await cache.put("t1", "ex-1", False, 0, DONE)
    assert await cache.get("t1", "ex-1", False, 0) == DONE
    assert await cache.get("t2", "ex-1", False, 0) is None
    assert await cache.get("t1", "ex-1", True, 0) is None


async def test_an_unreachable_store_is_a_miss_not_an_error() -> None:
    down = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", StoreConfig())
    cache = ResultCache(down, down, ttl_s=60)
    try:
        await cache.put("t1", "ex-1", False, 0, DONE)
        assert await cache.get("t1", "ex-1", False, 0) is None
    finally:
        await down.close()
