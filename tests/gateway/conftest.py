"""Gateway test stack: fake API (AuthService + ExecutionService test doubles),
the real events service on Redis, and the real gateway."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import types
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
import pytest
from redis.asyncio import Redis

from nodedrop.auth.v1 import auth_service_pb2_grpc
from nodedrop.execution.v1 import (
    execution_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
)
from nodedrop.gateway.app import GatewayService
from nodedrop.gateway.settings import GatewaySettings
from nodedrop.store import EventType, Keys


def _load_events_harness() -> types.ModuleType:
    # The events tests' conftest holds the AuthService double and the events
    # stack; load it by path (test folders are not an importable package).
    name = "nodedrop_tests_events_harness"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).parent.parent / "events" / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load_events_harness()
KEY_A: str = harness.KEY_A
KEY_B: str = harness.KEY_B
TICKET_A: str = harness.TICKET_A
TICKET_EXPIRED: str = harness.TICKET_EXPIRED
ORIGIN = "http://127.0.0.1:8080"


@dataclass
class FakeExecutions(execution_service_pb2_grpc.ExecutionServiceServicer):
    """Test double of the API's ExecutionService: "runs" a workflow by writing
    each node's events to Redis the way a worker commits them."""

    writer: object
    node_delay_s: float = 0.05
    started: list[str] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def ExecuteWorkflow(
        self,
        request: execution_service_pb2.ExecuteWorkflowRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.ExecuteWorkflowResponse:
        execution_id = f"ex-{uuid.uuid4().hex[:12]}"
        self.started.append(execution_id)
        nodes = [n.id for n in request.workflow.nodes]
        task = asyncio.create_task(self._run(execution_id, nodes))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return execution_service_pb2.ExecuteWorkflowResponse(
            execution_id=execution_id, status=execution_pb2.EXECUTION_STATUS_QUEUED
        )

    async def _run(self, execution_id: str, nodes: list[str]) -> None:
        w = self.writer
        await w.write(execution_id, [EventType.EXECUTION_QUEUED])  # type: ignore[attr-defined]
        await w.write(execution_id, [EventType.EXECUTION_STARTED])  # type: ignore[attr-defined]
        for node in nodes:
            if execution_id in self.cancelled:
                return
            await w.write(execution_id, [EventType.NODE_STARTED], node_id=node)  # type: ignore[attr-defined]
            await asyncio.sleep(self.node_delay_s)
            data = orjson.dumps({"main": [{"node": node}]}).decode()
            await w.write(  # type: ignore[attr-defined]
                execution_id, [EventType.NODE_COMPLETED], node_id=node, data_json=data
            )
        await w.write(execution_id, [EventType.EXECUTION_COMPLETED])  # type: ignore[attr-defined]

    async def CancelExecution(
        self,
        request: execution_service_pb2.CancelExecutionRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.CancelExecutionResponse:
        if request.execution_id not in self.started:
            await context.abort(grpc.StatusCode.NOT_FOUND, "execution not found")
        self.cancelled.add(request.execution_id)
        await self.writer.write(request.execution_id, [EventType.EXECUTION_CANCELLED])  # type: ignore[attr-defined]
        return execution_service_pb2.CancelExecutionResponse(
            execution_id=request.execution_id, status=execution_pb2.EXECUTION_STATUS_CANCELLED
        )

    async def ListExecutions(
        self,
        request: execution_service_pb2.ListExecutionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.ListExecutionsResponse:
        return execution_service_pb2.ListExecutionsResponse(
            executions=[
                execution_pb2.Execution(id=i, status=execution_pb2.EXECUTION_STATUS_RUNNING)
                for i in reversed(self.started[-request.page_size :])
            ]
        )


@dataclass
class GatewayStack:
    url: str
    http: str
    gateway: GatewayService
    writer: object
    executions: FakeExecutions
    auth: object
    events: object


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True, protocol=2)
    yield client
    await client.aclose()


async def open_gateway_stack(
    redis: Redis,
    *,
    outbox: int = 4096,
    max_frame: int = 4096,
    write_limit: int = 32 * 1024,
) -> AsyncIterator[GatewayStack]:
    keys = Keys(prefix=f"t-gw-{uuid.uuid4().hex[:10]}", partitions=4)
    api = grpc.aio.server()
    auth = harness.FakeAuthService()
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(auth, api)
    writer = harness.EventWriter(redis, keys)
    # The RPCs the gateway does not call answer UNIMPLEMENTED from the base class.
    executions = FakeExecutions(writer)  # type: ignore[abstract]
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(executions, api)
    api_port = api.add_insecure_port("127.0.0.1:0")
    await api.start()
    try:
        async for events in harness.start_events(redis, keys, f"127.0.0.1:{api_port}"):
            env = {
                "NODEDROP_GATEWAY_ADDR": "127.0.0.1:0",
                "NODEDROP_API_ADDR": f"127.0.0.1:{api_port}",
                "NODEDROP_EVENTS_ADDR": events.address,
                "NODEDROP_GATEWAY_ORIGINS": ORIGIN,
                "NODEDROP_GATEWAY_MAX_FRAME_BYTES": str(max_frame),
                "NODEDROP_GATEWAY_OUTBOX": str(outbox),
                "NODEDROP_GATEWAY_WRITE_LIMIT": str(write_limit),
            }
            gateway = GatewayService(GatewaySettings.from_env(env))
            await gateway.start()
            try:
                yield GatewayStack(
                    url=f"ws://127.0.0.1:{gateway.port}/ws",
                    http=f"http://127.0.0.1:{gateway.port}",
                    gateway=gateway,
                    writer=writer,
                    executions=executions,
                    auth=auth,
                    events=events,
                )
            finally:
                await gateway.stop(1.0)
                for task in list(executions.tasks):
                    task.cancel()
    finally:
        await api.stop(0)
        async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
            await redis.delete(key)


@pytest.fixture
async def gw(redis: Redis) -> AsyncIterator[GatewayStack]:
    async for stack in open_gateway_stack(redis):
        yield stack


from .system import live_system  # noqa: E402, F401  (the `nodedrop dev` fixture)
