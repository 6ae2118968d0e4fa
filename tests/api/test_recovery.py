"""Orphan recovery against a real scheduler and worker (in this process) on a
private redis-server: Redis loses everything with 100 executions in flight,
and every one still reaches a terminal state."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from nodedrop.api.model import ExecutionFilter, Status
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.common.server import GrpcServer
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.scheduler.app import SchedulerService
from nodedrop.scheduler.settings import SchedulerSettings
from nodedrop.worker.app import WorkerService
from nodedrop.worker.settings import WorkerSettings
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.api.harness import RunningApi, api_settings, running_api
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.redis_server import PrivateRedis, private_redis
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR

QUEUE = execution_pb2.EXECUTION_MODE_QUEUE


@dataclass
class Stack:
    api: RunningApi
    redis: PrivateRedis
    client: aioredis.Redis


@contextlib.asynccontextmanager
async def stack(pg_repo: PostgresRepository, *, scheduler_up: bool = True) -> AsyncIterator[Stack]:
    with private_redis() as redis:
        base = {
            "REDIS_URL": redis.url,
            "NODEDROP_REDIS_PREFIX": "nd",
            "NODEDROP_PARTITIONS": "4",
            "EXECUTION_WORKER_CONCURRENCY": "100",
            "NODEDROP_LEASE_S": "2",
            "NODEDROP_READ_BLOCK_S": "0.1",
            SERVICE_TOKEN_VAR: SERVICE_TOKEN,
        }
        sched_settings = SchedulerSettings.from_env(
            {**base, "NODEDROP_SCHEDULER_ADDR": "127.0.0.1:0"}
        )
        sched = GrpcServer(
            SchedulerService(sched_settings),
            sched_settings.server,
            security=sched_settings.security,
        )
        await sched.start()
        worker = WorkerService(WorkerSettings.from_env({**base, "NODEDROP_WORKER_ID": "w1"}))
        await worker.start()
        client = aioredis.Redis.from_url(redis.url)
        port = sched.port if scheduler_up else 1
        settings = api_settings(
            redis.url,
            "nd",
            {
                "NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{port}",
                "NODEDROP_RECOVERY_MIN_AGE_S": "0",
                "NODEDROP_RECOVERY_INTERVAL_S": "3600",
            },
        )
        try:
            async with running_api(settings, pg_repo) as api:
                yield Stack(api, redis, client)
        finally:
            await client.aclose()
            await worker.stop()
            await sched.set_not_serving()
            await sched.stop(1.0)


def _flow(wait_s: float) -> wf_pb.Workflow:
    return wf_pb.Workflow(
        name="slow",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="pause", type="wait", parameters_json=f'{{"seconds": {wait_s}}}'),
            wf_pb.Node(id="tag", type="set", parameters_json='{"fields": {"done": "true"}}'),
        ],
        connections=[
            wf_pb.Connection(source="start", target="pause"),
            wf_pb.Connection(source="pause", target="tag"),
        ],
    )


async def _all_terminal(
    repo: PostgresRepository, ids: set[str], timeout_s: float
) -> dict[str, Status]:
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, Status] = {}
    while time.monotonic() < deadline:
        records = await repo.list_executions("tenant-a", ExecutionFilter(), None, 1000)
        statuses = {r.id: r.status for r in records if r.id in ids}
        if len(statuses) == len(ids) and all(
            s not in (Status.QUEUED, Status.RUNNING, Status.RETRY_SCHEDULED)
            for s in statuses.values()
        ):
            return statuses
        await asyncio.sleep(0.2)
    raise AssertionError(f"not all terminal after {timeout_s} s: {sorted(statuses.values())}")


@pytest.mark.slow
async def test_redis_flushed_with_100_in_flight_every_one_ends(pg_repo: PostgresRepository) -> None:
    async with stack(pg_repo) as s:
        api = s.api
        submitted = await asyncio.gather(
            *(
                api.ex.ExecuteWorkflow(
                    ex_pb.ExecuteWorkflowRequest(workflow=_flow(3.0), mode=QUEUE), metadata=api.md
                )
                for _ in range(100)
            )
        )
        ids = {r.execution_id for r in submitted}
        await asyncio.sleep(0.5)
        # Redis loses everything: jobs, states, event streams, groups.
        await s.client.flushall()
        report = await api.service.recovery.run_once()
        assert report.ran and report.requeued == 100, report
        statuses = await _all_terminal(pg_repo, ids, 30.0)
        assert set(statuses.values()) == {Status.COMPLETED}
        # A second pass finds nothing to do: the scheduler knows every one.
        again = await api.service.recovery.run_once()
        assert again.requeued == 0 and again.failed == 0


async def test_enqueue_failure_is_acknowledged_then_recovered(
    pg_repo: PostgresRepository,
) -> None:
    # The API's scheduler address points nowhere: the row is stored, the
    # enqueue fails, the id is still returned (acknowledged).
    async with stack(pg_repo, scheduler_up=False) as s:
        r = await s.api.ex.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(workflow=_flow(0.0), mode=QUEUE), metadata=s.api.md
        )
        assert r.execution_id
        stored = await pg_repo.get_execution("tenant-a", r.execution_id)
        assert stored is not None and stored.status is Status.QUEUED


async def test_unrunnable_orphan_is_failed_with_a_reason(pg_repo: PostgresRepository) -> None:
    async with stack(pg_repo) as s:
        r = await s.api.ex.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(workflow=_flow(5.0), mode=QUEUE), metadata=s.api.md
        )
        await s.client.flushall()
        # The stored snapshot no longer parses (as if the format had moved on).
        async with pg_repo._pool.acquire() as conn:
            await conn.execute(
                "UPDATE executions SET definition = '{\"nodes\": 3}' WHERE id = $1", r.execution_id
            )
        report = await s.api.service.recovery.run_once()
        assert report.failed == 1
        record = await pg_repo.get_execution("tenant-a", r.execution_id)
        assert record is not None and record.status is Status.FAILED
        assert record.error_json is not None and "cannot run again" in record.error_json


async def test_one_replica_at_a_time(pg_repo: PostgresRepository) -> None:
    async with pg_repo.recovery_lock() as first, pg_repo.recovery_lock() as second:
        assert first and not second
    async with pg_repo.recovery_lock() as again:
        assert again


async def test_recorder_adopts_an_execution_the_scheduler_started(
    pg_repo: PostgresRepository,
) -> None:
    from nodedrop.contract import check  # noqa: PLC0415
    from nodedrop.store import JobSpec, Keys  # noqa: PLC0415
    from nodedrop.store.config import StoreConfig  # noqa: PLC0415
    from nodedrop.store.redis_store import RedisStore  # noqa: PLC0415

    async with stack(pg_repo) as s:
        definition, _ = check(_flow(0.0))
        assert definition is not None
        wf = await pg_repo.create_workflow("tenant-a", str(uuid.uuid4()), "slow", definition.json)
        store = RedisStore.from_url(s.redis.url, StoreConfig(keys=Keys("nd", 4)))
        try:
            # What a cron fire does: straight into the queue, never through the API.
            execution_id = str(uuid.uuid4())
            await store.enqueue(
                JobSpec(
                    execution_id,
                    "tenant-a",
                    wf.id,
                    definition.json,
                    '{"x": 1}',
                    **DEFAULT_JOB_SETTINGS,
                ),
                int(time.time() * 1000),
            )
        finally:
            await store.close()
        statuses = await _all_terminal(pg_repo, {execution_id}, 15.0)
        assert statuses[execution_id] is Status.COMPLETED
        record = await pg_repo.get_execution("tenant-a", execution_id, with_node_runs=True)
        assert record is not None and record.trigger_kind == "schedule"
        assert record.workflow_id == wf.id and {r.node_id for r in record.node_runs} == {
            "start",
            "pause",
            "tag",
        }


async def test_history_catches_up_with_an_execution_the_queue_saw_end(
    pg_repo: PostgresRepository,
) -> None:
    from nodedrop.api.batching import InsertBatcher  # noqa: PLC0415
    from nodedrop.api.executions import ExecutionManager  # noqa: PLC0415
    from nodedrop.api.queueing import KnownState  # noqa: PLC0415
    from nodedrop.api.recovery import OrphanRecovery  # noqa: PLC0415
    from nodedrop.store import (  # noqa: PLC0415
        Commit,
        Delivery,
        EventDraft,
        EventType,
        JobSpec,
        Keys,
        Transition,
    )
    from nodedrop.store import ExecutionStatus as StoreStatus  # noqa: PLC0415
    from nodedrop.store.config import StoreConfig  # noqa: PLC0415
    from nodedrop.store.memory import MemoryStore  # noqa: PLC0415
    from tests.api.test_direct import _stored_direct  # noqa: PLC0415
    from tests.api.test_rpc import FakeQueue  # noqa: PLC0415

    record = await _stored_direct(pg_repo)  # any stored, unfinished execution
    store = MemoryStore(StoreConfig(keys=Keys("m", 2)))
    await store.enqueue(
        JobSpec(
            record.id,
            "tenant-a",
            "",
            record.definition_json,
            "",
            run_at_ms=1,
            **DEFAULT_JOB_SETTINGS,
        ),
        0,
    )
    delivery = Delivery(store.config.keys.partition(record.id), 0, "", record.id, 1, "", 0)
    (acquired,) = await store.acquire([delivery], 30_000, 0)
    assert acquired.lease is not None
    done = EventDraft(EventType.EXECUTION_COMPLETED, "", '{"n": [{"x": 1}]}')
    await store.commit([Commit(acquired.lease, {}, (done,), Transition(StoreStatus.COMPLETED))], 0)

    class EndedQueue(FakeQueue):
        async def states(self, execution_ids: Sequence[str]) -> list[KnownState]:
            return [KnownState(i, True, Status.COMPLETED, 1) for i in execution_ids]

    queue = EndedQueue()
    manager = ExecutionManager(pg_repo, InsertBatcher(pg_repo), queue, None)
    recovery = OrphanRecovery(
        pg_repo, queue, manager, interval_s=3600, min_age_s=0, events=store,
        direct_margin_s=3600,
    )  # fmt: skip
    # The stored row is direct-mode; make it a queue-mode one the recorder missed.
    async with pg_repo._pool.acquire() as conn:
        await conn.execute("UPDATE executions SET mode = 'queue' WHERE id = $1", record.id)
    report = await recovery.run_once()
    assert report.requeued == 0 and report.failed == 0
    got = await pg_repo.get_execution("tenant-a", record.id)
    assert got is not None and got.status is Status.COMPLETED
    assert got.result_json == '{"n": [{"x": 1}]}'
