"""What only Redis Cluster asks of the store: the URL, the start-time checks, and
a slot migration met before a script runs, never halfway through it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from nodedrop.store import JobSpec, Misconfigured, Unavailable
from nodedrop.store.keys import Keys
from nodedrop.store.model import Commit, ExecutionStatus, Transition
from nodedrop.store.redis_cluster import (
    RedisClusterStore,
    _PartitionReads,
    admission_keys,
    declared_keys,
    parse_cluster_url,
)
from nodedrop.store.redis_store import RedisStore
from nodedrop.store.scripts import CLUSTER_SCRIPTS, SCRIPTS
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS, ids_in
from tests.helpers.redis_cluster import PrivateCluster, private_cluster, raw_client
from tests.store.conftest import make_config


def _now() -> int:
    return int(time.time() * 1000)


def test_the_cluster_url_names_seeds_and_credentials() -> None:
    seeds, user, password = parse_cluster_url("redis+cluster://u:p%40ss@10.0.0.1:7000,h2:7001")
    assert seeds == [("10.0.0.1", 7000), ("h2", 7001)]
    assert (user, password) == ("u", "p@ss")
    for bad in (
        "redis+cluster://h1",
        "redis+cluster://h1:0",
        "redis+cluster://h1:7000/3",
        "redis://h1:7000",
    ):
        with pytest.raises(Misconfigured):
            parse_cluster_url(bad)


def test_the_url_picks_the_adapter() -> None:
    config = make_config()
    assert type(RedisStore.from_url("redis://127.0.0.1:1/0", config)) is RedisStore
    assert type(RedisStore.from_url("redis+cluster://127.0.0.1:1", config)) is RedisClusterStore


async def test_a_single_node_url_at_a_cluster_node_is_refused(
    redis_cluster: PrivateCluster,
) -> None:
    store = RedisStore.from_url(f"redis://{redis_cluster.addresses[0]}/0", make_config())
    try:
        with pytest.raises(Misconfigured, match=r"redis\+cluster://"):
            await store.connect()
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["redis", "cluster"])
async def test_a_partition_count_other_than_the_deployments_is_refused(
    kind: str, redis_url: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_cluster").url if kind == "cluster" else redis_url
    first = make_config()
    other = dataclasses.replace(first, keys=Keys(first.keys.prefix, first.keys.partitions * 2))
    created = RedisStore.from_url(url, first)
    try:
        await created.connect()
        again = RedisStore.from_url(url, first)
        await again.connect()  # the same count starts
        await again.close()
        changed = RedisStore.from_url(url, other)
        with pytest.raises(Misconfigured, match="created with 4 partitions"):
            await changed.connect()
        await changed.close()
    finally:
        await created.delete_all()
        await created.close()


def test_every_declared_key_is_in_the_calls_slot() -> None:
    k = Keys("nd", 16)
    base = k.base(7)
    lanes = (10, 0)
    calls: dict[str, tuple[str, list[Any]]] = {
        "enqueue": (k.exec_in(7, "x"), [base, "x", "t1", "wf", "{}", "{}", "10"]),
        "commit": (k.exec_in(7, "x"), [base, "x", "1", "10", "1-0"]),
        "cancel": (k.exec_in(7, "x"), [base, "x", "t1"]),
        "take": (k.jobs(7, 10), [base, "w", 4, 0, 100, 60, "10", "0"]),
        "move_due": (k.delayed(7), [base, 0, 10, 4, 16, "10", "0"]),
    }
    for name, (key, args) in calls.items():
        keys = declared_keys(k, name, key, args, lanes)
        assert keys[0] == key
        assert len(keys) == len(set(keys))
        assert all(x.startswith(base) for x in keys), (name, keys)
    enqueue = declared_keys(k, "enqueue", *calls["enqueue"], lanes)
    ek = k.exec_in(7, "x")
    assert {f"{ek}:out", f"{ek}:ev", k.events(7), k.jobs(7, 10)} <= set(enqueue)
    assert {k.admitted(7, "t1"), f"{base}park:t1", f"{base}parked", k.delayed(7)} <= set(enqueue)
    # What the adapter reads before a call and declares with these.
    found = admission_keys(k, 7, "t1", ["y", "z"], lanes)
    assert all(x.startswith(base) for x in found), found
    assert {k.admitted(7, "t1"), f"{base}park:t1", k.exec_in(7, "y"), k.jobs(7, 10)} <= set(found)


class _Migration:
    """A partition's slot moving to another master as ``redis-cli --cluster
    reshard`` moves it: IMPORTING on the target, MIGRATING on the source, then
    its keys (MIGRATE), then the slot (SETSLOT NODE on every master)."""

    def __init__(self, cluster: PrivateCluster, key: str) -> None:
        self.cluster = cluster
        self.slot = int(cluster.cli("cluster", "keyslot", key))
        self.source = _owner(cluster, self.slot)
        self.target = next(n.port for n in cluster.nodes if n.port != self.source)
        self.ids = {
            n.port: cluster.cli("cluster", "myid", port=n.port).strip() for n in cluster.nodes
        }
        slot = str(self.slot)
        cluster.cli(
            "cluster", "setslot", slot, "importing", self.ids[self.source], port=self.target
        )
        cluster.cli(
            "cluster", "setslot", slot, "migrating", self.ids[self.target], port=self.source
        )

    def move(self, *keys: str) -> None:
        self.cluster.cli(
            "migrate", "127.0.0.1", str(self.target), "", "0", "5000",
            "keys", *keys, port=self.source,
        )  # fmt: skip

    def finish(self) -> None:
        left = self.cluster.cli(
            "cluster", "getkeysinslot", str(self.slot), "1000", port=self.source
        ).split()
        if left:
            self.move(*left)
        for node in self.cluster.nodes:
            self.cluster.cli(
                "cluster", "setslot", str(self.slot), "node", self.ids[self.target], port=node.port
            )

    def on_source(self) -> aioredis.Redis:
        """The source master alone: what it still holds, as the scripts saw it."""
        return aioredis.Redis(port=self.source, decode_responses=True)


def _owner(cluster: PrivateCluster, slot: int) -> int:
    for line in cluster.cli("cluster", "nodes").splitlines():
        fields = line.split()
        port = int(fields[1].split(":")[1].split("@")[0])
        for r in fields[8:]:
            lo, _, hi = r.partition("-")
            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                return port
    raise AssertionError(f"slot {slot} has no owner")


@contextlib.asynccontextmanager
async def _cluster_store(
    tenant_max_active: int = 64,
) -> AsyncIterator[tuple[PrivateCluster, RedisClusterStore]]:
    """A store on a private cluster of its own (its slots get moved)."""
    with private_cluster(masters=3) as cluster:
        config = dataclasses.replace(make_config(), tenant_max_active=tenant_max_active)
        store = RedisClusterStore.from_cluster_url(cluster.url, config)
        try:
            await store.connect()
            yield cluster, store
        finally:
            await store.close()


def _job(x: str, tenant: str = "t1", **kw: Any) -> JobSpec:
    settings = {**DEFAULT_JOB_SETTINGS, "completed_outputs": _RESUMED, **kw}
    return JobSpec(x, tenant, "wf", '{"nodes": []}', **settings)


async def _in_use(cluster: PrivateCluster, store: RedisClusterStore, p: int) -> None:
    """Partition ``p`` as one in use has it: its delayed, failed, stats and
    parked keys exist.  A declared key missing on a migrating slot's source has
    Redis refuse the script (TRYAGAIN) before it runs, which would hide what an
    undeclared key that moved does to it."""
    k = store.config.keys
    client = raw_client(cluster.url, decode_responses=True)
    try:
        far = 10**15  # never due, never listed before the test's own entries
        await client.zadd(k.delayed(p), {"in-use": far})
        await client.zadd(k.failed(p), {"in-use": far})
        await client.hset(k.stats(p), "in-use", 1)
        await client.sadd(k.parked(p), "in-use")
    finally:
        await client.aclose()


# Checkpoints, so that the execution's outputs hash exists too (see _in_use).
_RESUMED = {"n0": '{"main": []}'}


async def _event_types(store: RedisClusterStore, x: str) -> list[tuple[int, str]]:
    return [(e.sequence, e.type.value) for e in await store.read(x, 0, 100)]


async def test_a_script_meets_a_migrating_slot_before_it_writes() -> None:
    """cancel.lua writes the cancel flag, then the event: with the event stream
    already moved to the importing node, an undeclared key failed the script
    after the flag was set (st=QUEUED cx=1, no CANCELLED event).  Declared, the
    whole call is refused with TRYAGAIN, and runs once the slot has moved."""
    async with _cluster_store() as (cluster, store):
        x = f"ex-{uuid.uuid4().hex[:10]}"
        await store.enqueue(_job(x), _now())
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(x))
        moving.move(keys.exec_events(x))

        # TRYAGAIN until the client's retries are spent: an outage to the caller.
        with pytest.raises(Unavailable):
            await store.cancel(x, "t1", _now())
        async with moving.on_source() as direct:
            assert await direct.hmget(keys.exec(x), "st", "cx") == ["QUEUED", "0"]

        # The rest of the slot moves; the same call then runs on the new owner.
        moving.finish()
        assert (await store.cancel(x, "t1", _now())).value == "CANCELLED"
        assert await _event_types(store, x) == [(1, "EXECUTION_QUEUED"), (2, "EXECUTION_CANCELLED")]


async def test_take_leases_nothing_while_an_execution_it_read_is_moving() -> None:
    """take.lua read the entry and started the execution (RUNNING, a sequence
    taken) before it met the execution's moved event stream: a started
    execution without its EXECUTION_STARTED event, and no lease for anyone.
    Now the read is a plain command and the lease a script that declares the
    execution's keys: refused whole; the entry read is reclaimed as any entry
    read but never leased."""
    async with _cluster_store() as (cluster, store):
        (x,) = ids_in(store.config.keys, 0, 1, "ex")
        await _in_use(cluster, store, 0)
        await store.enqueue(_job(x), _now())
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(x))
        moving.move(keys.exec_events(x))

        with pytest.raises(Unavailable):
            await store.take("w1", 32, 30_000, _now())
        async with moving.on_source() as direct:
            assert await direct.hmget(keys.exec(x), "st", "seq", "f") == ["QUEUED", "1", "0"]

        moving.finish()
        assert (await store.reclaim(min_idle_ms=0, max_reclaims=5, limit=10)).requeued == 1
        (got,) = await store.take("w1", 32, 30_000, _now())
        assert got.lease is not None and got.delivery.execution_id == x
        assert await _event_types(store, x) == [(1, "EXECUTION_QUEUED"), (2, "EXECUTION_STARTED")]


async def test_reclaim_dead_letters_nothing_while_the_execution_is_moving() -> None:
    """reclaim.lua acked the entry and counted the reclaim before it met the
    moved event stream: the execution lost its entry, its sequence advanced
    without an event.  Now the claim is a plain command and the script declares
    the claimed execution's keys: refused whole, then dead-lettered fully."""
    async with _cluster_store() as (cluster, store):
        (x,) = ids_in(store.config.keys, 1, 1, "ex")
        await _in_use(cluster, store, 1)
        await store.enqueue(_job(x), _now())
        assert [d.execution_id for d in await store.read_jobs("w1", 10, 0)] == [x]
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(x))
        moving.move(keys.exec_events(x))

        with pytest.raises(Unavailable):
            await store.reclaim(min_idle_ms=0, max_reclaims=0, limit=10)
        async with moving.on_source() as direct:
            assert await direct.hmget(keys.exec(x), "st", "seq", "rc") == ["QUEUED", "1", "0"]
            stream = keys.jobs(keys.partition(x), 0)
            assert (await direct.xpending(stream, "workers"))["pending"] == 1

        moving.finish()
        assert (await store.reclaim(min_idle_ms=0, max_reclaims=0, limit=10)).dead_lettered == 1
        assert await _event_types(store, x) == [(1, "EXECUTION_QUEUED"), (2, "EXECUTION_FAILED")]
        failed, _ = await store.list_failed(10, "")
        assert [f.execution_id for f in failed] == [x, "in-use"]


