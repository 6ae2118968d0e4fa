from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.redis_cluster import PrivateCluster


def make_config() -> StoreConfig:
    return StoreConfig(
        keys=Keys(prefix=f"ndt{uuid.uuid4().hex[:10]}", partitions=4),
        lanes=(0, 10),
        state_ttl_s=600,
        completion_ttl_s=60,
        events_maxlen=1000,
    )


@contextlib.asynccontextmanager
async def open_redis_store(redis_url: str, config: StoreConfig) -> AsyncIterator[RedisStore]:
    """The Redis adapter on the fixtures' Redis (tests/conftest.py), or on the
    private cluster for a ``redis+cluster://`` URL; its keys deleted afterwards."""
    s = RedisStore.from_url(redis_url, config)
    await s.ensure_groups()
    try:
        yield s
    finally:
        await s.delete_all()
        await s.close()


@pytest.fixture(params=["redis", "memory", "cluster"])
async def store(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[RedisStore | MemoryStore]:
    """Each conformance test on every adapter: memory, one Redis, a 3-master cluster."""
    if request.param == "memory":
        yield MemoryStore(make_config())
        return
    if request.param == "cluster":
        cluster: PrivateCluster = request.getfixturevalue("redis_cluster")
        redis_url = cluster.url
    async with open_redis_store(redis_url, make_config()) as s:
        yield s


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    """The Redis adapter alone, for what only it does."""
    async with open_redis_store(redis_url, make_config()) as s:
        yield s
