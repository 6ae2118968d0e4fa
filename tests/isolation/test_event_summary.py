"""A node output over NODEDROP_MAX_EVENT_BYTES goes out in its event as a
summary, while the execution's result keeps it whole (real API process)."""

from __future__ import annotations

import asyncio
import time

import grpc
import orjson
import pytest
import redis.asyncio as aioredis

from nodedrop.event.v1 import event_pb2
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from tests.isolation.stack import DIRECT, running_stack

pytestmark = pytest.mark.slow

WORKFLOW = {
    "name": "wide",
    "nodes": [
        {"id": "start", "type": "manual_trigger"},
        {"id": "pass", "type": "noop"},
    ],
    "connections": [{"from": "start", "to": "pass"}],
}


async def test_large_output_is_summarised_in_events_and_whole_in_the_result(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> None:
    items = [{"i": i, "pad": "x" * 100} for i in range(100)]  # about 12 KB
    extra = {"NODEDROP_MAX_EVENT_BYTES": "1024"}
    async with running_stack(redis_url, redis_prefix, pg_dsn, worker=False, extra=extra) as stack:
        execution_id = await stack.execute("tenant-a", WORKFLOW, items, DIRECT)
        done = await stack.wait_terminal("tenant-a", execution_id, 10)
        assert done.status == execution_pb2.EXECUTION_STATUS_COMPLETED, done
        response = await stack.ex.GetExecution(
            ex_pb.GetExecutionRequest(execution_id=execution_id, include_outputs=True),
            metadata=stack.md("tenant-a"),
            timeout=5,
        )
        assert orjson.loads(response.execution.outputs["pass"].ports_json["main"]) == items
        events = await stack.ex.ListExecutionEvents(
            ex_pb.ListExecutionEventsRequest(execution_id=execution_id),
            metadata=stack.md("tenant-a"),
            timeout=5,
        )
        completed = [
            orjson.loads(e.data_json)
            for e in events.events
            if e.type == event_pb2.EVENT_TYPE_NODE_COMPLETED and e.node_id == "pass"
        ]
        assert completed and all("$summary" in c for c in completed), completed
        assert completed[0]["$summary"]["items"] == {"main": 100}
        deadline = time.monotonic() + 10
        while True:
            try:
                await stack.ex.GetExecutionOutput(
                    ex_pb.GetExecutionOutputRequest(execution_id=execution_id, node_id="pass"),
                    metadata=stack.md("tenant-a"),
                    timeout=5,
                )
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    assert "NODEDROP_MAX_EVENT_BYTES" in (err.details() or "")
                    break
                if err.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                    raise
            else:
                raise AssertionError("the output of a summarised node was served")
            await asyncio.sleep(0.1)