async def test_move_due_moves_nothing_while_a_due_execution_is_moving() -> None:
    """move_due.lua took the due execution off the delayed set before it met its
    moved hash: the execution was in no stream and no set.  Now the due ids are
    read first and declared: the script is refused whole, then moves it."""
    async with _cluster_store() as (cluster, store):
        (x,) = ids_in(store.config.keys, 2, 1, "ex")
        await _in_use(cluster, store, 2)
        now = _now()
        await store.enqueue(_job(x, run_at_ms=now + 1000), now)
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(x))
        moving.move(keys.exec(x))

        with pytest.raises(Unavailable):
            await store.move_due(now + 2000, 100)
        async with moving.on_source() as direct:
            assert await direct.zscore(keys.delayed(keys.partition(x)), x) is not None

        moving.finish()
        assert await store.move_due(now + 2000, 100) == 1
        assert [d.execution_id for d in await store.read_jobs("w1", 10, 0)] == [x]


async def test_a_commit_promotes_nothing_while_the_next_parked_execution_is_moving() -> None:
    """commit.lua ended the attempt and popped the tenant's next parked
    execution before it met that execution's moved hash: the parked execution
    was in no stream and no backlog.  Now the tenant and its next parked
    execution are read first and declared: refused whole, then the commit ends
    the attempt and promotes it."""
    # One place per tenant and partition.
    async with _cluster_store(tenant_max_active=4) as (cluster, store):
        a, b = ids_in(store.config.keys, 1, 2, "ex")
        await _in_use(cluster, store, 1)
        for x in (a, b):
            await store.enqueue(_job(x), _now())
        (got,) = await store.acquire(await store.read_jobs("w1", 10, 0), 30_000, _now())
        assert got.lease is not None and got.delivery.execution_id == a
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(b))
        moving.move(keys.exec(b))

        done = Commit(got.lease, transition=Transition(ExecutionStatus.COMPLETED), number=1)
        with pytest.raises(Unavailable):
            await store.commit([done], _now())
        async with moving.on_source() as direct:
            assert await direct.hget(keys.exec(a), "st") == "RUNNING"
            assert await direct.zrange(keys.park(1, "t1"), 0, -1) == [b]

        moving.finish()
        (r,) = await store.commit([done], _now())
        assert r.ok
        assert [d.execution_id for d in await store.read_jobs("w1", 10, 0)] == [b]


