"""Three defects the fault soak found around the API, on real service processes
(api, scheduler, worker started as `nodedrop <service>`).

- An API process killed while its history recorder held entries it had read
  left them pending forever under its consumer name: the PostgreSQL history
  of those executions kept holes. Another API process now claims them.
- Orphan recovery re-enqueued an execution Redis lost at attempt 1 again,
  so a failing node ran more than max_attempts times.
- After Redis lost its data the failed queue stayed empty while PostgreSQL
  still showed the executions dead-lettered. It is rebuilt from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from nodedrop.api import migrations
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.contract import to_proto
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.store import JobSpec, Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_store import RedisStore
from tests.api.private_pg import private_postgres
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS
from tests.helpers.services import ServiceProcess, isolated_env, start_service
from tests.helpers.system import until

pytestmark = pytest.mark.slow

PARTITIONS = 4


def _failing(max_attempts: int, backoff_s: float) -> dict[str, Any]:
    """A node that fails with a retryable error on every attempt: an http_request to
    a name that never resolves (no network needed)."""
    return {
        "name": "always-failing",
        "nodes": [
            {"id": "start", "type": "manual_trigger"},
            {
                "id": "flaky",
                "type": "execute_workflow",
                "parameters": {
                    "workflow": {
                        "name": "call",
                        "nodes": [
                            {"id": "in", "type": "manual_trigger"},
                            {
                                "id": "call",
                                "type": "http_request",
                                "parameters": {"url": "http://nd-test-unreachable.invalid/"},
                            },
                        ],
                        "connections": [{"from": "in", "to": "call"}],
                    }
                },
            },
        ],
        "connections": [{"from": "start", "to": "flaky"}],
        "settings": {"max_attempts": max_attempts, "backoff_s": backoff_s, "timeout_s": 60},
    }


async def _forget_everything(client: aioredis.Redis, prefix: str) -> None:
    """Redis loses its data (under this test's prefix; the server is shared)."""
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])


@dataclass
class System:
    env: dict[str, str]
    key: str
    dsn: str
    prefix: str
    store: RedisStore
    procs: dict[str, ServiceProcess]

    async def execute(self, workflow: dict[str, Any]) -> str:
        async with grpc.aio.insecure_channel(self.procs["api"].target) as channel:
            response = await ex_grpc.ExecutionServiceStub(channel).ExecuteWorkflow(
                ex_pb.ExecuteWorkflowRequest(
                    workflow=to_proto(workflow),
                    mode=execution_pb2.EXECUTION_MODE_QUEUE,
                    trigger_data_json="{}",
                ),
                metadata=(("authorization", f"Bearer {self.key}"),),
                timeout=10,
            )
        return str(response.execution_id)

    async def row(self, execution_id: str) -> asyncpg.Record | None:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchrow("SELECT * FROM executions WHERE id = $1", execution_id)
        finally:
            await conn.close()


def _env(redis_url: str, prefix: str, dsn: str) -> dict[str, str]:
    env = isolated_env(redis_url, prefix, dsn, 5.0)
    env.update(
        NODEDROP_PARTITIONS=str(PARTITIONS),
        NODEDROP_METRICS_ADDR="off",
        NODEDROP_LEASE_S="2",
        NODEDROP_HEARTBEAT_S="0.5",
        NODEDROP_RECLAIM_INTERVAL_S="0.5",
        NODEDROP_MOVER_INTERVAL_S="0.1",
        NODEDROP_RECOVERY_INTERVAL_S="0.5",
        NODEDROP_RECOVERY_MIN_AGE_S="0",
        NODEDROP_HISTORY_CLAIM_IDLE_S="1",
        NODEDROP_SERVICE_TOKEN=os.environ.get("NODEDROP_SERVICE_TOKEN", "test-service-token"),
        LOG_FORMAT="json",
    )
    return env


def _port(env: dict[str, str], variable: str) -> int:
    return int(env[variable].rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def system(
    redis_url: str, redis_prefix: str, dsn: str, *, services: tuple[str, ...]
) -> AsyncIterator[System]:
    env = _env(redis_url, redis_prefix, dsn)
    repo = await PostgresRepository.connect(dsn, min_size=1, max_size=2)
    try:
        key, _ = await create_key(repo, "t1", "soak-defects", ALL_SCOPES)
    finally:
        await repo.close()
    store = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, PARTITIONS)))
    procs: dict[str, ServiceProcess] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            for name in services:
                procs[name] = await stack.enter_async_context(
                    start_service(
                        name, env=env, port=_port(env, f"NODEDROP_{name.upper()}_ADDR"), wait=False
                    )
                )
            for name in services:
                await procs[name].wait_healthy(timeout_s=40)
            yield System(env, key.secret, dsn, redis_prefix, store, procs)
    finally:
        await store.close()


