"""Two defects the fault soak found in workers, on real worker processes.

- A drain whose last commits go out in a second round waited out its whole
  grace period: the committer went back to waiting after that round and
  nothing woke it. Here Redis is reached through a slow link, so the jobs'
  ends straddle two commit rounds.
- Acquiring a delivery did not check that the stream entry was still pending
  for the worker: a worker whose read reply was held up past the lease (a
  silent partition) leased the attempt the reclaimer had already handed to
  another worker, and fenced that healthy worker out.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.store import EventType, ExecutionStatus
from nodedrop.store.keys import JOBS_GROUP
from nodedrop.store.redis_store import RedisStore
from tests.helpers.tcp_proxy import TcpProxy
from tests.worker.wq_helpers import chain, side_effects, sleepy, spec, wait_status, worker_env
from tests.worker.wq_processes import Proc

S = ExecutionStatus
pytestmark = pytest.mark.slow


def now() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


async def _proxy(redis_url: str, delay_s: float = 0.0) -> TcpProxy:
    if redis_url.startswith("redis+cluster://"):
        # A cluster client learns every node's address from the cluster itself
        # and connects to it directly: one port's proxy cannot slow or cut it.
        pytest.skip("the TCP proxy stands in front of one Redis, not a cluster")
    proxy = TcpProxy(urlsplit(redis_url).port or 6379, delay_s=delay_s)
    await proxy.start()
    return proxy


@pytest.fixture
async def slow_link(redis_url: str) -> AsyncIterator[TcpProxy]:
    proxy = await _proxy(redis_url, delay_s=0.15)
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def link(redis_url: str) -> AsyncIterator[TcpProxy]:
    proxy = await _proxy(redis_url)
    try:
        yield proxy
    finally:
        await proxy.close()


def _via(proxy: TcpProxy) -> str:
    return f"redis://127.0.0.1:{proxy.port}/0"


@pytest.mark.timeout(60)
async def test_drain_ends_after_its_last_commit_round(
    store: RedisStore, procs: list[Proc], tmp_path: Path, redis_prefix: str, slow_link: TcpProxy
) -> None:
    env = worker_env(
        _via(slow_link),
        redis_prefix,
        NODEDROP_WORKER_ID="drainer",
        NODEDROP_METRICS_ADDR="off",
        EXECUTION_WORKER_CONCURRENCY="8",
        NODEDROP_SHUTDOWN_GRACE_S="10",
        NODEDROP_LEASE_S="10",
        NODEDROP_HEARTBEAT_S="1",
    )
    worker = Proc("worker", env, tmp_path / "drainer.log")
    procs.append(worker)
    await worker.wait_consuming(20)
    # Ends 40 ms apart: while the first end's round crosses the slow link, the
    # others gather for a second round that starts after the drain began.
    ids = [f"drain-{i}" for i in range(6)]
    await store.enqueue_many(
        [spec(x, chain(sleepy("s", 1500 + 40 * i, 1500 + 40 * i))) for i, x in enumerate(ids)],
        now(),
    )
    await wait_status(store, ids, {S.RUNNING}, 10)
    began = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert await worker.wait_exit(15) == 0
    took = time.monotonic() - began
    assert await wait_status(store, ids, {S.COMPLETED}, 1) == [S.COMPLETED] * 6
    # The jobs end within 2 s and their commits need a few slow round trips; the
    # 10 s grace is not waited out.
    assert took < 5.0, f"drain took {took:.1f} s\n{worker.log.read_text()[-2000:]}"
    assert "commits still pending" not in worker.log.read_text()


async def _pending_for(store: RedisStore, consumer: str) -> list[str]:
    out: list[str] = []
    keys = store.config.keys
    for p in range(keys.partitions):
        rows = await store.client.xpending_range(
            keys.jobs(p), JOBS_GROUP, min="-", max="+", count=100, consumername=consumer
        )
        out += [str(r["message_id"]) for r in rows]
    return out


async def _poll(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(60)
async def test_a_delivery_reclaimed_while_held_up_is_not_acquired(  # noqa: PLR0917
    store: RedisStore,
    maintenance: Maintenance,
    procs: list[Proc],
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    link: TcpProxy,
    side_effect_log: Path,
) -> None:
    # "late" reads through the link with a long BLOCK, so its read is waiting in
    # Redis when the link goes silent: Redis delivers the job to it, the reply
    # is held up past the lease, and the reclaimer hands the job to "healthy".
    late = Proc(
        "worker",
        worker_env(
            _via(link),
            redis_prefix,
            NODEDROP_WORKER_ID="late",
            NODEDROP_METRICS_ADDR="off",
            NODEDROP_READ_BLOCK_S="30",
            ND_TEST_SIDE_EFFECTS=str(side_effect_log),
        ),
        tmp_path / "late.log",
    )
    procs.append(late)
    await late.wait_consuming(20)
    await asyncio.sleep(0.5)
    link.stall()
    x = "held-up-1"
    await store.enqueue(spec(x, chain(sleepy("s", 3000, 3000))), now())

    async def delivered_to_late() -> bool:
        return bool(await _pending_for(store, "late"))

    await _poll("the job delivered to the held-up worker", delivered_to_late, 5)

    async def reclaimed() -> bool:
        return not await _pending_for(store, "late")

    await _poll("the reclaimer to take the job back", reclaimed, 10)
    healthy = Proc(
        "worker",
        worker_env(
            redis_url,
            redis_prefix,
            NODEDROP_WORKER_ID="healthy",
            NODEDROP_METRICS_ADDR="off",
            ND_TEST_SIDE_EFFECTS=str(side_effect_log),
        ),
        tmp_path / "healthy.log",
    )
    procs.append(healthy)
    await healthy.wait_consuming(20)
    await wait_status(store, [x], {S.RUNNING}, 10)
    await asyncio.sleep(0.5)
    # The held-up reply arrives: the late worker must see the entry is no longer
    # its own and leave the attempt to the worker that holds it.
    link.heal()
    await wait_status(store, [x], {S.COMPLETED}, 20)
    status = await healthy.status()
    assert status.fence_refusals == 0, healthy.log.read_text()[-2000:]
    runs = [e for e in side_effects(side_effect_log) if e[0] == x]
    assert len(runs) == 1, runs
    events = await store.read(x, 0, 100)
    started = [e for e in events if e.type is EventType.NODE_STARTED and e.node_id == "s"]
    assert len(started) == 1, [(e.sequence, e.type, e.node_id) for e in events]
