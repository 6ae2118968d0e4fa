"""Fixtures of the security tests: services as separate processes, started
with the test service credential, and a trusted view of their Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from tests.helpers.services import isolated_env

PARTITIONS = 4
GRACE_S = 3.0


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
