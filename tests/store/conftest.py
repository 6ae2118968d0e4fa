from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore

REDIS_URL = "redis://127.0.0.1:6379/0"


def make_config() -> StoreConfig:
    return StoreConfig(
        keys=Keys(prefix=f"ndt{uuid.uuid4().hex[:10]}", partitions=4),
        lanes=(0, 10),
        state_ttl_s=600,
        completion_ttl_s=60,
        events_maxlen=1000,
    )


@contextlib.asynccontextmanager
async def _redis_store() -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(REDIS_URL, make_config())
    await s.ensure_groups()
    try:
        yield s
    finally:
        await s.delete_all()
        await s.close()


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore | MemoryStore]:
    if request.param == "memory":
        yield MemoryStore(make_config())
        return
    async with _redis_store() as s:
        yield s


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    """The Redis adapter alone, for what only it does."""
    async with _redis_store() as s:
        yield s