async def test_an_operator_cancel_changes_nothing_while_the_tenants_backlog_is_moving() -> None:
    """cancel.lua without a tenant (an operator's) ended the execution, then met
    the tenant's moved backlog: cancelled, its place still taken, the parked
    execution never promoted.  Now the tenant is read first and its keys
    declared: refused whole, then cancelled with the place handed over."""
    async with _cluster_store(tenant_max_active=4) as (cluster, store):
        a, b = ids_in(store.config.keys, 2, 2, "ex")
        await _in_use(cluster, store, 2)
        for x in (a, b):
            await store.enqueue(_job(x), _now())
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(a))
        moving.move(keys.park(2, "t1"))

        with pytest.raises(Unavailable):
            await store.cancel(a, "", _now())
        async with moving.on_source() as direct:
            assert await direct.hmget(keys.exec(a), "st", "cx") == ["QUEUED", "0"]

        moving.finish()
        assert await store.cancel(a, "", _now()) is ExecutionStatus.CANCELLED
        assert await _event_types(store, a) == [(1, "EXECUTION_QUEUED"), (2, "EXECUTION_CANCELLED")]
        acquired = await store.acquire(await store.read_jobs("w1", 10, 0), 30_000, _now())
        assert {(acq.delivery.execution_id, acq.skipped) for acq in acquired} == {
            (a, "terminal"),
            (b, ""),
        }


