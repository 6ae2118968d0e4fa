"""The live feed survives a Redis restart (a private redis-server, never the shared one)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from redis.asyncio import Redis

from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.store import EventType, Keys
from tests.helpers.ports import port_open
from tests.helpers.redis_server import PrivateRedis, private_redis

from .conftest import KEY_A, EventsStack, start_events
from .reader import EventReader

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


def _restart(server: PrivateRedis) -> None:
    """Stop the server and start an empty one on the same port (data lost)."""
    server.stop()
    server.process = subprocess.Popen(
        [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(server.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", server.directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):  # up to ~10 s
        if port_open("127.0.0.1", server.port, 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not come back")


@pytest.fixture
def private() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
async def restart_stack(private: PrivateRedis, auth_address: str) -> AsyncIterator[EventsStack]:
    client = Redis.from_url(private.url, decode_responses=True, protocol=2)
    async for stack in start_events(client, Keys(prefix="rs", partitions=2), auth_address):
        yield stack
    await client.aclose()


async def test_live_feed_and_new_subscriptions_recover_after_a_redis_restart(
    restart_stack: EventsStack, private: PrivateRedis
) -> None:
    stack = restart_stack
    await stack.writer.write("ex-rs", [EventType.EXECUTION_QUEUED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)

        def call() -> grpc.aio.UnaryStreamCall:
            return stub.StreamExecutionEvents(
                event_service_pb2.StreamExecutionEventsRequest(execution_id="ex-rs"),
                metadata=(("authorization", f"Bearer {KEY_A}"),),
                timeout=30,
            )

        live = EventReader(call())
        assert (await live.read()).sequence == 1
        await asyncio.to_thread(private.stop)
        # While Redis is down a new subscription is told to retry, not INTERNAL.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call().read()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        await asyncio.to_thread(_restart, private)
        # The open subscription goes on: the feed reconnected from its cursor.
        for _ in range(100):
            try:
                await stack.writer.write("ex-rs", [EventType.EXECUTION_COMPLETED])
                break
            except OSError:
                await asyncio.sleep(0.1)
        event = await asyncio.wait_for(live.read(), 10)
        assert event.sequence == 2
        assert await live.read() is grpc.aio.EOF
