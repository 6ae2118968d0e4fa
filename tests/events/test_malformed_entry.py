"""A partition-stream entry that cannot be decoded is skipped and logged, not a stalled feed."""

from __future__ import annotations

import asyncio

import grpc
import structlog
from redis.asyncio import Redis

from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.store import EventType

from .conftest import KEY_A, EventsStack
from .reader import EventReader


async def test_live_events_after_a_malformed_entry_are_still_delivered(
    stack: EventsStack, redis: Redis
) -> None:
    execution_id = "ex-malformed"
    await stack.writer.write(execution_id, [EventType.EXECUTION_QUEUED])
    partition_stream = stack.keys.events(stack.keys.partition(execution_id))
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = EventReader(
            event_service_pb2_grpc.EventServiceStub(channel).StreamExecutionEvents(
                event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id),
                metadata=(("authorization", f"Bearer {KEY_A}"),),
                timeout=10,
            )
        )
        assert (await call.read()).sequence == 1
        with structlog.testing.capture_logs() as logs:
            # Three kinds of garbage: a missing field, a bad number, an unknown type.
            bad_ids = [
                await redis.xadd(partition_stream, {"x": execution_id}),
                await redis.xadd(partition_stream, {"x": execution_id, "s": "two", "t": "X"}),
                await redis.xadd(
                    partition_stream,
                    {"x": execution_id, "s": "2", "t": "NOPE", "ts": "1", "tn": "tenant-a"},
                ),
            ]
            await stack.writer.write(
                execution_id, [EventType.NODE_STARTED, EventType.EXECUTION_COMPLETED]
            )
            rest = []
            while (event := await asyncio.wait_for(call.read(), 5)) is not grpc.aio.EOF:
                rest.append(event.sequence)
        assert rest == [2, 3]
        skipped = [e for e in logs if e["event"] == "undecodable event entry skipped"]
        assert [e["entry_id"] for e in skipped] == bad_ids
    # The feed is still running and reads on after the bad entries.
    assert not stack.feed_task.done()
    await stack.writer.write("ex-after", [EventType.EXECUTION_QUEUED])
    for _ in range(50):
        if stack.hub.published >= 4:
            break
        await asyncio.sleep(0.05)
    assert stack.hub.published >= 4
