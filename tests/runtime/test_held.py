"""Held jobs (direct mode) on the in-memory store: the same events as a worker's
attempt, no dead-lettering, cancellation from any process, and a stop that ends
what runs CANCELLED."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import orjson
import pytest

from nodedrop.runtime.engine_runner import EngineRunner, build_config
from nodedrop.runtime.held import HeldOptions, HeldRunner
from nodedrop.store import CancelNotices, EventType, ExecutionStatus, JobSpec, Keys, Unavailable
from nodedrop.store.config import StoreConfig
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

PLUGIN = "tests.worker.nd_test_nodes"


def _spec(execution_id: str, *nodes: dict[str, Any]) -> JobSpec:
    body = [{"id": "start", "type": "manual_trigger"}, *nodes]
    ids = [n["id"] for n in body]
    workflow = {
        "name": "held",
        "nodes": body,
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }
    return JobSpec(
        execution_id, "t1", "", orjson.dumps(workflow).decode(), '{"n": 1}', **DEFAULT_JOB_SETTINGS
    )


# The adapters this test drives, with their config and their event log.
Store = MemoryStore | RedisStore


def _runner(store: Store, heartbeat_s: float = 0.05) -> HeldRunner:
    return HeldRunner(
        store,
        store.config,
        EngineRunner(build_config((PLUGIN,))),
        options=HeldOptions(heartbeat_s=heartbeat_s),
    )


class _Without:
    """A store as an adapter without ``CancelNotices`` would be."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "cancel_notices":
            raise AttributeError(name)
        return getattr(self._store, name)


class _LosesItsNoticesOnce:
    """The memory store, its first notice subscription lost to an outage."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.subscriptions = 0
        self.resubscribed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def cancel_notices(self) -> AsyncGenerator[tuple[str, str], None]:
        self.subscriptions += 1
        if self.subscriptions == 1:
            raise Unavailable("the store went away")
        self.resubscribed.set()
        async for notice in self._store.cancel_notices():
            yield notice


async def _until_status(store: Store, execution_id: str, status: ExecutionStatus) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        (state,) = await store.states([execution_id])
        if state is not None and state.status is status:
            return True
        await asyncio.sleep(0.01)
    return False


async def _until_ended(store: Store, execution_id: str) -> ExecutionStatus:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        (state,) = await store.states([execution_id])
        if state is not None and state.status.terminal:
            return state.status
        await asyncio.sleep(0.01)
    raise AssertionError(f"{execution_id} did not end")


async def test_a_held_run_emits_the_queue_modes_events_and_never_dead_letters() -> None:
    store = MemoryStore(StoreConfig(keys=Keys("held", 2)))
    runner = _runner(store)
    runner.start(_spec("ok", {"id": "nap", "type": "test_sleep"}))
    # A retryable failure: a worker would dead-letter it after its last attempt.
    runner.start(_spec("bad", {"id": "flaky", "type": "test_flaky"}))
    assert await _until_ended(store, "ok") is ExecutionStatus.COMPLETED
    assert await _until_ended(store, "bad") is ExecutionStatus.FAILED
    types = [e.type for e in await store.read("ok", 0, 50)]
    assert types == [
        EventType.EXECUTION_QUEUED,
        EventType.EXECUTION_STARTED,
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.EXECUTION_COMPLETED,
    ]
    failed, _ = await store.list_failed(10, "")
    assert failed == []
    await runner.stop(1.0)
    assert runner.running == 0


@pytest.fixture(params=["memory", "redis"])
async def any_store(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Store]:
    config = StoreConfig(keys=Keys(redis_prefix, 2))
    if request.param == "memory":
        yield MemoryStore(config)
        return
    store = RedisStore.from_url(redis_url, config)
    await store.load_scripts()
    try:
        yield store
    finally:
        await store.delete_all()
        await store.close()


async def test_a_cancel_flagged_through_the_store_reaches_the_run(any_store: Store) -> None:
    """Without cancel notices (a store that has none) the heartbeat finds the flag:
    a held job has no stream entry, so it reads the state rather than renew."""
    store = any_store
    without = _Without(store)
    assert not isinstance(without, CancelNotices)
    runner = _runner(cast(Store, without))
    slow = {"id": "nap", "type": "test_sleep", "parameters": {"ms_min": 5000, "ms_max": 5000}}
    runner.start(_spec("slow", slow))
    assert await _until_status(store, "slow", ExecutionStatus.RUNNING)
    # As another API process would: through the store, not this runner.
    await store.cancel("slow", "t1", int(time.time() * 1000), "enough")
    started = time.monotonic()
    assert await _until_ended(store, "slow") is ExecutionStatus.CANCELLED
    assert time.monotonic() - started < 1.0
    (last,) = (await store.read("slow", 0, 50))[-1:]
    assert last.type is EventType.EXECUTION_CANCELLED
    assert last.error is not None and last.error.message == "enough"
    await runner.stop(1.0)


async def test_stopping_ends_what_runs_cancelled() -> None:
    store = MemoryStore(StoreConfig(keys=Keys("held", 2)))
    runner = _runner(store)
    slow = {"id": "nap", "type": "test_sleep", "parameters": {"ms_min": 5000, "ms_max": 5000}}
    runner.start(_spec("slow", slow))
    await asyncio.sleep(0.1)
    await runner.stop(2.0, "the process is stopping")
    assert await _until_ended(store, "slow") is ExecutionStatus.CANCELLED
    last = (await store.read("slow", 0, 50))[-1]
    assert last.error is not None and last.error.message == "the process is stopping"


async def test_a_cancel_notice_stops_the_run_before_any_heartbeat(any_store: Store) -> None:
    store = any_store
    # No heartbeat within the test: only the store's notice can stop the run.
    runner = _runner(store, heartbeat_s=60)
    slow = {"id": "nap", "type": "test_sleep", "parameters": {"ms_min": 5000, "ms_max": 5000}}
    runner.start(_spec("slow", slow))
    assert await _until_status(store, "slow", ExecutionStatus.RUNNING)
    # The listener subscribes as the runner starts; give it the time to.
    await asyncio.sleep(0.2)
    await store.cancel("slow", "t1", int(time.time() * 1000), "noticed")
    started = time.monotonic()
    assert await _until_ended(store, "slow") is ExecutionStatus.CANCELLED
    assert time.monotonic() - started < 1.0
    last = (await store.read("slow", 0, 50))[-1]
    assert last.error is not None and last.error.message == "noticed"
    await runner.stop(1.0)


async def test_the_cancel_listener_resubscribes_after_an_outage() -> None:
    store = _LosesItsNoticesOnce(MemoryStore(StoreConfig(keys=Keys("held", 2))))
    runner = _runner(cast(Store, store), heartbeat_s=60)
    slow = {"id": "nap", "type": "test_sleep", "parameters": {"ms_min": 5000, "ms_max": 5000}}
    runner.start(_spec("slow", slow))
    await asyncio.wait_for(store.resubscribed.wait(), 2.0)
    assert await _until_status(cast(Store, store), "slow", ExecutionStatus.RUNNING)
    await asyncio.sleep(0.05)
    await store.cancel("slow", "t1", int(time.time() * 1000), "after the outage")
    assert await _until_ended(cast(Store, store), "slow") is ExecutionStatus.CANCELLED
    assert store.subscriptions == 2
    await runner.stop(1.0)
