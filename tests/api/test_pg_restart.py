"""PostgreSQL restarted under a load of ExecuteWorkflow calls (a private
server): calls fail fast with UNAVAILABLE (never hang, never INTERNAL), the
API serves again within 10 s of the server's return, and every execution it
acknowledged is in the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
import redis.asyncio as aioredis

from nodedrop.api import migrations
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.api.harness import RunningApi, api_settings, running_api
from tests.api.private_pg import PrivatePostgres, private_postgres
from tests.api.test_rpc import FakeQueue

CLIENTS = 8
FAST_S = 3.0


@dataclass
class Tally:
    acknowledged: list[str] = field(default_factory=list)
    errors: list[tuple[grpc.StatusCode, float, float]] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)


@pytest.fixture
async def pg() -> AsyncIterator[PrivatePostgres]:
    with private_postgres() as server:
        await migrations.apply(server.dsn)
        yield server


@pytest.fixture
async def api(
    pg: PrivatePostgres, redis_client: aioredis.Redis, redis_url: str, redis_prefix: str
) -> AsyncIterator[RunningApi]:
    repo = await PostgresRepository.connect(pg.dsn, min_size=2, max_size=8, command_timeout=2.0)
    settings = api_settings(redis_url, redis_prefix, {"NODEDROP_MIGRATE_ON_START": "false"})
    try:
        async with running_api(settings, repo, FakeQueue()) as a:
            yield a
    finally:
        await repo.close()


def _workflow() -> wf_pb.Workflow:
    return wf_pb.Workflow(
        name="load",
        nodes=[wf_pb.Node(id="start", type="manual_trigger")],
    )


async def _client(api: RunningApi, tally: Tally, stop: asyncio.Event) -> None:
    wf = _workflow()
    for _ in range(100_000):
        if stop.is_set():
            return
        t0 = time.monotonic()
        try:
            r = await api.ex.ExecuteWorkflow(
                ex_pb.ExecuteWorkflowRequest(workflow=wf, mode=execution_pb2.EXECUTION_MODE_QUEUE),
                metadata=api.md,
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as exc:
            tally.errors.append((exc.code(), time.monotonic() - t0, time.monotonic()))
            await asyncio.sleep(0.05)
            continue
        tally.acknowledged.append(r.execution_id)
        tally.successes.append(time.monotonic())


@pytest.mark.slow
async def test_postgres_restart_fails_fast_recovers_and_loses_nothing(
    api: RunningApi, pg: PrivatePostgres
) -> None:
    tally = Tally()
    stop = asyncio.Event()
    clients = [asyncio.create_task(_client(api, tally, stop)) for _ in range(CLIENTS)]
    await asyncio.sleep(1.0)
    before = len(tally.acknowledged)
    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(1.5)  # down for a while: calls must fail fast meanwhile
    await asyncio.to_thread(pg.start)
    back = time.monotonic()
    for _ in range(200):
        if any(t > back for t in tally.successes):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*clients)

    assert before > 0
    recovered = [t for t in tally.successes if t > back]
    assert recovered, "the API did not serve again after PostgreSQL came back"
    assert recovered[0] - back < 10.0
    codes = {code for code, _, _ in tally.errors}
    assert tally.errors, "the outage was not seen by any call"
    assert codes <= {grpc.StatusCode.UNAVAILABLE}, codes
    slowest = max(took for _, took, _ in tally.errors)
    assert slowest < FAST_S, f"a failing call took {slowest:.2f} s"
    # Every acknowledged execution is stored.
    repo = await PostgresRepository.connect(pg.dsn, min_size=1, max_size=2)
    try:
        missing = [i for i in tally.acknowledged if await repo.get_execution("tenant-a", i) is None]
    finally:
        await repo.close()
    assert not missing, f"{len(missing)} acknowledged executions were lost"
