"""What only Redis Cluster asks of the store: the URL, the start-time checks, and
a slot migration met before a script runs, never halfway through it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from nodedrop.store import JobSpec, Misconfigured, Unavailable
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.redis_cluster import (
    RedisClusterStore,
    _PartitionReads,
    declared_keys,
    parse_cluster_url,
)
from nodedrop.store.redis_store import RedisStore
from nodedrop.store.scripts import SCRIPTS
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.redis_cluster import PrivateCluster, private_cluster
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
    assert {f"{base}in:t1", f"{base}park:t1", f"{base}parked", k.delayed(7)} <= set(enqueue)


async def _node_ids(cluster: PrivateCluster) -> dict[int, str]:
    ids = {}
    for node in cluster.nodes:
        ids[node.port] = cluster.cli("cluster", "myid", port=node.port).strip()
    return ids


def _owner(cluster: PrivateCluster, slot: int) -> int:
    for line in cluster.cli("cluster", "nodes").splitlines():
        fields = line.split()
        port = int(fields[1].split(":")[1].split("@")[0])
        for r in fields[8:]:
            lo, _, hi = r.partition("-")
            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                return port
    raise AssertionError(f"slot {slot} has no owner")


async def test_a_script_meets_a_migrating_slot_before_it_writes() -> None:
    """cancel.lua writes the cancel flag, then the event: with the event stream
    already moved to the importing node, an undeclared key failed the script
    after the flag was set (st=QUEUED cx=1, no CANCELLED event).  Declared, the
    whole call is refused with TRYAGAIN, and runs once the slot has moved."""
    with private_cluster(masters=3) as cluster:
        config: StoreConfig = make_config()
        store = RedisClusterStore.from_cluster_url(cluster.url, config)
        try:
            await store.connect()
            x = f"ex-{uuid.uuid4().hex[:10]}"
            await store.enqueue(
                JobSpec(x, "t1", "wf", '{"nodes": []}', **DEFAULT_JOB_SETTINGS), _now()
            )
            keys = config.keys
            slot = int(cluster.cli("cluster", "keyslot", keys.exec(x)))
            source = _owner(cluster, slot)
            target = next(n.port for n in cluster.nodes if n.port != source)
            ids = await _node_ids(cluster)
            cluster.cli("cluster", "setslot", str(slot), "importing", ids[source], port=target)
            cluster.cli("cluster", "setslot", str(slot), "migrating", ids[target], port=source)
            cluster.cli(
                "migrate", "127.0.0.1", str(target), "", "0", "5000",
                "keys", keys.exec_events(x), port=source,
            )  # fmt: skip

            # TRYAGAIN until the client's retries are spent: an outage to the caller.
            with pytest.raises(Unavailable):
                await store.cancel(x, "t1", _now())
            direct = aioredis.Redis(port=source, decode_responses=True)
            try:
                assert await direct.hmget(keys.exec(x), "st", "cx") == ["QUEUED", "0"]
            finally:
                await direct.aclose()

            # The rest of the slot moves; the same call then runs on the new owner.
            left = cluster.cli("cluster", "getkeysinslot", str(slot), "1000", port=source).split()
            cluster.cli(
                "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *left, port=source
            )
            for node in cluster.nodes:
                cluster.cli("cluster", "setslot", str(slot), "node", ids[target], port=node.port)
            assert (await store.cancel(x, "t1", _now())).value == "CANCELLED"
            events = await store.read(x, 0, 10)
            assert [e.type.value for e in events] == ["EXECUTION_QUEUED", "EXECUTION_CANCELLED"]
        finally:
            await store.close()


def test_every_script_is_declared() -> None:
    """declared_keys knows every script (a new one must say which keys it derives)."""
    k = Keys("nd", 4)
    for name in SCRIPTS:
        args = [k.base(1), "x", "t1", "0", "0", "0", "0", "0"]
        assert declared_keys(k, name, k.exec_in(1, "x"), args, (0,))[0] == k.exec_in(1, "x")


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