async def test_acquire_of_a_cancelled_execution_ends_it_while_the_tenants_places_move() -> None:
    """acquire.lua ended a cancelled execution (event, CANCELLED, entry acked),
    then met the tenant's moved places: an error to the worker after all of
    that.  Now the acquire script touches only what it declares and the place is
    given back by a call of its own, which the migration refuses: the sweep
    gives it back and fills it once the slot has moved."""
    async with _cluster_store(tenant_max_active=4) as (cluster, store):
        a, b = ids_in(store.config.keys, 3, 2, "ex")
        await _in_use(cluster, store, 3)
        for x in (a, b):
            await store.enqueue(_job(x), _now())
        (got,) = await store.acquire(await store.read_jobs("w1", 10, 0), 30_000, _now())
        assert got.lease is not None
        assert await store.cancel(a, "t1", _now()) is ExecutionStatus.RUNNING
        assert await store.release([got.lease]) == [True]
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(a))
        moving.move(keys.admitted(3, "t1"))

        (ended,) = await store.acquire(await store.read_jobs("w1", 10, 0), 30_000, _now())
        assert ended.skipped == "cancelled"
        async with moving.on_source() as direct:
            assert await direct.hget(keys.exec(a), "st") == "CANCELLED"
        assert [t for _, t in await _event_types(store, a)][-1] == "EXECUTION_CANCELLED"

        moving.finish()
        assert await store.move_due(_now(), 100) == 1
        assert [d.execution_id for d in await store.read_jobs("w1", 10, 0)] == [b]


async def test_purging_the_failed_queue_changes_nothing_while_an_execution_is_moving() -> None:
    """purge_failed.lua took the execution off the failed queue before it met
    its moved hash to cut its TTL.  Now the queue is read first and each
    execution's keys declared: refused whole, then purged."""
    async with _cluster_store() as (cluster, store):
        x = f"ex-{uuid.uuid4().hex[:10]}"
        await store.enqueue(_job(x), _now())
        await store.read_jobs("w1", 10, 0)
        assert (await store.reclaim(min_idle_ms=0, max_reclaims=0, limit=10)).dead_lettered == 1
        keys = store.config.keys
        moving = _Migration(cluster, keys.exec(x))
        moving.move(keys.exec(x))

        with pytest.raises(Unavailable):
            await store.purge_failed([], True)
        async with moving.on_source() as direct:
            assert await direct.zscore(keys.failed(keys.partition(x)), x) is not None

        moving.finish()
        assert await store.purge_failed([], True) == 1
        assert await store.list_failed(10, "") == ([], "")
        ttl = await store.client.ttl(keys.exec(x))
        assert 0 < ttl <= store.config.completion_ttl_s


