"""The events service's readiness follows its live feed: NOT_SERVING while the
feed cannot read (it failed at start), SERVING once it reads again, and the
feed restarts by itself. Real service, real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis

from nodedrop.common.server import GrpcServer
from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.events.app import create_service
from nodedrop.events.settings import EventsSettings
from nodedrop.store import EventType, Keys

from .conftest import KEY_A, EventWriter
from .reader import EventReader


async def _status(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    return int(reply.status)


async def _until(channel: grpc.aio.Channel, wanted: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (status := await _status(channel)) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"health {status}, not {wanted}, after {timeout_s} s")
        await asyncio.sleep(0.1)


async def test_a_feed_that_fails_at_start_is_not_serving_until_it_reads(
    redis: Redis, redis_url: str, auth_address: str
) -> None:
    prefix = f"t-ev-{uuid.uuid4().hex[:10]}"
    keys = Keys(prefix=prefix, partitions=4)
    # Not a stream where the feed pins its start: every read of it fails.
    await redis.set(keys.events(2), "not a stream")
    settings = EventsSettings.from_env(
        {
            "REDIS_URL": redis_url,
            "NODEDROP_REDIS_PREFIX": prefix,
            "NODEDROP_PARTITIONS": "4",
            "NODEDROP_EVENTS_ADDR": "127.0.0.1:0",
            "NODEDROP_API_ADDR": auth_address,
        }
    )
    server = GrpcServer(create_service(settings), settings.server)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            await asyncio.sleep(1.0)
            assert await _status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            await redis.delete(keys.events(2))
            await _until(channel, health_pb2.HealthCheckResponse.SERVING, 15)
            # The restarted feed delivers live events.
            stub = event_service_pb2_grpc.EventServiceStub(channel)
            stream = EventReader(
                stub.StreamExecutionEvents(
                    event_service_pb2.StreamExecutionEventsRequest(execution_id="ex-live"),
                    metadata=(("authorization", f"Bearer {KEY_A}"),),
                    timeout=15,
                )
            )
            writer = EventWriter(redis, keys)
            await writer.write("ex-live", [EventType.EXECUTION_QUEUED])
            assert (await stream.read()).sequence == 1
            await writer.write("ex-live", [EventType.EXECUTION_STARTED])
            assert (await stream.read()).sequence == 2
            stream.cancel()
    finally:
        await server.stop(1)
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
