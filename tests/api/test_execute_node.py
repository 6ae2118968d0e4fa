"""ExecuteNode over gRPC: one node through the engine, nothing stored; node
failures in the response's error, bad input as INVALID_ARGUMENT with paths."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import orjson
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2, status_pb2

from nodedrop.api.model import ExecutionFilter
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.api.harness import RunningApi, api_settings, running_api


@pytest.fixture
async def api(
    pg_repo: PostgresRepository, redis_client: aioredis.Redis, redis_url: str, redis_prefix: str
) -> AsyncIterator[RunningApi]:
    settings = api_settings(redis_url, redis_prefix, {"NODEDROP_MAX_PAYLOAD_BYTES": "65536"})
    async with running_api(settings, pg_repo) as a:
        yield a


def _node(type_: str, params: object, **kw: object) -> wf_pb.Node:
    return wf_pb.Node(id="n", type=type_, parameters_json=orjson.dumps(params).decode(), **kw)  # type: ignore[arg-type]


async def test_runs_one_node_and_stores_nothing(
    api: RunningApi, pg_repo: PostgresRepository
) -> None:
    response = await api.ex.ExecuteNode(
        ex_pb.ExecuteNodeRequest(
            node=_node("if", {"condition": "json.amount > 100"}),
            input_items_json='[{"amount": 150}, {"amount": 5}]',
        ),
        metadata=api.md,
    )
    assert not response.HasField("error")
    assert orjson.loads(response.outputs_json["true"]) == [{"amount": 150}]
    assert orjson.loads(response.outputs_json["false"]) == [{"amount": 5}]
    assert response.duration.ToNanoseconds() > 0
    assert await pg_repo.list_executions("tenant-a", ExecutionFilter(), None, 10) == []


async def test_trigger_data_and_other_ports(api: RunningApi) -> None:
    trig = await api.ex.ExecuteNode(
        ex_pb.ExecuteNodeRequest(node=_node("manual_trigger", {}), trigger_data_json='{"x": 1}'),
        metadata=api.md,
    )
    assert orjson.loads(trig.outputs_json["main"]) == [{"x": 1}]
    merged = await api.ex.ExecuteNode(
        ex_pb.ExecuteNodeRequest(
            node=_node("merge", {"mode": "append"}),
            inputs_json={"a": '[{"v": 1}]', "b": '[{"v": 2}]'},
        ),
        metadata=api.md,
    )
    assert orjson.loads(merged.outputs_json["main"]) == [{"v": 1}, {"v": 2}]


async def test_node_failure_comes_back_in_the_error_field(api: RunningApi) -> None:
    response = await api.ex.ExecuteNode(
        ex_pb.ExecuteNodeRequest(
            node=_node("set", {"fields": {"y": "json.a + 1.5"}}), input_items_json='[{"a": 1}]'
        ),
        metadata=api.md,
    )
    assert response.HasField("error")
    assert response.error.node_id == "n" and response.error.message
    assert not response.outputs_json


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                br = error_details_pb2.BadRequest()
                if detail.Unpack(br):
                    return [v.field for v in br.field_violations]
    return []


BAD = [
    (ex_pb.ExecuteNodeRequest(), "node"),
    (ex_pb.ExecuteNodeRequest(node=wf_pb.Node(id="bad id!", type="noop")), "node.id"),
    (ex_pb.ExecuteNodeRequest(node=wf_pb.Node(id="n", type="")), "node.type"),
    (ex_pb.ExecuteNodeRequest(node=wf_pb.Node(id="n", type="no_such_type")), "node.type"),
    (
        ex_pb.ExecuteNodeRequest(node=wf_pb.Node(id="n", type="noop", parameters_json="{")),
        "node.parameters_json",
    ),
    (
        ex_pb.ExecuteNodeRequest(node=_node("if", {"condition": "json.a >"})),
        "node.parameters_json.condition",
    ),
    (
        ex_pb.ExecuteNodeRequest(node=_node("noop", {}), input_items_json="[1, 2]"),
        "input_items_json",
    ),
    (ex_pb.ExecuteNodeRequest(node=_node("noop", {}), input_items_json="{"), "input_items_json"),
    (
        ex_pb.ExecuteNodeRequest(node=_node("merge", {}), inputs_json={"b": '{"x": 1}'}),
        "inputs_json[b]",
    ),
    (ex_pb.ExecuteNodeRequest(node=_node("noop", {}), trigger_data_json="3"), "trigger_data_json"),
]


@pytest.mark.parametrize(("request_", "field"), BAD)
async def test_bad_input_is_invalid_argument_with_the_field_path(
    api: RunningApi, request_: ex_pb.ExecuteNodeRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ex.ExecuteNode(request_, metadata=api.md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    fields = _violations(err.value)
    assert any(f == field or f.startswith(field + ".") for f in fields), fields


async def test_too_big_is_resource_exhausted(api: RunningApi) -> None:
    items = orjson.dumps([{"pad": "x" * 1000}] * 80).decode()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ex.ExecuteNode(
            ex_pb.ExecuteNodeRequest(node=_node("noop", {}), input_items_json=items),
            metadata=api.md,
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_needs_a_key_with_execute_scope(api: RunningApi) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await api.ex.ExecuteNode(ex_pb.ExecuteNodeRequest(node=_node("noop", {})))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
