"""Real worker processes: kill -9, SIGSTOP past the lease, SIGTERM drain, Redis restart."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.store import EventType, ExecutionStatus
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_store import RedisStore
from tests.worker.wq_helpers import (
    assert_gap_free,
    chain,
    side_effects,
    sleepy,
    spec,
    wait_status,
    worker_env,
)
from tests.worker.wq_processes import PrivateRedis, Proc, wait_scheduler

S = ExecutionStatus
pytestmark = pytest.mark.slow


def now() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


@dataclass
class Harness:
    store: RedisStore
    procs: list[Proc]
    folder: Path
    redis_url: str
    prefix: str
    side_effects: Path

    def worker(self, name: str, **extra: str) -> Proc:
        env = worker_env(
            self.redis_url,
            self.prefix,
            NODEDROP_WORKER_ID=name,
            ND_TEST_SIDE_EFFECTS=str(self.side_effects),
            **extra,
        )
        p = Proc("worker", env, self.folder / f"{name}.log")
        self.procs.append(p)
        return p


@pytest.fixture
def harness(  # noqa: PLR0917 - pytest passes fixtures by name
    store: RedisStore,
    procs: list[Proc],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    side_effect_log: Path,
) -> Harness:
    return Harness(store, procs, tmp_path, redis_url, redis_prefix, side_effect_log)


async def test_kill_9_loses_nothing_and_reruns_no_completed_node(
    harness: Harness, maintenance: Maintenance
) -> None:
    store, side_effect_log = harness.store, harness.side_effects
    a = harness.worker("a", EXECUTION_WORKER_CONCURRENCY="100")
    b = harness.worker("b", EXECUTION_WORKER_CONCURRENCY="100")
    await a.wait_consuming()
    await b.wait_consuming()
    wf = chain(*(sleepy(f"n{i}", 50, 300) for i in range(1, 5)))
    ids = [f"k9-{i}" for i in range(200)]
    await store.enqueue_many([spec(x, wf) for x in ids], now())
    await asyncio.sleep(0.6)
    a.signal(signal.SIGKILL)
    await a.wait_exit(5)
    # What was durably completed at the moment of the kill.
    committed = {(x, node) for x in ids for node in await store.outputs(x)}
    assert committed, "the kill came before any node committed"
    await wait_status(store, ids, {S.COMPLETED}, 40)
    runs = Counter((x, node) for x, node, _, _ in side_effects(side_effect_log))
    rerun = [(k, runs[k]) for k in committed if k[1] != "start" and runs[k] != 1]
    assert rerun == [], rerun
    # Every node of every execution ran at least once.
    assert all(runs[(x, f"n{i}")] >= 1 for x in ids for i in range(1, 5))
    assert await store.pending() == 0
    assert (await b.status()).completed_jobs > 0
    for x in ids[:20]:
        assert_gap_free(await store.read(x, 0, 100))
    # DrainWorker does what SIGTERM does: the process drains and exits 0.
    assert (await b.drain()).active_jobs == 0
    assert await b.wait_exit(10) == 0


async def test_sigstop_past_the_lease_is_fenced_out(
    harness: Harness, maintenance: Maintenance
) -> None:
    store, side_effect_log = harness.store, harness.side_effects
    a = harness.worker("a")
    await a.wait_consuming()
    wf = chain(sleepy("a", 100, 100), sleepy("b", 1500, 1500), sleepy("c", 100, 100))
    await store.enqueue(spec("stop-1", wf), now())
    # Stop the worker while "b" runs, after "a" was committed.
    deadline = time.monotonic() + 10
    while "a" not in await store.outputs("stop-1"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    a.signal(signal.SIGSTOP)
    b = harness.worker("b")
    await b.wait_consuming()
    await wait_status(store, ["stop-1"], {S.COMPLETED}, 15)
    before = await store.read("stop-1", 0, 100)
    a.signal(signal.SIGCONT)
    # A wakes up: its heartbeat and its late commit of "b" meet a newer fence.
    deadline = time.monotonic() + 5
    while (await a.status()).fence_refusals == 0:
        assert time.monotonic() < deadline, "no fence refusal counted"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.8)
    after = await store.read("stop-1", 0, 100)
    assert after == before, "the stopped worker wrote after waking up"
    (st,) = await store.states(["stop-1"])
    assert st is not None and st.status is S.COMPLETED
    assert_gap_free(after)
    completed = [e.node_id for e in after if e.type is EventType.NODE_COMPLETED]
    assert completed == ["start", "a", "b", "c"]
    assert [x for x, n, _, _ in side_effects(side_effect_log) if n == "a"] == ["stop-1"]
    assert await store.pending() == 0


async def test_sigterm_drains_and_exits_0(harness: Harness) -> None:
    store = harness.store
    extra = {"EXECUTION_WORKER_CONCURRENCY": "5", "NODEDROP_SHUTDOWN_GRACE_S": "3"}
    a = harness.worker("a", **extra)
    await a.wait_consuming()
    short = chain(sleepy("s", 800, 800))
    long = chain(sleepy("l", 20_000, 20_000))
    first = [f"in-{i}" for i in range(4)]
    await store.enqueue_many([spec(x, short) for x in first], now())
    await store.enqueue(spec("long-1", long), now())
    await wait_status(store, [*first, "long-1"], {S.RUNNING}, 5)
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    later = [f"after-{i}" for i in range(5)]
    await store.enqueue_many([spec(x, short) for x in later], now())
    assert await a.wait_exit(8) == 0
    assert time.monotonic() - t0 < 3 + 1.5
    # In-flight short work finished; the long one was handed back; nothing new was read.
    states = await store.states([*first, "long-1", *later])
    assert [s.status if s else None for s in states] == [S.COMPLETED] * 4 + [S.QUEUED] * 6
    for x in later:
        types = [e.type for e in await store.read(x, 0, 10)]
        assert types == [EventType.EXECUTION_QUEUED]
    assert await store.pending() == 0
    b = harness.worker("b", **extra)
    await b.wait_consuming()
    await wait_status(store, later, {S.COMPLETED}, 10)
    await wait_status(store, ["long-1"], {S.RUNNING}, 5)


async def test_drain_worker_with_a_shorter_grace_hands_back_sooner(harness: Harness) -> None:
    store = harness.store
    a = harness.worker("a", NODEDROP_SHUTDOWN_GRACE_S="30")
    await a.wait_consuming()
    await store.enqueue(spec("long-2", chain(sleepy("l", 20_000, 20_000))), now())
    await wait_status(store, ["long-2"], {S.RUNNING}, 5)
    t0 = time.monotonic()
    assert (await a.drain(grace_s=0.5)).active_jobs == 1
    assert await a.wait_exit(10) == 0
    # Well within the configured 30 s: the request's half second, then the hand-back.
    assert time.monotonic() - t0 < 5
    (st,) = await store.states(["long-2"])
    assert st is not None and st.status is S.QUEUED
    assert await store.pending() == 0


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    r = PrivateRedis(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.kill()


async def test_redis_restart_under_load_recovers(
    private_redis: PrivateRedis, procs: list[Proc], tmp_path: Path
) -> None:
    prefix = "rr"
    env = worker_env(private_redis.url, prefix, EXECUTION_WORKER_CONCURRENCY="50")
    worker = Proc("worker", env, tmp_path / "worker.log")
    procs.append(worker)
    sched_env = dict(env, NODEDROP_RECLAIM_INTERVAL_S="0.2", NODEDROP_MOVER_INTERVAL_S="0.05")
    scheduler = Proc("scheduler", sched_env, tmp_path / "scheduler.log")
    procs.append(scheduler)
    await worker.wait_consuming()
    await wait_scheduler(scheduler.addr)
    store = RedisStore.from_url(private_redis.url, StoreConfig(keys=Keys(prefix, 4)))
    try:
        wf = chain(sleepy("a", 200, 400), sleepy("b", 200, 400))
        lost = [f"lost-{i}" for i in range(40)]
        await store.enqueue_many([spec(x, wf) for x in lost], now())
        await asyncio.sleep(0.3)
        private_redis.kill()
        await asyncio.sleep(0.5)
        private_redis.start()
        # Enqueue retries until Redis answers again (the client reconnects by itself).
        fresh = [f"fresh-{i}" for i in range(10)]
        retry = [spec(x, wf, backoff_s=0.1) for x in fresh]
        deadline = time.monotonic() + 10
        while True:
            try:
                await store.enqueue_many(retry, now())
                break
            except (ConnectionError, OSError, Exception) as e:
                assert time.monotonic() < deadline, e
                await asyncio.sleep(0.1)
        await wait_status(store, fresh, {S.COMPLETED}, 15)
        assert worker.alive() and scheduler.alive()
        # State that Redis lost is reported unknown, never as still running.
        assert await store.states(lost) == [None] * len(lost)
        # A delayed job after the restart: the scheduler's mover works again.
        await store.enqueue(spec("delayed-1", wf, run_at_ms=now() + 300), now())
        await wait_status(store, ["delayed-1"], {S.COMPLETED}, 10)
        assert await store.pending() == 0
    finally:
        await store.close()
