"""Input the API used to accept (and a worker then crashed on) or answered with
INTERNAL, against a real API process: each is INVALID_ARGUMENT naming the
field, or RESOURCE_EXHAUSTED for a size."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import orjson
import pytest
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_pb2
from nodedrop.workflow.v1 import workflow_service_pb2 as wf_pb
from nodedrop.workflow.v1 import workflow_service_pb2_grpc as wf_grpc
from tests.isolation.stack import DIRECT, Stack, running_stack, to_proto

pytestmark = pytest.mark.slow

MAX_TRIGGER_BYTES = 4000

SIMPLE = {
    "name": "simple",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "s", "type": "set", "parameters": {"fields": {"ok": "true"}}},
    ],
    "connections": [{"from": "start", "to": "s"}],
}


@pytest.fixture
async def stack(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> AsyncIterator[Stack]:
    extra = {"NODEDROP_MAX_TRIGGER_BYTES": str(MAX_TRIGGER_BYTES)}
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=False, extra=extra) as s:
        yield s


def _fields(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                br = error_details_pb2.BadRequest()
                if detail.Unpack(br):
                    return [v.field for v in br.field_violations]
    return []


def _nested(levels: int) -> str:
    """JSON text nested ``levels`` deep (orjson cannot encode past 255)."""
    return '{"deep": ' + "[" * levels + "1" + "]" * levels + "}"


async def _execute(stack: Stack, request: ex_pb.ExecuteWorkflowRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.ex.ExecuteWorkflow(request, metadata=stack.md("tenant-a"), timeout=10)
    return info.value


async def test_deep_json_is_refused_with_its_field(stack: Stack) -> None:
    for levels in (255, 600, 1000):
        err = await _execute(
            stack,
            ex_pb.ExecuteWorkflowRequest(
                workflow=to_proto(SIMPLE),
                trigger_data_json=_nested(levels),
                mode=DIRECT,
            ),
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert _fields(err) == ["trigger_data_json"], err
    node = workflow_pb2.Node(id="n", type="noop")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.ex.ExecuteNode(
            ex_pb.ExecuteNodeRequest(node=node, input_items_json=f"[{_nested(300)}]"),
            metadata=stack.md("tenant-a"),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _fields(info.value) == ["input_items_json"]


async def test_node_id_with_a_newline_is_refused(stack: Stack) -> None:
    workflow = to_proto(SIMPLE)
    workflow.nodes[1].id = "ok\n"
    workflow.connections[0].target = "ok\n"
    err = await _execute(stack, ex_pb.ExecuteWorkflowRequest(workflow=workflow, mode=DIRECT))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "workflow.nodes[1].id" in _fields(err), _fields(err)


async def test_nul_characters_are_invalid_argument(stack: Stack) -> None:
    err = await _execute(
        stack,
        ex_pb.ExecuteWorkflowRequest(
            workflow=to_proto(SIMPLE), idempotency_key="k\x00", mode=DIRECT
        ),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert _fields(err) == ["idempotency_key"]
    workflows = wf_grpc.WorkflowServiceStub(stack.channel)
    named = to_proto(SIMPLE)
    named.name = "a\x00b"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await workflows.CreateWorkflow(
            wf_pb.CreateWorkflowRequest(workflow=named), metadata=stack.md("tenant-a"), timeout=10
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert _fields(info.value) == ["workflow.name"]


async def test_out_of_range_timestamps_are_invalid_argument(stack: Stack) -> None:
    far = timestamp_pb2.Timestamp(seconds=10**13)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.ex.ListExecutions(
            ex_pb.ListExecutionsRequest(created_after=far),
            metadata=stack.md("tenant-a"),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert _fields(info.value) == ["created_after"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.ex.GetExecutionStats(
            ex_pb.GetExecutionStatsRequest(end_time=timestamp_pb2.Timestamp(seconds=-(10**12))),
            metadata=stack.md("tenant-a"),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert _fields(info.value) == ["end_time"]


async def test_trigger_limit_counts_bytes(stack: Stack) -> None:
    text = orjson.dumps({"s": "\u20ac" * 1500}).decode()  # 1,509 characters, 4,509 bytes
    assert len(text) < MAX_TRIGGER_BYTES < len(text.encode())
    err = await _execute(
        stack,
        ex_pb.ExecuteWorkflowRequest(
            workflow=to_proto(SIMPLE), trigger_data_json=text, mode=DIRECT
        ),
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout_s", 1e300), ("timeout_s", 86_401.0), ("backoff_s", 1e9)],
)
async def test_settings_values_are_range_checked(stack: Stack, field: str, value: float) -> None:
    workflow = to_proto(SIMPLE)
    setattr(workflow.settings, field, value)
    err = await _execute(stack, ex_pb.ExecuteWorkflowRequest(workflow=workflow, mode=DIRECT))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert any(f.endswith(f"settings.{field}") for f in _fields(err)), _fields(err)
