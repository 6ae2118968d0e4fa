"""Every RPC of the API over a real gRPC server and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from nodedrop.api.app import ApiService
from nodedrop.api.history import fold  # noqa: F401  (imported to keep the module graph honest)
from nodedrop.api.model import RecordedEvent, Status
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.queueing import EnqueueRequest, KnownState, QueueFigures
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.api.settings import ApiSettings
from nodedrop.auth.v1 import auth_service_pb2 as auth_pb
from nodedrop.auth.v1 import auth_service_pb2_grpc as auth_grpc
from nodedrop.common.server import GrpcServer
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from nodedrop.workflow.v1 import workflow_service_pb2 as wfs_pb
from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wfs_grpc
from tests.helpers.services import SERVICE_TOKEN, SERVICE_TOKEN_VAR, service_metadata


@dataclass
class FakeQueue:
    """Records what the API enqueues; the queue itself is tested in tests/store."""

    enqueued: list[EnqueueRequest] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    async def enqueue(self, request: EnqueueRequest) -> Status:
        self.enqueued.append(request)
        return Status.QUEUED

    async def cancel(self, execution_id: str, tenant_id: str, reason: str) -> Status:
        self.cancelled.append(execution_id)
        return Status.CANCELLED

    async def states(self, execution_ids: Sequence[str]) -> list[KnownState]:
        return [KnownState(i, False, None, 0) for i in execution_ids]

    async def figures(self) -> QueueFigures:
        return QueueFigures(waiting=3, active=1, delayed=2, failed=0)


@dataclass
class Api:
    channel: grpc.aio.Channel
    repo: PostgresRepository
    queue: FakeQueue
    key_a: str
    key_b: str

    @property
    def ex(self) -> ex_grpc.ExecutionServiceStub:
        return ex_grpc.ExecutionServiceStub(self.channel)

    @property
    def wf(self) -> wfs_grpc.WorkflowServiceStub:
        return wfs_grpc.WorkflowServiceStub(self.channel)

    @property
    def auth(self) -> auth_grpc.AuthServiceStub:
        return auth_grpc.AuthServiceStub(self.channel)


def md(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
async def api(
    pg_repo: PostgresRepository, redis_url: str, redis_prefix: str, redis_client: object
) -> AsyncIterator[Api]:
    settings = ApiSettings.from_env(
        {
            "NODEDROP_API_ADDR": "127.0.0.1:0",
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": redis_prefix,
            "NODEDROP_EXECUTE_RATE_PER_S": "1000",
            "NODEDROP_EXECUTE_RATE_BURST": "1000",
            "NODEDROP_MAX_TRIGGER_BYTES": "4096",
            SERVICE_TOKEN_VAR: SERVICE_TOKEN,
        }
    )
    queue = FakeQueue()
    service = ApiService(settings, repository=pg_repo, queue=queue)
    server = GrpcServer(service, settings.server, security=settings.security)
    await server.start()
    key_a, _ = await create_key(pg_repo, "tenant-a", "a", ALL_SCOPES)
    key_b, _ = await create_key(pg_repo, "tenant-b", "b", ALL_SCOPES)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Api(channel, pg_repo, queue, key_a.secret, key_b.secret)
    finally:
        await channel.close()
        await server.set_not_serving()
        await server.stop(1.0)


def workflow(name: str = "orders") -> wf_pb.Workflow:
    return wf_pb.Workflow(
        name=name,
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="tag", type="set", parameters_json='{"fields": {"tier": "\'vip\'"}}'),
        ],
        connections=[wf_pb.Connection(source="start", target="tag")],
    )


async def test_workflow_rpcs_good_path(api: Api) -> None:
    m = md(api.key_a)
    created = (
        await api.wf.CreateWorkflow(wfs_pb.CreateWorkflowRequest(workflow=workflow()), metadata=m)
    ).workflow
    assert created.id and created.version == 1 and created.nodes[1].type == "set"
    got = (
        await api.wf.GetWorkflow(wfs_pb.GetWorkflowRequest(workflow_id=created.id), metadata=m)
    ).workflow
    assert got.name == "orders" and [n.id for n in got.nodes] == ["start", "tag"]
    updated = (
        await api.wf.UpdateWorkflow(
            wfs_pb.UpdateWorkflowRequest(
                workflow_id=created.id, workflow=workflow("orders-v2"), expected_version=1
            ),
            metadata=m,
        )
    ).workflow
    assert updated.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await api.wf.UpdateWorkflow(
            wfs_pb.UpdateWorkflowRequest(
                workflow_id=created.id, workflow=workflow(), expected_version=1
            ),
            metadata=m,
        )
    assert conflict.value.code() == grpc.StatusCode.ABORTED
    old = (
        await api.wf.GetWorkflow(
            wfs_pb.GetWorkflowRequest(workflow_id=created.id, version=1), metadata=m
        )
    ).workflow
    assert old.name == "orders"
    listed = await api.wf.ListWorkflows(
        wfs_pb.ListWorkflowsRequest(name_prefix="orders"), metadata=m
    )
    assert [w.version for w in listed.workflows] == [2]
    versions = await api.wf.ListWorkflowVersions(
        wfs_pb.ListWorkflowVersionsRequest(workflow_id=created.id, page_size=1), metadata=m
    )
    assert [v.version for v in versions.versions] == [2] and versions.next_page_token
    rest = await api.wf.ListWorkflowVersions(
        wfs_pb.ListWorkflowVersionsRequest(
            workflow_id=created.id, page_size=1, page_token=versions.next_page_token
        ),
        metadata=m,
    )
    assert [v.version for v in rest.versions] == [1]
    valid = await api.wf.ValidateWorkflow(
        wfs_pb.ValidateWorkflowRequest(workflow=workflow()), metadata=m
    )
    assert valid.valid and not valid.problems
    # The old version stays executable.
    run = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(workflow_id=created.id, workflow_version=1), metadata=m
    )
    rec = await api.repo.get_execution("tenant-a", run.execution_id)
    assert rec is not None and rec.workflow_version == 1
    await api.wf.DeleteWorkflow(wfs_pb.DeleteWorkflowRequest(workflow_id=created.id), metadata=m)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await api.wf.GetWorkflow(wfs_pb.GetWorkflowRequest(workflow_id=created.id), metadata=m)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def _fail(api: Api, execution_id: str) -> None:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    t = datetime.now(UTC)
    await api.repo.record_events(
        [
            RecordedEvent(execution_id, 1, "execution_started", t, "", 1),
            RecordedEvent(execution_id, 2, "node_started", t, "start", 1),
            RecordedEvent(
                execution_id,
                3,
                "node_completed",
                t + timedelta(seconds=1),
                "start",
                1,
                '{"main":[{"a":1}]}',
            ),
            RecordedEvent(execution_id, 4, "node_started", t, "tag", 1),
            RecordedEvent(
                execution_id,
                5,
                "node_failed",
                t + timedelta(seconds=2),
                "tag",
                1,
                "",
                '{"message":"boom","code":"node_failed"}',
            ),
            RecordedEvent(
                execution_id,
                6,
                "execution_failed",
                t + timedelta(seconds=2),
                "",
                1,
                "",
                '{"message":"boom","node_id":"tag","code":"node_failed"}',
            ),
        ]
    )


async def test_execution_rpcs_good_path(api: Api) -> None:
    m = md(api.key_a)
    run = await api.ex.ExecuteWorkflow(
        ex_pb.ExecuteWorkflowRequest(
            workflow=workflow(),
            trigger_data_json='[{"amount": 150}]',
            priority=5,
            delay=duration_pb2.Duration(seconds=10),
            mode=execution_pb2.EXECUTION_MODE_QUEUE,
        ),
        metadata=m,
    )
    assert run.execution_id and run.status == execution_pb2.EXECUTION_STATUS_QUEUED
    assert not run.deduplicated
    assert [e.execution_id for e in api.queue.enqueued] == [run.execution_id]
    assert api.queue.enqueued[0].run_at is not None and api.queue.enqueued[0].priority == 5
    got = (
        await api.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=run.execution_id), metadata=m
        )
    ).execution
    assert got.status == execution_pb2.EXECUTION_STATUS_QUEUED
    assert got.trigger_data_json == '[{"amount": 150}]' and got.max_attempts == 3
    await _fail(api, run.execution_id)
    got = (
        await api.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=run.execution_id, include_outputs=True),
            metadata=m,
        )
    ).execution
    assert got.status == execution_pb2.EXECUTION_STATUS_FAILED and got.error.node_id == "tag"
    assert {r.node_id: r.status for r in got.node_runs} == {
        "start": execution_pb2.NODE_RUN_STATUS_COMPLETED,
        "tag": execution_pb2.NODE_RUN_STATUS_FAILED,
    }
    out = await api.ex.GetExecutionOutput(
        ex_pb.GetExecutionOutputRequest(
            execution_id=run.execution_id, node_id="start", page_size=1
        ),
        metadata=m,
    )
    assert out.items_json == '[{"a":1}]' and out.total_items == 1 and not out.next_page_token
    events = await api.ex.ListExecutionEvents(
        ex_pb.ListExecutionEventsRequest(execution_id=run.execution_id, after_sequence=4),
        metadata=m,
    )
    assert [e.sequence for e in events.events] == [5, 6] and not events.more
    retry = await api.ex.RetryExecution(
        ex_pb.RetryExecutionRequest(
            execution_id=run.execution_id, retry_from=ex_pb.RETRY_FROM_FAILED_NODE
        ),
        metadata=m,
    )
    assert retry.execution_id != run.execution_id
    assert api.queue.enqueued[-1].completed_outputs == {"start": '{"main":[{"a":1}]}'}
    retried = (
        await api.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=retry.execution_id), metadata=m
        )
    ).execution
    assert retried.retry_of == run.execution_id
    cancel = await api.ex.CancelExecution(
        ex_pb.CancelExecutionRequest(execution_id=retry.execution_id, reason="no"), metadata=m
    )
    assert cancel.status == execution_pb2.EXECUTION_STATUS_CANCELLED
    # Cancelling a finished execution answers its final status.
    again = await api.ex.CancelExecution(
        ex_pb.CancelExecutionRequest(execution_id=run.execution_id), metadata=m
    )
    assert again.status == execution_pb2.EXECUTION_STATUS_FAILED
    page1 = await api.ex.ListExecutions(ex_pb.ListExecutionsRequest(page_size=1), metadata=m)
    page2 = await api.ex.ListExecutions(
        ex_pb.ListExecutionsRequest(page_size=1, page_token=page1.next_page_token), metadata=m
    )
    assert {page1.executions[0].id, page2.executions[0].id} == {
        run.execution_id,
        retry.execution_id,
    }
    failed = await api.ex.ListExecutions(
        ex_pb.ListExecutionsRequest(statuses=[execution_pb2.EXECUTION_STATUS_FAILED]), metadata=m
    )
    assert [e.id for e in failed.executions] == [run.execution_id]
    retries = await api.ex.ListExecutions(
        ex_pb.ListExecutionsRequest(trigger_kinds=[execution_pb2.TRIGGER_KIND_RETRY]), metadata=m
    )
    assert [e.id for e in retries.executions] == [retry.execution_id]
    stats = await api.ex.GetExecutionStats(ex_pb.GetExecutionStatsRequest(), metadata=m)
    assert stats.workflows[0].total == 2 and stats.workflows[0].failure_rate == 0.5
    assert stats.workflows[0].p50_duration.seconds == 2
    assert list(stats.buckets) == []
    # Per-minute counts in the same call: 15 buckets of the window, empty ones too.
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    end = timestamp_pb2.Timestamp(seconds=(now.seconds // 60 + 1) * 60)
    start = timestamp_pb2.Timestamp(seconds=end.seconds - 15 * 60)
    per_minute = await api.ex.GetExecutionStats(
        ex_pb.GetExecutionStatsRequest(
            start_time=start, end_time=end, bucket_width=duration_pb2.Duration(seconds=60)
        ),
        metadata=m,
    )
    assert [b.start_time.seconds for b in per_minute.buckets] == [
        start.seconds + 60 * i for i in range(15)
    ]
    # Both executions of this test were created in the last minute or two.
    counted = [(c.status, c.count) for b in per_minute.buckets[-3:] for c in b.status_counts]
    assert sorted(counted) == [
        (execution_pb2.EXECUTION_STATUS_FAILED, 1),
        (execution_pb2.EXECUTION_STATUS_CANCELLED, 1),
    ]
    assert all(not b.status_counts for b in per_minute.buckets[:-3])
    assert per_minute.workflows[0].total == 2
    health = await api.ex.GetSystemHealth(ex_pb.GetSystemHealthRequest())
    assert health.healthy and health.waiting == 3 and health.active == 1 and health.delayed == 2


async def test_auth_rpcs(api: Api) -> None:
    m = md(api.key_a)
    # Authenticate is for services (the events service, the gateway).
    who = await api.auth.Authenticate(
        auth_pb.AuthenticateRequest(credential=api.key_a), metadata=service_metadata()
    )
    assert who.tenant_id == "tenant-a" and set(who.scopes) == {1, 2, 3}
    ticket = await api.auth.IssueTicket(auth_pb.IssueTicketRequest(), metadata=m)
    by_ticket = await api.auth.Authenticate(
        auth_pb.AuthenticateRequest(credential=ticket.ticket), metadata=service_metadata()
    )
    # The service credential is no tenant's key: it opens no tenant method.
    with pytest.raises(grpc.aio.AioRpcError) as not_a_key:
        await api.ex.ListExecutions(ex_pb.ListExecutionsRequest(), metadata=service_metadata())
    assert not_a_key.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (
        by_ticket.tenant_id == "tenant-a"
        and by_ticket.expire_time.seconds == ticket.expire_time.seconds
    )
    created = await api.auth.CreateApiKey(
        auth_pb.CreateApiKeyRequest(name="ci", scopes=[auth_pb.SCOPE_READ]), metadata=m
    )
    assert created.secret.startswith("ndk_") and created.api_key.prefix in created.secret
    listed = await api.auth.ListApiKeys(auth_pb.ListApiKeysRequest(), metadata=m)
    assert created.api_key.id in {k.id for k in listed.api_keys}
    # A read-only key cannot execute.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await api.ex.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(workflow=workflow()), metadata=md(created.secret)
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    revoked = await api.auth.RevokeApiKey(
        auth_pb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=m
    )
    assert revoked.api_key.HasField("revoke_time")
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await api.ex.ListExecutions(ex_pb.ListExecutionsRequest(), metadata=md(created.secret))
    assert gone.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_idempotency_200_concurrent_calls_make_one_execution(api: Api) -> None:
    m = md(api.key_a)
    request = ex_pb.ExecuteWorkflowRequest(workflow=workflow(), idempotency_key="order-42")
    responses = await asyncio.gather(
        *(api.ex.ExecuteWorkflow(request, metadata=m) for _ in range(200))
    )
    ids = {r.execution_id for r in responses}
    assert len(ids) == 1
    assert sum(not r.deduplicated for r in responses) == 1
    assert len(api.queue.enqueued) == 1
    rows = await api.repo.list_executions(
        "tenant-a", __import__("nodedrop.api.model").api.model.ExecutionFilter(), None, 500
    )
    assert len(rows) == 1


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            fields = []
            for detail in status.details:
                br = error_details_pb2.BadRequest()
                if detail.Unpack(br):
                    fields += [v.field for v in br.field_violations]
            return fields
    return []


BAD_ID = "not-a-uuid"
# Execution ids are not all UUIDs (a cron run's is sch_<id>-<tick ms>); this one is no id.
BAD_EXECUTION_ID = "not an id"
SOME_ID = str(uuid.uuid4())
INV = grpc.StatusCode.INVALID_ARGUMENT


def _wf(**changes: Any) -> wf_pb.Workflow:
    w = workflow()
    for k, v in changes.items():
        if k == "nodes":
            del w.nodes[:]
            w.nodes.extend(v)
        elif k == "connections":
            del w.connections[:]
            w.connections.extend(v)
        elif k == "settings":
            w.settings.CopyFrom(v)
        else:
            setattr(w, k, v)
    return w


BAD_REQUESTS: list[tuple[str, str, Any, grpc.StatusCode, str | None]] = [
    ("ex", "ExecuteWorkflow", ex_pb.ExecuteWorkflowRequest(), INV, "source"),
    ("ex", "ExecuteWorkflow", ex_pb.ExecuteWorkflowRequest(workflow_id=BAD_ID), INV, "workflow_id"),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), trigger_data_json="{"),
        INV,
        "trigger_data_json",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), trigger_data_json="[1,2]"),
        INV,
        "trigger_data_json",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), mode=99),  # type: ignore[arg-type]
        INV,
        "mode",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), priority=5000),
        INV,
        "priority",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), delay=duration_pb2.Duration(seconds=-5)),
        INV,
        "delay",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), idempotency_key="k" * 300),
        INV,
        "idempotency_key",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), trigger_kind=42),  # type: ignore[arg-type]
        INV,
        "trigger_kind",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=workflow(), workflow_version=2),
        INV,
        "workflow_version",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=_wf(name="")),
        INV,
        "workflow.name",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=_wf(nodes=[])),
        INV,
        "workflow.nodes",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(
            workflow=_wf(nodes=[wf_pb.Node(id="bad id!", type="manual_trigger")])
        ),
        INV,
        "workflow.nodes[0].id",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(
            workflow=_wf(nodes=[wf_pb.Node(id="a", type="manual_trigger", parameters_json="[1]")])
        ),
        INV,
        "workflow.nodes[0].parameters_json",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(
            workflow=_wf(connections=[wf_pb.Connection(source="start", target="ghost")])
        ),
        INV,
        "workflow.connections[0].target",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow=_wf(settings=wf_pb.WorkflowSettings(max_attempts=0))),
        INV,
        "workflow.settings.max_attempts",
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(
            workflow=workflow(), trigger_data_json='{"x":"' + "a" * 5000 + '"}'
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        None,
    ),
    (
        "ex",
        "ExecuteWorkflow",
        ex_pb.ExecuteWorkflowRequest(workflow_id=SOME_ID),
        grpc.StatusCode.NOT_FOUND,
        None,
    ),
    (
        "ex",
        "GetExecution",
        ex_pb.GetExecutionRequest(execution_id=BAD_EXECUTION_ID),
        INV,
        "execution_id",
    ),
    ("ex", "GetExecution", ex_pb.GetExecutionRequest(), INV, "execution_id"),
    (
        "ex",
        "GetExecution",
        ex_pb.GetExecutionRequest(execution_id=SOME_ID, max_output_bytes=-1),
        INV,
        "max_output_bytes",
    ),
    (
        "ex",
        "GetExecutionOutput",
        ex_pb.GetExecutionOutputRequest(execution_id=SOME_ID),
        INV,
        "node_id",
    ),
    (
        "ex",
        "GetExecutionOutput",
        ex_pb.GetExecutionOutputRequest(execution_id=SOME_ID, node_id="a", page_token="%%%"),
        INV,
        "page_token",
    ),
    ("ex", "ListExecutions", ex_pb.ListExecutionsRequest(page_size=-1), INV, "page_size"),
    ("ex", "ListExecutions", ex_pb.ListExecutionsRequest(page_token="garbage"), INV, "page_token"),
    ("ex", "ListExecutions", ex_pb.ListExecutionsRequest(statuses=[77]), INV, "statuses[0]"),  # type: ignore[list-item]
    (
        "ex",
        "ListExecutions",
        ex_pb.ListExecutionsRequest(trigger_kinds=[execution_pb2.TRIGGER_KIND_UNSPECIFIED]),
        INV,
        "trigger_kinds[0]",
    ),
    ("ex", "ListExecutions", ex_pb.ListExecutionsRequest(workflow_id=BAD_ID), INV, "workflow_id"),
    (
        "ex",
        "CancelExecution",
        ex_pb.CancelExecutionRequest(execution_id=BAD_EXECUTION_ID),
        INV,
        "execution_id",
    ),
    (
        "ex",
        "RetryExecution",
        ex_pb.RetryExecutionRequest(execution_id=SOME_ID, retry_from=9),  # type: ignore[arg-type]
        INV,
        "retry_from",
    ),
    (
        "ex",
        "RetryExecution",
        ex_pb.RetryExecutionRequest(execution_id=SOME_ID),
        grpc.StatusCode.NOT_FOUND,
        None,
    ),
    (
        "ex",
        "GetExecutionStats",
        ex_pb.GetExecutionStatsRequest(workflow_id=BAD_ID),
        INV,
        "workflow_id",
    ),
    (
        "ex",
        "GetExecutionStats",
        ex_pb.GetExecutionStatsRequest(bucket_width=duration_pb2.Duration(nanos=500_000_000)),
        INV,
        "bucket_width",
    ),
    (
        "ex",
        "GetExecutionStats",
        # The default window is a day: 86,400 buckets of a second.
        ex_pb.GetExecutionStatsRequest(bucket_width=duration_pb2.Duration(seconds=1)),
        INV,
        "bucket_width",
    ),
    (
        "ex",
        "ListExecutionEvents",
        ex_pb.ListExecutionEventsRequest(execution_id=BAD_EXECUTION_ID),
        INV,
        "execution_id",
    ),
    ("wf", "CreateWorkflow", wfs_pb.CreateWorkflowRequest(), INV, "workflow.name"),
    (
        "wf",
        "CreateWorkflow",
        wfs_pb.CreateWorkflowRequest(workflow=_wf(nodes=[wf_pb.Node(id="a", type="no_such_type")])),
        INV,
        None,
    ),
    (
        "wf",
        "CreateWorkflow",
        wfs_pb.CreateWorkflowRequest(
            workflow=_wf(
                nodes=[wf_pb.Node(id="a", type="manual_trigger"), wf_pb.Node(id="a", type="noop")]
            )
        ),
        INV,
        "workflow.nodes[1].id",
    ),
    (
        "wf",
        "GetWorkflow",
        wfs_pb.GetWorkflowRequest(workflow_id=SOME_ID, version=0),
        INV,
        "version",
    ),
    (
        "wf",
        "UpdateWorkflow",
        wfs_pb.UpdateWorkflowRequest(workflow_id=BAD_ID, workflow=workflow()),
        INV,
        "workflow_id",
    ),
    (
        "wf",
        "UpdateWorkflow",
        wfs_pb.UpdateWorkflowRequest(workflow_id=SOME_ID, workflow=workflow()),
        grpc.StatusCode.NOT_FOUND,
        None,
    ),
    ("wf", "DeleteWorkflow", wfs_pb.DeleteWorkflowRequest(workflow_id=""), INV, "workflow_id"),
    ("wf", "ListWorkflows", wfs_pb.ListWorkflowsRequest(page_size=5000), INV, "page_size"),
    (
        "wf",
        "ListWorkflowVersions",
        wfs_pb.ListWorkflowVersionsRequest(workflow_id=BAD_ID),
        INV,
        "workflow_id",
    ),
    ("auth", "CreateApiKey", auth_pb.CreateApiKeyRequest(name=""), INV, "name"),
    ("auth", "CreateApiKey", auth_pb.CreateApiKeyRequest(name="x", scopes=[9]), INV, "scopes[0]"),  # type: ignore[list-item]
    ("auth", "RevokeApiKey", auth_pb.RevokeApiKeyRequest(), INV, "api_key_id"),
    (
        "auth",
        "IssueTicket",
        auth_pb.IssueTicketRequest(ttl=duration_pb2.Duration(seconds=99999)),
        INV,
        "ttl",
    ),
    # An API key is no service credential: Authenticate is internal.
    (
        "auth",
        "Authenticate",
        auth_pb.AuthenticateRequest(credential="ndk_nope"),
        grpc.StatusCode.PERMISSION_DENIED,
        None,
    ),
]


async def test_bad_requests_table(api: Api) -> None:
    assert len(BAD_REQUESTS) >= 25
    stubs = {"ex": api.ex, "wf": api.wf, "auth": api.auth}
    for stub_name, method, request, code, field_path in BAD_REQUESTS:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await getattr(stubs[stub_name], method)(request, metadata=md(api.key_a))
        err = info.value
        assert err.code() == code, (method, request, err.details())
        assert err.code() != grpc.StatusCode.INTERNAL
        if field_path is not None:
            assert field_path in _violations(err), (method, field_path, _violations(err))
    # Nothing was written by any of them.
    from nodedrop.api.model import ExecutionFilter  # noqa: PLC0415

    assert await api.repo.list_executions("tenant-a", ExecutionFilter(), None, 10) == []
    assert await api.repo.list_workflows("tenant-a", "", None, 10) == []
    assert api.queue.enqueued == []
    assert len(await api.repo.list_api_keys("tenant-a")) == 1


async def test_cross_tenant_not_found_and_unauthenticated(api: Api) -> None:
    a, b = md(api.key_a), md(api.key_b)
    wf_id = (
        await api.wf.CreateWorkflow(wfs_pb.CreateWorkflowRequest(workflow=workflow()), metadata=a)
    ).workflow.id
    run = await api.ex.ExecuteWorkflow(ex_pb.ExecuteWorkflowRequest(workflow_id=wf_id), metadata=a)
    await _fail(api, run.execution_id)
    eid = run.execution_id
    key_id = (await api.auth.ListApiKeys(auth_pb.ListApiKeysRequest(), metadata=a)).api_keys[0].id
    calls = [
        (api.ex.ExecuteWorkflow, ex_pb.ExecuteWorkflowRequest(workflow_id=wf_id)),
        (api.ex.GetExecution, ex_pb.GetExecutionRequest(execution_id=eid)),
        (
            api.ex.GetExecutionOutput,
            ex_pb.GetExecutionOutputRequest(execution_id=eid, node_id="start"),
        ),
        (api.ex.CancelExecution, ex_pb.CancelExecutionRequest(execution_id=eid)),
        (api.ex.RetryExecution, ex_pb.RetryExecutionRequest(execution_id=eid)),
        (api.ex.ListExecutionEvents, ex_pb.ListExecutionEventsRequest(execution_id=eid)),
        (api.wf.GetWorkflow, wfs_pb.GetWorkflowRequest(workflow_id=wf_id)),
        (
            api.wf.UpdateWorkflow,
            wfs_pb.UpdateWorkflowRequest(workflow_id=wf_id, workflow=workflow()),
        ),
        (api.wf.DeleteWorkflow, wfs_pb.DeleteWorkflowRequest(workflow_id=wf_id)),
        (api.wf.ListWorkflowVersions, wfs_pb.ListWorkflowVersionsRequest(workflow_id=wf_id)),
        (api.auth.RevokeApiKey, auth_pb.RevokeApiKeyRequest(api_key_id=key_id)),
    ]
    for method, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await method(request, metadata=b)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, method
    # Listings and stats of tenant b see nothing of tenant a.
    assert not (await api.ex.ListExecutions(ex_pb.ListExecutionsRequest(), metadata=b)).executions
    assert not (await api.wf.ListWorkflows(wfs_pb.ListWorkflowsRequest(), metadata=b)).workflows
    assert not (
        await api.ex.GetExecutionStats(ex_pb.GetExecutionStatsRequest(), metadata=b)
    ).workflows
    assert {
        k.id
        for k in (await api.auth.ListApiKeys(auth_pb.ListApiKeysRequest(), metadata=b)).api_keys
    }.isdisjoint({key_id})
    # No key, or a bad key: UNAUTHENTICATED on every authenticated RPC.
    every = [
        *calls,
        (api.ex.ListExecutions, ex_pb.ListExecutionsRequest()),
        (api.ex.GetExecutionStats, ex_pb.GetExecutionStatsRequest()),
        (api.ex.ExecuteNode, ex_pb.ExecuteNodeRequest()),
        (api.wf.CreateWorkflow, wfs_pb.CreateWorkflowRequest(workflow=workflow())),
        (api.wf.ListWorkflows, wfs_pb.ListWorkflowsRequest()),
        (api.wf.ValidateWorkflow, wfs_pb.ValidateWorkflowRequest()),
        (api.auth.IssueTicket, auth_pb.IssueTicketRequest()),
        (api.auth.CreateApiKey, auth_pb.CreateApiKeyRequest(name="x")),
        (api.auth.ListApiKeys, auth_pb.ListApiKeysRequest()),
    ]
    bad_key = "ndk_000000000000_" + "A" * 43
    for method, request in every:
        for metadata in ((), md(bad_key), md("garbage"), (("authorization", "Basic abc"),)):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await method(request, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, (method, metadata)


async def test_rate_limit_resource_exhausted(
    pg_repo: PostgresRepository, redis_url: str, redis_prefix: str, redis_client: object
) -> None:
    settings = ApiSettings.from_env(
        {
            "NODEDROP_API_ADDR": "127.0.0.1:0",
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": redis_prefix,
            "NODEDROP_EXECUTE_RATE_PER_S": "0.001",
            "NODEDROP_EXECUTE_RATE_BURST": "3",
        }
    )
    server = GrpcServer(
        ApiService(settings, repository=pg_repo, queue=FakeQueue()), settings.server
    )
    await server.start()
    key, _ = await create_key(pg_repo, "tenant-r", "r", ALL_SCOPES)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ex_grpc.ExecutionServiceStub(channel)
            codes = []
            for _ in range(5):
                try:
                    await stub.ExecuteWorkflow(
                        ex_pb.ExecuteWorkflowRequest(workflow=workflow()), metadata=md(key.secret)
                    )
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
            assert codes == [grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    finally:
        await server.stop(1.0)
