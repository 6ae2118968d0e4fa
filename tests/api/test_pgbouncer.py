"""PostgreSQL behind PgBouncer in transaction pooling mode (a real pgbouncer,
tests/helpers/pgbouncer.py): the statement cache setting, one migrator at a
time, one recovery pass at a time, and a dead lock holder that blocks nobody.

The repository conformance suite runs through the same PgBouncer too (the
``pgbouncer`` case of ``repo`` in tests/api/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from nodedrop.api import migrations
from nodedrop.api.app import ApiService
from nodedrop.api.migrations import MIGRATION_LOCK_KEY
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.repository_pg import RECOVERY_LOCK_KEY, PostgresRepository
from nodedrop.common.server import GrpcServer
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.api.harness import api_settings
from tests.helpers.pgbouncer import PgBouncer, jit_off

pytestmark = pytest.mark.timeout(120)

_PREPARED = re.compile(r'prepared statement "__asyncpg_\w+__" (does not exist|already exists)')


async def _connect(dsn: str, cache: int) -> PostgresRepository:
    return await PostgresRepository.connect(dsn, min_size=8, max_size=8, statement_cache_size=cache)


async def _busy(repo: PostgresRepository, rounds: int = 10) -> None:
    """Concurrent reads from every pooled connection: behind a transaction
    pooler each one lands on whichever server connection is free."""
    for _ in range(rounds):
        await asyncio.gather(*(repo.count_unfinished("tenant-a") for _ in range(16)))


async def test_the_statement_cache_breaks_transaction_pooling_and_the_setting_fixes_it(
    bouncer_dsn: str,
) -> None:
    cached = await _connect(bouncer_dsn, 100)
    try:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await _busy(cached)
        assert _PREPARED.search(str(caught.value)), caught.value
    finally:
        await cached.close()
    # NODEDROP_PG_STATEMENT_CACHE_SIZE=0: unnamed statements, parsed and run
    # within one server connection each time.
    uncached = await _connect(bouncer_dsn, 0)
    try:
        await _busy(uncached)
    finally:
        await uncached.close()


@pytest.fixture
async def empty_bouncer_dsn(pgbouncer: PgBouncer, empty_pg_dsn: str) -> str:
    await jit_off(empty_pg_dsn)
    return pgbouncer.dsn_for(empty_pg_dsn)


async def test_concurrent_migrators_through_pgbouncer_apply_each_version_once(
    empty_bouncer_dsn: str,
) -> None:
    runs = [migrations.apply(empty_bouncer_dsn, statement_cache_size=0) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*runs), 60)
    every = [m.version for m in migrations.available()]
    # One migrator at a time: the first applies everything, the others wait
    # for it and find nothing left.
    assert sorted(results, key=len) == [[], [], every]
    # No lock left behind on a pooled server connection: a later run is not
    # kept waiting.
    assert (
        await asyncio.wait_for(migrations.apply(empty_bouncer_dsn, statement_cache_size=0), 20)
        == []
    )


@pytest.fixture
async def replicas(bouncer_dsn: str) -> AsyncIterator[tuple[PostgresRepository, ...]]:
    """Two API replicas' repositories, through PgBouncer."""
    pair = (await _connect(bouncer_dsn, 0), await _connect(bouncer_dsn, 0))
    try:
        yield pair
    finally:
        for repo in pair:
            await repo.close()


async def test_one_recovery_pass_at_a_time_through_pgbouncer(
    replicas: tuple[PostgresRepository, PostgresRepository],
) -> None:
    a, b = replicas
    for _ in range(3):
        async with a.recovery_lock() as held:
            assert held
            # Every try of the other replica, over any server connection, is refused.
            for _ in range(8):
                async with b.recovery_lock() as other:
                    assert not other
                await _busy(a, rounds=1)
        # Released where it was taken: the other replica gets it now.
        async with b.recovery_lock() as taken:
            assert taken
            async with a.recovery_lock() as other:
                assert not other


# A replica that takes a lock through PgBouncer, says so, and waits to be killed.
_HOLDER = """
import asyncio, sys
import asyncpg
from nodedrop.api.repository_pg import advisory_xact_lock

async def main(dsn, key):
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    async with advisory_xact_lock(conn, key) as held:
        print("held" if held else "refused", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@contextlib.asynccontextmanager
async def _holder(dsn: str, key: int) -> AsyncIterator[None]:
    """A process that holds ``key`` through PgBouncer, SIGKILLed at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, dsn, str(key), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"held", line
        yield
    finally:
        process.kill()
        await process.wait()


