"""Direct mode: the API runs the engine itself; events go through the store's
EventLog (Redis here) with the same types and sequences as queue mode, the
history recorder writes them to PostgreSQL, and cancellation works."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from nodedrop.api.batching import InsertBatcher
from nodedrop.api.direct import DirectRunner
from nodedrop.api.executions import ExecutionManager
from nodedrop.api.model import ExecutionRecord, Status
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.common.settings import TelemetrySettings
from nodedrop.common.telemetry import configure_tracing, install_in_memory_tracing
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.store import EventType, Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.api.harness import RunningApi, api_settings, running_api

DIRECT = execution_pb2.EXECUTION_MODE_DIRECT


@pytest.fixture
async def api(
    pg_repo: PostgresRepository, redis_client: aioredis.Redis, redis_url: str, redis_prefix: str
) -> AsyncIterator[RunningApi]:
    async with running_api(api_settings(redis_url, redis_prefix), pg_repo) as a:
        yield a


def _flow(*, wait_s: float = 0.0, fail: bool = False) -> wf_pb.Workflow:
    nodes = [
        wf_pb.Node(id="start", type="manual_trigger"),
        wf_pb.Node(id="double", type="set", parameters_json='{"fields": {"n": "json.n * 2"}}'),
    ]
    conns = [wf_pb.Connection(source="start", target="double")]
    last = "double"
    if wait_s:
        nodes.append(
            wf_pb.Node(id="pause", type="wait", parameters_json=f'{{"seconds": {wait_s}}}')
        )
        conns.append(wf_pb.Connection(source=last, target="pause"))
        last = "pause"
    if fail:
        nodes.append(
            wf_pb.Node(id="boom", type="stop_and_error", parameters_json='{"message": "no"}')
        )
        conns.append(wf_pb.Connection(source=last, target="boom"))
    return wf_pb.Workflow(name="direct", nodes=nodes, connections=conns)


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    # The store's adapter wants decoded replies: its own client on the same server.
    store = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, 4)))
    try:
        yield store
    finally:
        await store.close()


async def test_direct_run_returns_id_first_then_records_events_and_result(
    api: RunningApi, store: RedisStore
) -> None:
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=_flow(wait_s=0.2), trigger_data_json='[{"n": 2}, {"n": 5}]', mode=DIRECT
        ),
        metadata=api.md,
    )
    assert submitted.status == execution_pb2.EXECUTION_STATUS_QUEUED
    # The id comes back before any node has run (the wait keeps it running).
    early = (
        await api.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=submitted.execution_id), metadata=api.md
        )
    ).execution
    assert early.status != execution_pb2.EXECUTION_STATUS_COMPLETED
    done = await api.wait_terminal(submitted.execution_id, include_outputs=True)
    assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done.error
    assert done.mode == DIRECT
    assert done.outputs["pause"].ports_json["main"] == '[{"n":4},{"n":10}]'
    assert {r.node_id for r in done.node_runs} == {"start", "double", "pause"}
    events = await store.read(submitted.execution_id, 0, 100)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == [
        EventType.EXECUTION_QUEUED,
        EventType.EXECUTION_STARTED,
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.EXECUTION_COMPLETED,
    ]
    assert {e.tenant_id for e in events} == {"tenant-a"}
    # The recorder stored the same events in PostgreSQL.
    listed = await api.ex.ListExecutionEvents(
        ex_pb.ListExecutionEventsRequest(execution_id=submitted.execution_id), metadata=api.md
    )
    assert [e.sequence for e in listed.events] == [e.sequence for e in events]


async def test_direct_failure_is_recorded_with_the_node_error(api: RunningApi) -> None:
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=_flow(fail=True), trigger_data_json='{"n": 1}', mode=DIRECT
        ),
        metadata=api.md,
    )
    done = await api.wait_terminal(submitted.execution_id)
    assert done.status == execution_pb2.EXECUTION_STATUS_FAILED
    assert done.error.node_id == "boom" and "no" in done.error.message


async def test_direct_cancel_ends_cancelled_within_a_second(api: RunningApi) -> None:
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=_flow(wait_s=30), trigger_data_json='{"n": 1}', mode=DIRECT
        ),
        metadata=api.md,
    )
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    await api.ex.CancelExecution(
        ex_pb.CancelExecutionRequest(execution_id=submitted.execution_id, reason="enough"),
        metadata=api.md,
    )
    done = await api.wait_terminal(submitted.execution_id, timeout_s=5)
    assert done.status == execution_pb2.EXECUTION_STATUS_CANCELLED
    assert time.monotonic() - t0 < 1.5


async def test_direct_cancel_from_another_replica_reaches_the_run(
    api: RunningApi, pg_repo: PostgresRepository, store: RedisStore
) -> None:
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=_flow(wait_s=30), trigger_data_json='{"n": 1}', mode=DIRECT
        ),
        metadata=api.md,
    )
    await asyncio.sleep(0.3)
    # A second API replica: its own runner, the same Redis and PostgreSQL.
    other = ExecutionManager(
        pg_repo, InsertBatcher(pg_repo), None, DirectRunner(store, store.config)
    )
    status = await other.cancel("tenant-a", submitted.execution_id, "from elsewhere")
    assert status in (Status.RUNNING, Status.CANCELLED)
    done = await api.wait_terminal(submitted.execution_id, timeout_s=5)
    assert done.status == execution_pb2.EXECUTION_STATUS_CANCELLED
    # The running replica learnt the reason from the store, not only the flag.
    assert done.error.message == "from elsewhere"


async def test_another_tenant_cannot_cancel_a_direct_run(api: RunningApi) -> None:
    submitted = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=_flow(wait_s=0.5), trigger_data_json='{"n": 1}', mode=DIRECT
        ),
        metadata=api.md,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ex.CancelExecution(
            ex_pb.CancelExecutionRequest(execution_id=submitted.execution_id),
            metadata=(("authorization", f"Bearer {api.other_key}"),),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    done = await api.wait_terminal(submitted.execution_id)
    assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED


async def test_direct_runner_on_the_memory_store_emits_the_same_sequence(
    pg_repo: PostgresRepository,
) -> None:
    store = MemoryStore(StoreConfig(keys=Keys("mem", 2)))
    runner = DirectRunner(store, store.config)
    record = await _stored_direct(pg_repo)
    runner.start(record, {})
    for _ in range(500):
        if not runner.running:
            break
        await asyncio.sleep(0.01)
    types = [e.type for e in await store.read(record.id, 0, 50)]
    assert types[:2] == [EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED]
    assert types[-1] == EventType.EXECUTION_COMPLETED
    (state,) = await store.states([record.id])
    assert state is not None and state.status.value == "COMPLETED"


async def _stored_direct(repo: PostgresRepository) -> ExecutionRecord:
    import uuid  # noqa: PLC0415
    from datetime import UTC, datetime  # noqa: PLC0415

    from nodedrop.api.model import NewExecution  # noqa: PLC0415
    from nodedrop.contract import check  # noqa: PLC0415

    definition, problems = check(_flow())
    assert definition is not None, problems
    await repo.ensure_tenant("tenant-a", "a")
    new = NewExecution(
        id=str(uuid.uuid4()),
        tenant_id="tenant-a",
        workflow_id=None,
        workflow_version=0,
        definition_json=definition.json,
        mode="direct",
        trigger_kind="manual",
        trigger_data_json='{"n": 1}',
        max_attempts=1,
        priority=0,
        run_at=datetime.now(UTC),
    )
    await repo.insert_executions([new])
    record = await repo.get_execution("tenant-a", new.id)
    assert record is not None
    return record


async def test_a_run_the_store_cannot_take_is_failed_at_once(
    pg_repo: PostgresRepository,
) -> None:
    from nodedrop.store.redis_store import RedisStore as Redis  # noqa: PLC0415
    from tests.helpers.ports import free_port  # noqa: PLC0415

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", StoreConfig(keys=Keys("x", 2)))
    failures: list[tuple[str, str]] = []

    async def failed(execution_id: str, reason: str) -> None:
        failures.append((execution_id, reason))

    runner = DirectRunner(dead, dead.config, on_failure=failed)
    record = await _stored_direct(pg_repo)
    try:
        runner.start(record, {})
        for _ in range(200):
            if failures:
                break
            await asyncio.sleep(0.01)
    finally:
        await runner.stop(0.1)
        await dead.close()
    assert failures and failures[0][0] == record.id and "could not proceed" in failures[0][1]


async def test_a_direct_run_joins_the_submitting_requests_trace(
    pg_repo: PostgresRepository,
) -> None:
    configure_tracing(TelemetrySettings("nodedrop-test", None))
    exporter = install_in_memory_tracing()
    store = MemoryStore(StoreConfig(keys=Keys("mem", 2)))
    runner = DirectRunner(store, store.config)
    record = await _stored_direct(pg_repo)
    try:
        # Stands in for the API's ExecuteWorkflow server span.
        with trace.get_tracer("test").start_as_current_span("ExecuteWorkflow") as root:
            runner.start(record, {})
        for _ in range(500):
            if not runner.running:
                break
            await asyncio.sleep(0.01)
        trace_id = root.get_span_context().trace_id
        names = {s.name for s in exporter.get_finished_spans() if s.context.trace_id == trace_id}
    finally:
        await runner.stop(1.0)
        exporter.shutdown()
    assert {"execution", "node set"} <= names


async def test_a_cancel_the_store_cannot_take_is_unavailable(
    pg_repo: PostgresRepository,
) -> None:
    """The store's outage is the caller's UNAVAILABLE (retry), not an INTERNAL fault,
    and its message names no host."""
    from nodedrop.common.errors import Unavailable  # noqa: PLC0415
    from nodedrop.store.redis_store import RedisStore as Redis  # noqa: PLC0415
    from tests.helpers.ports import free_port  # noqa: PLC0415

    port = free_port()
    dead = Redis.from_url(f"redis://127.0.0.1:{port}/0", StoreConfig(keys=Keys("x", 2)))
    manager = ExecutionManager(
        pg_repo, InsertBatcher(pg_repo), None, DirectRunner(dead, dead.config)
    )
    record = await _stored_direct(pg_repo)
    try:
        with pytest.raises(Unavailable) as err:
            await manager.cancel("tenant-a", record.id, "enough")
    finally:
        await dead.close()
    assert err.value.code is grpc.StatusCode.UNAVAILABLE
    assert str(port) not in str(err.value)
    # Nothing was cancelled: the caller's retry is what ends it.
    stored = await pg_repo.get_execution("tenant-a", record.id)
    assert stored is not None and stored.status is Status.QUEUED
