"""Each service as a real subprocess: health, reflection, SIGTERM, bad settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
import redis.asyncio as aioredis
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.queue.v1 import worker_service_pb2, worker_service_pb2_grpc
from tests.common.stream_app import STREAM_EVENTS
from tests.helpers.services import isolated_env, service_metadata, start_service

GRACE_S = 5.0

SERVICES = {
    "api": {
        "nodedrop.execution.v1.ExecutionService",
        "nodedrop.workflow.v1.WorkflowService",
        "nodedrop.auth.v1.AuthService",
        "nodedrop.queue.v1.ScheduleRunService",
    },
    "scheduler": {"nodedrop.queue.v1.SchedulerService"},
    "worker": {"nodedrop.queue.v1.WorkerService"},
    "events": {"nodedrop.event.v1.EventService"},
}


@pytest.fixture
def service_env(
    redis_url: str, redis_prefix: str, pg_dsn: str, redis_client: aioredis.Redis
) -> dict[str, str]:
    """Isolated backing stores, and the other services on ports nobody uses
    (``redis_client`` deletes what the services wrote under the prefix)."""
    return isolated_env(redis_url, redis_prefix, pg_dsn, GRACE_S)


async def _reflected(target: str) -> set[str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for response in stub.ServerReflectionInfo(requests(), timeout=5):
            return {s.name for s in response.list_services_response.service}
    raise AssertionError("no reflection response")


@pytest.mark.slow
@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_grpc_service_serves_and_stops_on_sigterm(
    service: str, service_env: dict[str, str]
) -> None:
    async with start_service(service, env=service_env) as proc:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", *SERVICES[service]):
                response = await health.Check(
                    health_pb2.HealthCheckRequest(service=name), timeout=5
                )
                assert response.status == health_pb2.HealthCheckResponse.SERVING, name
        assert SERVICES[service] | {"grpc.health.v1.Health"} <= await _reflected(proc.target)
        started = time.monotonic()
        proc.terminate()
        assert await proc.wait(GRACE_S + 5) == 0, proc.output()
        assert time.monotonic() - started < GRACE_S + 5


@pytest.mark.slow
async def test_gateway_serves_healthz_and_stops_on_sigterm(service_env: dict[str, str]) -> None:
    async with start_service("gateway", env=service_env, http=True) as proc:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://{proc.target}/healthz")
            assert response.status_code == 200
            assert (await client.get(f"http://{proc.target}/nowhere")).status_code == 404
        proc.terminate()
        assert await proc.wait(GRACE_S + 5) == 0, proc.output()


async def test_a_bad_setting_stops_the_service_with_its_name() -> None:
    async with start_service(
        "worker", env={"EXECUTION_WORKER_CONCURRENCY": "abc"}, wait=False
    ) as proc:
        code = await proc.wait(20)
        assert code != 0
        assert "EXECUTION_WORKER_CONCURRENCY" in proc.output()
        assert "'abc'" in proc.output()


@pytest.mark.slow
async def test_sigterm_lets_an_inflight_stream_finish() -> None:
    env = {"NODEDROP_SHUTDOWN_GRACE_S": str(GRACE_S)}
    async with start_service(argv=["-m", "tests.common.stream_app"], env=env) as proc:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            stream = stub.StreamExecutionEvents(
                event_service_pb2.StreamExecutionEventsRequest(execution_id="e1"), timeout=20
            )
            received = [e.sequence for e in (await stream.read()).events]
            signalled = time.monotonic()
            proc.terminate()
            while (response := await stream.read()) is not grpc.aio.EOF:
                received.extend(e.sequence for e in response.events)
            assert await stream.code() == grpc.StatusCode.OK
            assert received == list(range(1, STREAM_EVENTS + 1))
            # New calls are refused while the stream drains or after it.
            health = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                for _ in range(50):
                    response = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    assert response.status == health_pb2.HealthCheckResponse.SERVING
                    await asyncio.sleep(0.1)
        assert await proc.wait(GRACE_S + 5) == 0, proc.output()
        assert time.monotonic() - signalled < GRACE_S + 5


@pytest.mark.slow
async def test_a_malformed_field_gets_invalid_argument_with_bad_request() -> None:
    async with start_service(argv=["-m", "tests.common.stream_app"]) as proc:
        async with grpc.aio.insecure_channel(proc.target) as channel:
            stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
            request = worker_service_pb2.DrainWorkerRequest(grace=duration_pb2.Duration(seconds=-1))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.DrainWorker(request, timeout=5, metadata=service_metadata())
        error = info.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        blob = dict(error.trailing_metadata() or ())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(blob)
        bad_request = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad_request)
        assert [(v.field, v.description) for v in bad_request.field_violations] == [
            ("grace", "must not be negative")
        ]
        proc.terminate()
        assert await proc.wait(GRACE_S + 5) == 0