async def test_a_killed_recovery_holder_blocks_nobody(
    bouncer_dsn: str, replicas: tuple[PostgresRepository, PostgresRepository]
) -> None:
    a, _ = replicas
    async with _holder(bouncer_dsn, RECOVERY_LOCK_KEY), a.recovery_lock() as held:
        assert not held
    # PgBouncer drops the server connection of a client gone mid-transaction,
    # and the lock with it; polled, since it notices the close asynchronously.
    for _ in range(100):
        async with a.recovery_lock() as held:
            if held:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the recovery lock of a killed replica was never released")


async def test_a_killed_migrator_blocks_nobody(empty_bouncer_dsn: str) -> None:
    async with _holder(empty_bouncer_dsn, MIGRATION_LOCK_KEY):
        waiting = asyncio.ensure_future(migrations.apply(empty_bouncer_dsn, statement_cache_size=0))
        await asyncio.sleep(1.0)
        # Queued behind the live holder.
        assert not waiting.done()
    applied = await asyncio.wait_for(waiting, 30)
    assert applied == [m.version for m in migrations.available()]


async def test_the_api_serves_through_pgbouncer_with_the_setting(
    empty_bouncer_dsn: str, redis_url: str, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    """The API as deployed behind PgBouncer: NODEDROP_PG_STATEMENT_CACHE_SIZE=0
    reaches its migrations and its pool; direct runs are recorded and listed."""
    settings = api_settings(
        redis_url,
        redis_prefix,
        {
            "DATABASE_URL": empty_bouncer_dsn,
            "NODEDROP_PG_STATEMENT_CACHE_SIZE": "0",
            "NODEDROP_PG_POOL_MIN": "4",
            "NODEDROP_PG_POOL_MAX": "8",
        },
    )
    assert settings.postgres.statement_cache_size == 0
    service = ApiService(settings)
    server = GrpcServer(service, settings.server, security=settings.security)
    await server.start()
    try:
        key, _ = await create_key(service.repository, "tenant-a", "a", ALL_SCOPES)
        md = (("authorization", f"Bearer {key.secret}"),)
        workflow = wf_pb.Workflow(
            name="through-pgbouncer",
            nodes=[
                wf_pb.Node(id="start", type="manual_trigger"),
                wf_pb.Node(id="n", type="set", parameters_json='{"fields": {"x": "1"}}'),
            ],
            connections=[wf_pb.Connection(source="start", target="n")],
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ex_grpc.ExecutionServiceStub(channel)
            started = await asyncio.gather(
                *(
                    stub.ExecuteWorkflow(
                        ex_pb.ExecuteWorkflowRequest(
                            workflow=workflow, mode=execution_pb2.EXECUTION_MODE_DIRECT
                        ),
                        metadata=md,
                    )
                    for _ in range(12)
                )
            )
            ids = {r.execution_id for r in started}
            for _ in range(200):
                listed = await stub.ListExecutions(
                    ex_pb.ListExecutionsRequest(page_size=50), metadata=md
                )
                done = {
                    e.id
                    for e in listed.executions
                    if e.status == execution_pb2.EXECUTION_STATUS_COMPLETED
                }
                if done >= ids:
                    break
                await asyncio.sleep(0.05)
            assert done >= ids, listed
    finally:
        await server.set_not_serving()
        await server.stop(1.0)


async def test_the_held_lock_holds_back_no_vacuum(
    pg_dsn: str, replicas: tuple[PostgresRepository, PostgresRepository]
) -> None:
    a, _ = replicas
    observer = await asyncpg.connect(pg_dsn)
    try:
        async with a.recovery_lock() as held:
            assert held
            rows = await observer.fetch(
                "SELECT backend_xmin FROM pg_stat_activity"
                " WHERE datname = current_database() AND state = 'idle in transaction'"
            )
            # The lock's transaction, idle during the pass, with no snapshot.
            assert len(rows) == 1 and rows[0]["backend_xmin"] is None, rows
    finally:
        await observer.close()
