"""The composed events service on the shared server bootstrap (interceptors, health, auth)."""

from __future__ import annotations

import uuid

import grpc
from redis.asyncio import Redis

from nodedrop.common.server import GrpcServer
from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.events.app import create_service
from nodedrop.events.settings import EventsSettings
from nodedrop.store import EventType, Keys

from .conftest import KEY_A, KEY_B, EventWriter
from .reader import EventReader


async def test_service_streams_through_the_standard_server(
    redis: Redis, redis_url: str, auth_address: str
) -> None:
    prefix = f"t-ev-{uuid.uuid4().hex[:10]}"
    settings = EventsSettings.from_env(
        {
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": prefix,
            "NODEDROP_PARTITIONS": "4",
            "NODEDROP_EVENTS_ADDR": "127.0.0.1:0",
            "NODEDROP_API_ADDR": auth_address,
        }
    )
    writer = EventWriter(redis, Keys(prefix=prefix, partitions=4))
    await writer.write("ex-app", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED])
    server = GrpcServer(create_service(settings), settings.server)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = event_service_pb2_grpc.EventServiceStub(channel)

            def call(key: str) -> grpc.aio.UnaryStreamCall:
                return stub.StreamExecutionEvents(
                    event_service_pb2.StreamExecutionEventsRequest(execution_id="ex-app"),
                    metadata=(("authorization", f"Bearer {key}"),),
                    timeout=10,
                )

            stream = EventReader(call(KEY_A))
            assert (await stream.read()).sequence == 1
            assert (await stream.read()).sequence == 2
            await writer.write("ex-app", [EventType.EXECUTION_COMPLETED])
            last = await stream.read()
            assert last.sequence == 3
            assert await stream.read() is grpc.aio.EOF
            refused = call(KEY_B)
            try:
                await refused.read()
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("another tenant's execution was streamed")
    finally:
        await server.stop(1)
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