def test_every_script_is_declared() -> None:
    """declared_keys knows every script the cluster runs (a new one must say
    which keys it derives), and each that finds keys while it runs (a freed
    place's next parked job) does so in its cluster variant."""
    k = Keys("nd", 4)
    assert set(SCRIPTS) - set(CLUSTER_SCRIPTS) == {"take", "reclaim", "move_due"}
    for name, script in CLUSTER_SCRIPTS.items():
        args = [k.base(1), "x", "t1", "0", "0", "0", "0", "0"]
        assert declared_keys(k, name, k.exec_in(1, "x"), args, (0,))[0] == k.exec_in(1, "x")
        finds = ("fair_promote(", "fair_leave(", "fair_give_back(", "fair_unpark(", "fair_fill(")
        if any(x in script.source for x in finds):
            assert "local function declared(" in script.source, name
            assert name not in SCRIPTS or script.sha != SCRIPTS[name].sha


async def test_streams_from_before_the_count_was_recorded_tell_the_count(redis_url: str) -> None:
    old = make_config()  # 4 partitions
    store = RedisStore.from_url(redis_url, old)
    try:
        await store.ensure_groups()  # what every earlier start did, without a record
        for partitions in (2, 8):
            other = dataclasses.replace(old, keys=Keys(old.keys.prefix, partitions))
            changed = RedisStore.from_url(redis_url, other)
            with pytest.raises(Misconfigured, match="job streams of"):
                await changed.connect()
            await changed.close()
        await store.connect()  # the count it ran with: recorded from now on
        assert await store.client.get(old.keys.partition_count()) == "4"
    finally:
        await store.delete_all()
        await store.close()


class _FakePartitions:
    """Partition streams for ``_PartitionReads``: entries put in, read once; a
    blocking read waits for an entry up to its block time, as XREAD does."""

    def __init__(self, partitions: int) -> None:
        self.waiting: dict[int, list[int]] = {p: [] for p in range(partitions)}
        self._arrived = {p: asyncio.Event() for p in range(partitions)}

    def put(self, p: int, item: int) -> None:
        self.waiting[p].append(item)
        self._arrived[p].set()

    async def read(self, p: int, block_ms: int) -> list[int]:
        if block_ms and not self.waiting[p]:
            self._arrived[p].clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived[p].wait(), block_ms / 1000)
        out, self.waiting[p] = self.waiting[p], []
        return out


async def test_a_partition_read_that_answers_after_its_caller_left_comes_with_the_next() -> None:
    streams = _FakePartitions(2)
    reads: _PartitionReads[int] = _PartitionReads(2, streams.read)
    asyncio.get_running_loop().call_later(0.05, streams.put, 0, 10)
    assert await reads.get(10_000) == [10]  # partition 1's read is still blocked
    streams.put(1, 11)
    await asyncio.sleep(0.01)  # it answers while nobody waits for it
    assert await reads.get(100) == [11]
    await reads.reset()


async def test_entries_waiting_in_several_partitions_come_in_one_call() -> None:
    streams = _FakePartitions(3)
    reads: _PartitionReads[int] = _PartitionReads(3, streams.read)
    for p in range(3):
        streams.put(p, p)
    assert sorted(await reads.get(10_000)) == [0, 1, 2]
    await reads.reset()


async def test_a_non_blocking_read_does_not_wait_for_blocking_reads_in_flight() -> None:
    """The events feed follows a blocking tail with a non-blocking one, to take
    the rest of a commit into the same publish: that second read must not wait
    for the partitions whose blocking reads are still out."""
    streams = _FakePartitions(2)
    reads: _PartitionReads[int] = _PartitionReads(2, streams.read)
    assert await reads.get(50) == []  # idle: the next call blocks at once
    asyncio.get_running_loop().call_later(0.05, streams.put, 0, 10)
    assert await reads.get(10_000) == [10]  # partition 1 stays blocked
    streams.put(0, 20)
    assert await asyncio.wait_for(reads.get(0), 0.5) == [20]
    await reads.reset()
