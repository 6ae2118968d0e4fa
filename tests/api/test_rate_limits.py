"""The per-tenant rate limit holds for every call that starts work, over a real
gRPC server: ExecuteWorkflow, RetryExecution and ExecuteNode share one bucket."""

from __future__ import annotations

import uuid

import grpc
import orjson
import pytest

from nodedrop.api.app import ApiService
from nodedrop.api.provisioning import ALL_SCOPES, create_key
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.api.settings import ApiSettings
from nodedrop.common.server import GrpcServer
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.api.test_rpc import FakeQueue, md, workflow


def _node_request() -> ex_pb.ExecuteNodeRequest:
    node = wf_pb.Node(
        id="n", type="set", parameters_json=orjson.dumps({"fields": {"y": "json.a + 1"}}).decode()
    )
    return ex_pb.ExecuteNodeRequest(node=node, input_items_json='[{"a": 1}]')


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_retry_and_execute_node_take_from_the_tenant_bucket(
    pg_repo: PostgresRepository, redis_url: str, redis_prefix: str
) -> None:
    settings = ApiSettings.from_env(
        {
            "NODEDROP_API_ADDR": "127.0.0.1:0",
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": redis_prefix,
            "NODEDROP_EXECUTE_RATE_PER_S": "0.001",
            "NODEDROP_EXECUTE_RATE_BURST": "2",
        }
    )
    server = GrpcServer(
        ApiService(settings, repository=pg_repo, queue=FakeQueue()), settings.server
    )
    await server.start()
    busy, _ = await create_key(pg_repo, "tenant-busy", "busy", ALL_SCOPES)
    other, _ = await create_key(pg_repo, "tenant-other", "other", ALL_SCOPES)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ex_grpc.ExecutionServiceStub(channel)
            a, b = md(busy.secret), md(other.secret)
            retry = ex_pb.RetryExecutionRequest(execution_id=str(uuid.uuid4()))
            # ExecuteNode spends the burst ...
            assert await _code(stub.ExecuteNode(_node_request(), metadata=a)) == grpc.StatusCode.OK
            assert await _code(stub.ExecuteNode(_node_request(), metadata=a)) == grpc.StatusCode.OK
            # ... then every call that starts work is refused, whichever it is.
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ExecuteNode(_node_request(), metadata=a)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "ExecuteNode: the rate limit of this tenant is reached" in (
                info.value.details() or ""
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.RetryExecution(retry, metadata=a)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "RetryExecution" in (info.value.details() or "")
            execute = ex_pb.ExecuteWorkflowRequest(workflow=workflow())
            code = await _code(stub.ExecuteWorkflow(execute, metadata=a))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Another tenant has its own bucket: its retry of an unknown execution
            # gets as far as the lookup.
            assert await _code(stub.RetryExecution(retry, metadata=b)) == grpc.StatusCode.NOT_FOUND
            assert await _code(stub.ExecuteNode(_node_request(), metadata=b)) == grpc.StatusCode.OK
    finally:
        await server.stop(1.0)
