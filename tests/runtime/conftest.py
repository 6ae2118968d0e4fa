from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nodedrop.runtime.consumer import Consumer, ConsumerConfig
from nodedrop.runtime.engine_runner import EngineRunner, build_config
from nodedrop.store.redis_store import RedisStore
from tests.helpers.queue_fixtures import LEASE_S, maintenance, side_effect_log, store

__all__ = ["consumer", "maintenance", "side_effect_log", "store"]

PLUGIN = "tests.worker.nd_test_nodes"


@pytest.fixture
async def consumer(store: RedisStore, side_effect_log: Path) -> AsyncIterator[Consumer]:
    c = Consumer(
        store,
        EngineRunner(build_config((PLUGIN,))),
        ConsumerConfig(
            worker_id="inproc",
            concurrency=50,
            lease_s=LEASE_S,
            heartbeat_s=0.2,
            read_block_s=0.1,
            read_batch=100,
        ),
    )
    await c.start()
    try:
        yield c
    finally:
        await c.stop(2.0)
