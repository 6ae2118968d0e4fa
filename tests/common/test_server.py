"""The server bootstrap in-process: interceptors, health, reflection, lifecycle."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nodedrop.common.auth import bearer_metadata
from nodedrop.common.client import call, open_channel
from nodedrop.common.errors import FieldViolation, InvalidArgument, Unauthenticated
from nodedrop.common.security import SecuritySettings
from nodedrop.common.server import GC_THRESHOLDS, GrpcServer, serve
from nodedrop.common.service_auth import ServiceCredential
from nodedrop.common.settings import Address, ServerSettings
from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.queue.v1 import worker_service_pb2, worker_service_pb2_grpc
from tests.common.stream_app import API_KEY, STREAM_EVENTS, StaticAuthenticator, StreamTestService
from tests.helpers.services import SERVICE_TOKEN, service_channel

SETTINGS = ServerSettings(
    addr=Address("127.0.0.1", 0), shutdown_grace_s=2.0, grpc_max_message_bytes=1024 * 1024
)


# The test service registers WorkerService, an internal service: its calls
# need the service credential.
SECURITY = SecuritySettings(ServiceCredential.of(SERVICE_TOKEN), None)


async def _serve(
    service: StreamTestService, *, as_service: bool = True
) -> AsyncIterator[tuple[GrpcServer, grpc.aio.Channel]]:
    """``as_service``: the channel sends the service credential on calls that carry none."""
    server = GrpcServer(service, SETTINGS, security=SECURITY)
    await server.start()
    target = f"127.0.0.1:{server.port}"
    channel = service_channel(target) if as_service else open_channel(target)
    try:
        yield server, channel
    finally:
        await channel.close()
        await server.set_not_serving()
        await server.stop(1.0)


@pytest.fixture
async def plain() -> AsyncIterator[tuple[GrpcServer, grpc.aio.Channel]]:
    async for pair in _serve(StreamTestService()):
        yield pair


@pytest.fixture
async def authed() -> AsyncIterator[tuple[GrpcServer, grpc.aio.Channel]]:
    async for pair in _serve(StreamTestService(StaticAuthenticator()), as_service=False):
        yield pair


async def test_invalid_argument_carries_a_field_violation(
    plain: tuple[GrpcServer, grpc.aio.Channel],
) -> None:
    stub = worker_service_pb2_grpc.WorkerServiceStub(plain[1])
    request = worker_service_pb2.DrainWorkerRequest(grace=duration_pb2.Duration(seconds=-5))
    with pytest.raises(InvalidArgument) as info:
        await call(stub.DrainWorker, request, timeout_s=5)
    assert info.value.violations == (FieldViolation("grace", "must not be negative"),)
    ok = await call(stub.DrainWorker, worker_service_pb2.DrainWorkerRequest(), timeout_s=5)
    assert ok.active_jobs == 0


async def test_a_streaming_handler_error_is_mapped_too(
    plain: tuple[GrpcServer, grpc.aio.Channel],
) -> None:
    stub = event_service_pb2_grpc.EventServiceStub(plain[1])
    stream = stub.StreamExecutionEvents(event_service_pb2.StreamExecutionEventsRequest(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stream:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "execution_id: must not be empty"


@pytest.mark.parametrize("streaming", [False, True])
async def test_unexpected_exceptions_become_internal_without_their_text(
    plain: tuple[GrpcServer, grpc.aio.Channel], streaming: bool
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if streaming:
            stub = event_service_pb2_grpc.EventServiceStub(plain[1])
            request = event_service_pb2.StreamExecutionEventsRequest(execution_id="boom")
            async for _ in stub.StreamExecutionEvents(request, timeout=5):
                pass
        else:
            worker = worker_service_pb2_grpc.WorkerServiceStub(plain[1])
            await worker.GetWorkerStatus(worker_service_pb2.GetWorkerStatusRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error"
    assert "secret" not in str(info.value)


async def test_stream_delivers_every_message(plain: tuple[GrpcServer, grpc.aio.Channel]) -> None:
    stub = event_service_pb2_grpc.EventServiceStub(plain[1])
    request = event_service_pb2.StreamExecutionEventsRequest(execution_id="e1")
    sequences = [
        event.sequence
        async for r in stub.StreamExecutionEvents(request, timeout=10)
        for event in r.events
    ]
    assert sequences == list(range(1, STREAM_EVENTS + 1))


async def test_health_and_reflection(plain: tuple[GrpcServer, grpc.aio.Channel]) -> None:
    health = health_pb2_grpc.HealthStub(plain[1])
    for name in ("", "nodedrop.event.v1.EventService", "nodedrop.queue.v1.WorkerService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    services = await _reflected_services(plain[1])
    assert {"nodedrop.event.v1.EventService", "grpc.health.v1.Health"} <= services
    await plain[0].set_not_serving()
    response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def _reflected_services(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in stub.ServerReflectionInfo(requests(), timeout=5):
        return {s.name for s in response.list_services_response.service}
    raise AssertionError("no reflection response")


async def test_auth_hook(authed: tuple[GrpcServer, grpc.aio.Channel]) -> None:
    stub = event_service_pb2_grpc.EventServiceStub(authed[1])
    request = event_service_pb2.StreamExecutionEventsRequest(execution_id="whoami")
    for metadata, message in (
        ((), "missing authorization metadata"),
        ((("authorization", "Basic abc"),), "must be 'Bearer <api key>'"),
        (bearer_metadata("wrong"), "invalid api key"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.StreamExecutionEvents(request, timeout=5, metadata=metadata):
                pass
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert message in (info.value.details() or "")
    responses = [
        r
        async for r in stub.StreamExecutionEvents(
            request, timeout=5, metadata=bearer_metadata(API_KEY)
        )
    ]
    assert [e.workflow_id for r in responses for e in r.events] == ["tenant-1"]
    # Health stays public on an authenticated server.
    health = health_pb2_grpc.HealthStub(authed[1])
    response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    # The client helper turns the status into the domain error.
    worker = worker_service_pb2_grpc.WorkerServiceStub(authed[1])
    with pytest.raises(Unauthenticated):
        await call(worker.DrainWorker, worker_service_pb2.DrainWorkerRequest(), timeout_s=5)


async def test_lifecycle_starts_and_stops_the_service() -> None:
    service = StreamTestService()
    server = GrpcServer(service, SETTINGS)
    await server.start()
    assert service.started and not service.stopped
    await server.set_not_serving()
    await server.stop(1.0)
    assert service.stopped
    await server.stop(1.0)  # idempotent


class _BaseClassService(StreamTestService):
    """Registers the generated base class, as a skeleton service does."""

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(
            worker_service_pb2_grpc.WorkerServiceServicer(),  # type: ignore[abstract]
            server,
        )
        return ["nodedrop.queue.v1.WorkerService"]


async def test_unimplemented_stays_unimplemented() -> None:
    async for _, channel in _serve(_BaseClassService()):
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetWorkerStatus(worker_service_pb2.GetWorkerStatusRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_serve_settles_the_heap_once_started(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "set_threshold", lambda *t: calls.append(t))
    stop = asyncio.Event()
    stop.set()
    await serve([], 1.0, stop_event=stop)
    assert calls == ["freeze", GC_THRESHOLDS]
