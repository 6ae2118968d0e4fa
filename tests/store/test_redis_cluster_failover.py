"""A master of the cluster dies mid-run: its replica takes over, and every
execution the store acknowledged (and the master had replicated) still runs to
its end, through the store alone: the client follows the new topology, the
scripts are loaded again on the promoted node, the reads come back."""

from __future__ import annotations

import asyncio
import time
import uuid

from nodedrop.store import (
    Commit,
    EventDraft,
    EventType,
    ExecutionStatus,
    JobSpec,
    Transition,
    Unavailable,
)
from nodedrop.store.redis_cluster import RedisClusterStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.redis_cluster import ClusterNode, PrivateCluster, private_cluster
from tests.store.conftest import make_config

S = ExecutionStatus


def _now() -> int:
    return int(time.time() * 1000)


def _replicated(cluster: PrivateCluster) -> bool:
    """Every replica has everything its master wrote."""
    for node in cluster.nodes:
        info = cluster.cli("info", "replication", port=node.port)
        if "role:master" in info and "connected_slaves:1" not in info:
            return False
        if "role:master" in info:
            fields = dict(
                line.split(":", 1) for line in info.splitlines() if ":" in line and "=" not in line
            )
            offset = fields["master_repl_offset"].strip()
            if f"offset={offset}," not in info:
                return False
    return True


def _master_holding(cluster: PrivateCluster, slot: int) -> ClusterNode:
    for node in cluster.nodes:
        if "role:master" not in cluster.cli("info", "replication", port=node.port):
            continue
        if cluster.cli("cluster", "countkeysinslot", str(slot), port=node.port).strip() != "0":
            return node
    raise AssertionError(f"no master holds slot {slot}")


async def _run_all(store: RedisClusterStore, ids: set[str], deadline: float) -> None:
    """A minimal worker: read, lease, commit each as completed; outages retried."""
    done: set[str] = set()
    while done != ids:
        assert time.monotonic() < deadline, f"{len(ids - done)} never completed"
        try:
            deliveries = await store.read_jobs("w1", 50, 200)
            acquired = await store.acquire(deliveries, 30_000, _now(), "w1")
            commits = [
                Commit(
                    a.lease,
                    events=(EventDraft(EventType.EXECUTION_COMPLETED),),
                    transition=Transition(S.COMPLETED),
                )
                for a in acquired
                if a.lease is not None
            ]
            await store.commit(commits, _now())
            states = await store.states(sorted(ids - done))
            done |= {s.execution_id for s in states if s and s.status is S.COMPLETED}
            # A reclaim stands in for the scheduler: a delivery whose reply the
            # failover swallowed comes back once its lease idles out.
            await store.reclaim(1_000, 5, 100)
        except Unavailable:
            await asyncio.sleep(0.2)


async def test_a_master_failing_over_loses_no_acknowledged_execution() -> None:
    with private_cluster(masters=3, replicas=1) as cluster:
        store = RedisClusterStore.from_cluster_url(cluster.url, make_config())
        try:
            await store.connect()
            specs = [
                JobSpec(f"ex-{uuid.uuid4().hex[:10]}", "t1", "wf", "{}", **DEFAULT_JOB_SETTINGS)
                for _ in range(60)
            ]
            await store.enqueue_many(specs, _now())
            deadline = time.monotonic() + 20
            while not _replicated(cluster):
                assert time.monotonic() < deadline, "replicas never caught up"
                await asyncio.sleep(0.1)

            slot = int(cluster.cli("cluster", "keyslot", store.config.keys.jobs(0)))
            owner = _master_holding(cluster, slot)
            owner.kill()
            await _run_all(store, {s.execution_id for s in specs}, time.monotonic() + 90)
            # The slot is served by the promoted replica now.
            cluster.nodes.remove(owner)
            assert _master_holding(cluster, slot).port != owner.port
            cluster.nodes.append(owner)
            for s in specs:
                events = await store.read(s.execution_id, 0, 10)
                assert [e.sequence for e in events] == list(range(1, len(events) + 1))
                assert events[-1].type is EventType.EXECUTION_COMPLETED
        finally:
            await store.close()


async def _move_slot(cluster: PrivateCluster, slot: int, batch: int) -> None:
    """Reshard one slot as redis-cli does: IMPORTING/MIGRATING, MIGRATE the keys
    a few at a time, then the slot's new owner announced to every node."""
    source = _master_holding(cluster, slot)
    target = next(
        n
        for n in cluster.nodes
        if n is not source and "role:master" in cluster.cli("info", "replication", port=n.port)
    )
    ids = {n.port: cluster.cli("cluster", "myid", port=n.port).strip() for n in cluster.nodes}
    cluster.cli("cluster", "setslot", str(slot), "importing", ids[source.port], port=target.port)
    cluster.cli("cluster", "setslot", str(slot), "migrating", ids[target.port], port=source.port)
    while True:
        keys = cluster.cli(
            "cluster", "getkeysinslot", str(slot), str(batch), port=source.port
        ).split()
        if not keys:
            break
        cluster.cli(
            "migrate", "127.0.0.1", str(target.port), "", "0", "5000", "keys", *keys,
            port=source.port,
        )  # fmt: skip
        await asyncio.sleep(0.02)  # the store's calls go on in between
    for node in cluster.nodes:
        cluster.cli("cluster", "setslot", str(slot), "node", ids[target.port], port=node.port)


async def test_resharding_a_partition_under_load_loses_no_acknowledged_execution() -> None:
    with private_cluster(masters=3) as cluster:
        store = RedisClusterStore.from_cluster_url(cluster.url, make_config())
        try:
            await store.connect()
            specs = [
                JobSpec(f"ex-{uuid.uuid4().hex[:10]}", "t1", "wf", "{}", **DEFAULT_JOB_SETTINGS)
                for _ in range(200)
            ]
            await store.enqueue_many(specs, _now())
            slot = int(cluster.cli("cluster", "keyslot", store.config.keys.jobs(0)))
            before = _master_holding(cluster, slot).port
            run = asyncio.create_task(
                _run_all(store, {s.execution_id for s in specs}, time.monotonic() + 90)
            )
            await _move_slot(cluster, slot, batch=5)
            await run
            assert _master_holding(cluster, slot).port != before
            for s in specs:
                events = await store.read(s.execution_id, 0, 10)
                assert [e.sequence for e in events] == list(range(1, len(events) + 1))
                assert events[-1].type is EventType.EXECUTION_COMPLETED
        finally:
            await store.close()
