"""Fixtures of the queue tests (tests/runtime, tests/worker): a Redis store of its
own prefix, the scheduler's maintenance over it, and the side-effect log the
test node types (tests/worker/nd_test_nodes.py) append to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nodedrop.common.errors import Unavailable
from nodedrop.scheduler.convert import now_ms
from nodedrop.scheduler.firing import Firing
from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.scheduler.schedules import Schedule, StoredSchedules
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore

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
        firing_without_api(store),
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


class NoApi:
    """The API's ScheduleRunService where a test runs no API: a schedule's run cannot start."""

    async def start(self, schedule: Schedule, tick_ms: int, idempotency_key: str) -> str:
        raise Unavailable("no API in this test")


def firing_without_api(store: RedisStore | MemoryStore) -> Firing:
    return Firing(StoredSchedules(store), store, NoApi(), late_ms=60_000, clock=now_ms)
