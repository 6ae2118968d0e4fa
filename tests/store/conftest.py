from __future__ import annotations

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


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore | MemoryStore]:
    config = make_config()
    if request.param == "memory":
        yield MemoryStore(config)
        return
    s = RedisStore.from_url(REDIS_URL, config)
    await s.ensure_groups()
    try:
        yield s
    finally:
        await s.delete_all()
        await s.close()
