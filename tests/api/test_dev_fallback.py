"""`nodedrop dev` without Redis: the API falls back to the in-memory store
(shared with the other services of the process), registers the development
key, and a direct run is recorded in the embedded store. (The real process,
and the refusals of a Redis that was named: tests/cli/test_dev_stores.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest

from nodedrop.api.app import ApiService
from nodedrop.api.repository_sqlite import SqliteRepository
from nodedrop.api.settings import ApiSettings
from nodedrop.common.server import GrpcServer
from nodedrop.execution.v1 import execution_pb2
from nodedrop.execution.v1 import execution_service_pb2 as ex_pb
from nodedrop.execution.v1 import execution_service_pb2_grpc as ex_grpc
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.ports import free_port

KEY = "ndk_0123456789ab_" + "B" * 43


@pytest.fixture
async def dev_api(capsys: pytest.CaptureFixture[str]) -> AsyncIterator[tuple[ApiService, int]]:
    settings = ApiSettings.from_env(
        {
            "NODEDROP_API_ADDR": "127.0.0.1:0",
            "NODEDROP_REDIS_PREFIX": "devfallback",
            "NODEDROP_API_KEY": KEY,
            "NODEDROP_SCHEDULER_ADDR": f"127.0.0.1:{free_port()}",
        }
    )
    # REDIS_URL not set, and nothing listens where the default points (here,
    # a port nobody uses): dev mode falls back, not fail.
    assert not settings.redis.url_set
    unused = dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{free_port()}/0")
    settings = dataclasses.replace(settings, redis=unused)
    repo = await SqliteRepository.open(":memory:")
    service = ApiService(settings, dev=True, repository=repo)
    server = GrpcServer(service, settings.server)
    await server.start()
    try:
        assert server.port is not None
        yield service, server.port
    finally:
        await server.set_not_serving()
        await server.stop(1.0)
        await repo.close()


async def test_dev_without_redis_runs_direct_and_records_in_the_embedded_store(
    dev_api: tuple[ApiService, int],
) -> None:
    service, port = dev_api
    assert service.dev_key == KEY
    wf = wf_pb.Workflow(
        name="dev",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="n", type="set", parameters_json='{"fields": {"x": "1"}}'),
        ],
        connections=[wf_pb.Connection(source="start", target="n")],
    )
    md = (("authorization", f"Bearer {KEY}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ex_grpc.ExecutionServiceStub(channel)
        r = await stub.ExecuteWorkflow(
            ex_pb.ExecuteWorkflowRequest(workflow=wf, mode=execution_pb2.EXECUTION_MODE_DIRECT),
            metadata=md,
        )
        for _ in range(100):
            got = await stub.GetExecution(
                ex_pb.GetExecutionRequest(execution_id=r.execution_id, include_outputs=True),
                metadata=md,
            )
            if got.execution.status == execution_pb2.EXECUTION_STATUS_COMPLETED:
                break
            await asyncio.sleep(0.05)
        assert got.execution.status == execution_pb2.EXECUTION_STATUS_COMPLETED
        assert got.execution.outputs["n"].ports_json["main"] == '[{"x":1}]'
