from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nodedrop.runtime.consumer import Consumer, ConsumerConfig
from nodedrop.runtime.engine_runner import EngineRunner, build_config
from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.scheduler.schedules import MemoryScheduleStore
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore

HERE = Path(__file__).parent
# The plugin module is imported by name, here and in worker subprocesses.
sys.path.insert(0, str(HERE))

LEASE_S = 1.0


@pytest.fixture
def side_effect_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "side_effects.log"
    monkeypatch.setenv("ND_TEST_SIDE_EFFECTS", str(path))
    return path


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, 4)))
    await s.load_scripts()
    await s.ensure_groups()
    try:
        yield s
    finally:
        await s.delete_all()
        await s.close()


@pytest.fixture
async def maintenance(store: RedisStore) -> AsyncIterator[Maintenance]:
    m = Maintenance(
        store,
        MemoryScheduleStore(),
        lease_s=LEASE_S,
        max_reclaims=3,
        mover_interval_s=0.02,
        reclaim_interval_s=0.1,
        cron_interval_s=1.0,
    )
    m.start()
    try:
        yield m
    finally:
        await m.stop()


@pytest.fixture
async def consumer(store: RedisStore, side_effect_log: Path) -> AsyncIterator[Consumer]:
    c = Consumer(
        store,
        EngineRunner(build_config(("nd_test_nodes",))),
        ConsumerConfig(
            worker_id="inproc",
            concurrency=50,
            lease_s=LEASE_S,
            heartbeat_s=0.2,
            read_block_s=0.1,
            read_batch=100,
            cancel_channel=store.config.keys.cancel_channel(),
        ),
    )
    await c.start()
    try:
        yield c
    finally:
        await c.stop(2.0)
