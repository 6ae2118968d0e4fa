"""Fairness between tenants, on both adapters (docs/redis-layout.md, "Fairness
between tenants"): a tenant holds at most ``tenant_cap`` places per partition
in the job streams; the rest waits parked and takes a place when one frees."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from nodedrop.store import (
    Acquired,
    Commit,
    EventType,
    ExecutionStatus,
    JobSpec,
    Transition,
)
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS, ids_in
from tests.store.conftest import make_config, open_redis_store

Store = RedisStore | MemoryStore
S = ExecutionStatus
LEASE = 30_000
# Two places per tenant in each of the 4 partitions.
MAX_ACTIVE = 8


_last = [0]


def now() -> int:
    """Strictly increasing: parked jobs are ordered by arrival ms (then by id)."""
    _last[0] = max(_last[0] + 1, int(time.time() * 1000))
    return _last[0]


def fair_config(max_active: int = MAX_ACTIVE):  # type: ignore[no-untyped-def]
    return dataclasses.replace(make_config(), tenant_max_active=max_active)


@contextlib.asynccontextmanager
async def _open(kind: str, redis_url: str, max_active: int = MAX_ACTIVE) -> AsyncIterator[Store]:
    if kind == "memory":
        yield MemoryStore(fair_config(max_active))
        return
    async with open_redis_store(redis_url, fair_config(max_active)) as s:
        yield s


@pytest.fixture(params=["redis", "memory", "cluster"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Store]:
    if request.param == "cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    async with _open(request.param, redis_url) as s:
        yield s


def spec(x: str, tenant: str, **kw: object) -> JobSpec:
    return JobSpec(x, tenant, "wf", '{"nodes": []}', **{**DEFAULT_JOB_SETTINGS, **kw})  # type: ignore[arg-type]


async def read_ids(store: Store) -> list[str]:
    return [d.execution_id for d in await store.read_jobs("w1", 100, 0)]


async def lease(store: Store) -> dict[str, Acquired]:
    acquired = await store.acquire(await store.read_jobs("w1", 100, 0), LEASE, now())
    return {a.delivery.execution_id: a for a in acquired}


async def end(store: Store, acq: Acquired, transition: Transition) -> None:
    assert acq.lease is not None
    (r,) = await store.commit([Commit(acq.lease, transition=transition)], now())
    assert r.ok


def test_the_cap_is_per_partition_and_range_checked() -> None:
    assert fair_config(8).tenant_cap == 2
    assert fair_config(9).tenant_cap == 3
    assert fair_config(0).tenant_cap == 0
    with pytest.raises(ValueError, match="tenant_max_active"):
        fair_config(-1)
    with pytest.raises(ValueError, match="tenant_max_active"):
        fair_config(10_000_001)


async def test_another_tenant_is_not_queued_behind_a_backlog(store: Store) -> None:
    a = ids_in(store.config.keys, 0, 6, "a")
    (b,) = ids_in(store.config.keys, 0, 1, "b")
    for x in a:
        await store.enqueue(spec(x, "ta"), now())
    await store.enqueue(spec(b, "tb"), now())
    st = await store.stats(now())
    # Parked jobs count as waiting.
    assert (st.waiting, st.active) == (7, 0)
    # A's two places, then B: not behind A's four parked jobs.
    assert await read_ids(store) == [a[0], a[1], b]
    assert await read_ids(store) == []


async def test_the_end_of_an_attempt_promotes_the_next_parked_job(store: Store) -> None:
    a = ids_in(store.config.keys, 1, 4, "a")
    for x in a:
        await store.enqueue(spec(x, "ta"), now())
    got = await lease(store)
    assert sorted(got) == sorted(a[:2])
    await end(store, got[a[0]], Transition(S.COMPLETED))
    assert await read_ids(store) == [a[2]]
    st = await store.stats(now())
    assert (st.waiting, st.active) == (1, 2)
    # Other partitions are not held back by this one.
    other = ids_in(store.config.keys, 2, 2, "a")
    for x in other:
        await store.enqueue(spec(x, "ta"), now())
    assert sorted(await read_ids(store)) == sorted(other)


async def test_parked_jobs_go_by_priority_then_arrival(store: Store) -> None:
    a = ids_in(store.config.keys, 0, 5, "a")
    await store.enqueue(spec(a[0], "ta"), now())
    await store.enqueue(spec(a[1], "ta"), now())
    await store.enqueue(spec(a[2], "ta"), now())
    await store.enqueue(spec(a[3], "ta"), now())
    await store.enqueue(spec(a[4], "ta", priority=50), now())
    st = await store.stats(now())
    assert {(lane.priority, lane.waiting) for lane in st.lanes} == {(10, 1), (0, 4)}
    got = await lease(store)
    await end(store, got[a[0]], Transition(S.COMPLETED))
    await end(store, got[a[1]], Transition(S.COMPLETED))
    assert await read_ids(store) == [a[4], a[2]]


async def test_a_parked_job_can_be_cancelled_and_never_runs(store: Store) -> None:
    a = ids_in(store.config.keys, 3, 4, "a")
    for x in a:
        await store.enqueue(spec(x, "ta"), now())
    assert await store.cancel(a[3], "ta", now(), "not needed") is S.CANCELLED
    events = await store.read(a[3], 0, 10)
    assert [e.type for e in events] == [EventType.EXECUTION_QUEUED, EventType.EXECUTION_CANCELLED]
    assert (await store.stats(now())).waiting == 3
    # Cancelling a job waiting in the stream gives its place to the next parked one.
    assert await store.cancel(a[0], "ta", now()) is S.CANCELLED
    got = await lease(store)
    assert sorted(x for x, acq in got.items() if acq.lease) == sorted([a[1], a[2]])
    assert got[a[0]].skipped == "terminal"
    for x in (a[1], a[2]):
        await end(store, got[x], Transition(S.COMPLETED))
    assert await read_ids(store) == []
    assert (await store.stats(now())).waiting == 0


async def test_retries_and_the_failed_queue_go_through_the_cap(store: Store) -> None:
    a = ids_in(store.config.keys, 0, 3, "a")
    for x in a:
        await store.enqueue(spec(x, "ta", max_attempts=3), now())
    got = await lease(store)
    t0 = now()
    # A retry gives its place back at once ...
    await end(store, got[a[0]], Transition(S.RETRY_SCHEDULED, retry_at_ms=t0))
    assert await read_ids(store) == [a[2]]
    # ... and comes back through admission: the tenant is full, so it parks.
    assert await store.move_due(t0, 100) == 0
    st = await store.stats(now())
    assert (st.waiting, st.delayed, st.active) == (1, 0, 2)
    assert await read_ids(store) == []
    await end(store, got[a[1]], Transition(S.COMPLETED))
    ds = await store.read_jobs("w1", 100, 0)
    assert [(d.execution_id, d.attempt) for d in ds] == [(a[0], 2)]
    (acq,) = await store.acquire(ds, LEASE, now())
    # Dead-lettered: the place is given back ...
    await end(store, acq, Transition(S.FAILED, dead_letter_reason="boom", failed_node="n"))
    b = ids_in(store.config.keys, 0, 2, "b")
    for x in b:
        await store.enqueue(spec(x, "ta"), now())
    assert await read_ids(store) == [b[0]]
    # ... and a retry from the failed queue parks behind b[1], the tenant being full.
    assert await store.retry_failed([a[0]], False, now()) == 1
    assert await read_ids(store) == []
    assert (await store.stats(now())).waiting == 2
    # Reclaimed past the limit (a[2] and b[0], read but never started): both are
    # dead-lettered and their places go to the parked jobs, in arrival order.
    report = await store.reclaim(min_idle_ms=0, max_reclaims=0, limit=100)
    assert report.dead_lettered == 2
    ds = await store.read_jobs("w1", 100, 0)
    assert [(d.execution_id, d.attempt) for d in ds] == [(b[1], 1), (a[0], 3)]


async def test_the_sweep_promotes_into_places_given_back_without_a_promotion(
    store: Store,
) -> None:
    a = ids_in(store.config.keys, 2, 3, "a")
    for x in a:
        await store.enqueue(spec(x, "ta"), now())
    got = await lease(store)
    first = got[a[0]]
    assert first.lease is not None
    # Cancelled while running, then handed back: the next acquire ends it.
    assert await store.cancel(a[0], "ta", now()) is S.RUNNING
    assert await store.release([first.lease]) == [True]
    (skip,) = await store.acquire(await store.read_jobs("w1", 100, 0), LEASE, now())
    assert skip.skipped == "cancelled"
    assert await read_ids(store) == []
    # The scheduler's pass fills the free place.
    assert await store.move_due(now(), 100) == 1
    assert await read_ids(store) == [a[2]]


async def test_without_a_cap_every_job_goes_to_its_stream(redis_url: str) -> None:
    for kind in ("redis", "memory"):
        async with _open(kind, redis_url, max_active=0) as store:
            a = ids_in(store.config.keys, 0, 5, "a")
            (b,) = ids_in(store.config.keys, 0, 1, "b")
            for x in a:
                await store.enqueue(spec(x, "ta"), now())
            await store.enqueue(spec(b, "tb"), now())
            assert await read_ids(store) == [*a, b]


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_places_of_vanished_executions_are_given_back(
    kind: str, redis_url: str, request: pytest.FixtureRequest
) -> None:
    """Redis only: an entry whose state expired is acked as unknown without its
    tenant; the sweep finds the stale places of a tenant at its cap (on a
    cluster, among the places the scheduler read and declared first)."""
    if kind == "cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    async with _open("redis", redis_url) as store:
        assert isinstance(store, RedisStore)
        a = ids_in(store.config.keys, 1, 3, "a")
        for x in a:
            await store.enqueue(spec(x, "ta"), now())
        keys = store.config.keys
        await store.client.delete(keys.exec(a[0]), keys.exec(a[1]))
        got = await store.acquire(await store.read_jobs("w1", 100, 0), LEASE, now())
        assert [g.skipped for g in got] == ["unknown", "unknown"]
        assert await read_ids(store) == []
        assert await store.move_due(now(), 100) == 1
        assert await read_ids(store) == [a[2]]
        assert await store.client.scard(keys.admitted(1, "ta")) == 1


async def test_a_place_an_older_version_admitted_is_given_back(redis_url: str) -> None:
    """Redis only: during a rolling upgrade an execution admitted by an older
    process holds its place in the older sorted set ``in:<tenant>``
    (docs/operations.md, "Upgrade"). Its end gives that place back and hands
    the tenant's next parked job a place, as for a place of the set."""
    async with _open("redis", redis_url) as store:
        assert isinstance(store, RedisStore)
        a = ids_in(store.config.keys, 1, 3, "a")
        for x in a:
            await store.enqueue(spec(x, "ta"), now())
        got = await lease(store)
        assert sorted(got) == sorted(a[:2])
        keys = store.config.keys
        older = keys.base(1) + "in:ta"
        # What an older enqueue left: a[0]'s place in the sorted set, not the set.
        await store.client.srem(keys.admitted(1, "ta"), a[0])
        await store.client.zadd(older, {a[0]: now()})
        await end(store, got[a[0]], Transition(S.COMPLETED))
        assert await store.client.zcard(older) == 0
        assert await read_ids(store) == [a[2]]
        assert await store.client.scard(keys.admitted(1, "ta")) == 2