@pytest.mark.timeout(120)
async def test_recovery_keeps_the_attempt_count(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, pg_dsn: str
) -> None:
    async with system(
        redis_url, redis_prefix, pg_dsn, services=("scheduler", "api", "worker")
    ) as s:
        x = await s.execute(_failing(max_attempts=3, backoff_s=1.0))

        async def second_attempt_recorded() -> asyncpg.Record | None:
            row = await s.row(x)
            return row if row is not None and row["attempt"] >= 2 else None

        await until("attempt 2 recorded", second_attempt_recorded, 30)
        # Nothing runs it any more; then Redis loses everything.
        s.procs["worker"].process.kill()
        await s.procs["worker"].process.wait()
        await asyncio.sleep(1.0)
        row = await s.row(x)
        assert row is not None and row["status"] in ("running", "retry_scheduled"), row
        expected = row["attempt"] + (1 if row["status"] == "retry_scheduled" else 0)
        await _forget_everything(redis_client, redis_prefix)

        async def requeued_attempt() -> int | None:
            value = await redis_client.hget(s.store.config.keys.exec(x), "a")
            return int(value) if value is not None else None

        attempt = await until("orphan recovery to re-enqueue", requeued_attempt, 20)
        # Attempt 1 again would give the failing node max_attempts more runs.
        assert attempt == expected, (attempt, dict(row))
        assert attempt <= row["max_attempts"]


@pytest.mark.timeout(120)
async def test_failed_queue_is_rebuilt_after_redis_loses_its_data(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis, pg_dsn: str
) -> None:
    async with system(
        redis_url, redis_prefix, pg_dsn, services=("scheduler", "api", "worker")
    ) as s:
        x = await s.execute(_failing(max_attempts=1, backoff_s=0.1))

        async def dead_lettered() -> bool:
            jobs, _ = await s.store.list_failed(10, "")
            row = await s.row(x)
            return (
                [j.execution_id for j in jobs] == [x]
                and row is not None
                and (row["status"] == "failed" and row["last_sequence"] > 0)
            )

        await until("the execution in the failed queue and failed in PostgreSQL", dead_lettered, 30)
        before = (await s.row(x)) or {}
        await _forget_everything(redis_client, redis_prefix)

        async def listed_again() -> list[Any]:
            jobs, _ = await s.store.list_failed(10, "")
            return jobs

        (job,) = await until("the failed queue rebuilt", listed_again, 20)
        assert job.execution_id == x
        assert "cannot resolve" in job.reason, job
        assert job.node_id == "flaky" and job.attempts == 1 and job.tenant_id == "t1"
        # A retry of the rebuilt entry runs again and numbers its events after the
        # recorded ones: the history stays gap-free.
        assert await s.store.retry_failed([x], False, int(time.time() * 1000)) == 1

        async def failed_again() -> asyncpg.Record | None:
            row = await s.row(x)
            done = row is not None and row["attempt"] == 2 and row["status"] == "failed"
            return row if done else None

        row = await until("the retried attempt to fail again", failed_again, 30)
        assert row["last_sequence"] > before["last_sequence"]
        conn = await asyncpg.connect(pg_dsn)
        try:
            seqs = [
                r["sequence"]
                for r in await conn.fetch(
                    "SELECT sequence FROM execution_events WHERE execution_id = $1"
                    " ORDER BY sequence",
                    x,
                )
            ]
        finally:
            await conn.close()
        assert seqs == list(range(1, row["last_sequence"] + 1)), seqs


@pytest.mark.timeout(120)
async def test_history_entries_of_a_killed_api_are_recorded_by_another(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    with private_postgres() as pg:
        await migrations.apply(pg.dsn)
        store = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, PARTITIONS)))
        env = _env(redis_url, redis_prefix, pg.dsn)
        env["NODEDROP_PG_COMMAND_TIMEOUT_S"] = "2"
        port = _port(env, "NODEDROP_API_ADDR")
        try:
            async with start_service("api", env=env, port=port) as first:
                await first.wait_healthy(timeout_s=40)
                # PostgreSQL goes away: the recorder reads the new events and keeps
                # retrying them, unacknowledged, until the process is killed.
                await asyncio.to_thread(pg.stop)
                ids = [f"hist-{i}" for i in range(5)]
                await store.enqueue_many(
                    [
                        JobSpec(
                            x,
                            "t1",
                            "wf1",
                            '{"name": "w", "nodes": []}',
                            "{}",
                            **DEFAULT_JOB_SETTINGS,
                        )
                        for x in ids
                    ],
                    int(time.time() * 1000),
                )

                async def read_by_first() -> bool:
                    total = 0
                    for p in range(PARTITIONS):
                        with contextlib.suppress(aioredis.ResponseError):
                            info = await redis_client.xpending(
                                store.config.keys.events(p), "history"
                            )
                            total += int(info["pending"])
                    # The recorder retries its first batch and reads no further.
                    return total > 0

                await until("the recorder to read the events", read_by_first, 20)
                first.process.kill()
                await first.process.wait()
            await asyncio.to_thread(pg.start)
            async with start_service("api", env=env, port=port) as second:
                await second.wait_healthy(timeout_s=40)

                async def recorded() -> bool:
                    conn = await asyncpg.connect(pg.dsn)
                    try:
                        n = await conn.fetchval(
                            "SELECT count(*) FROM execution_events"
                            " WHERE execution_id = ANY($1::text[])",
                            ids,
                        )
                    finally:
                        await conn.close()
                    return bool(n == len(ids))

                await until("the second API to record what the first had read", recorded, 20)
        finally:
            await store.close()
