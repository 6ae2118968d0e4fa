"""Many subscribers on one events process: everyone gets everything; a slow one is cut off."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis

from nodedrop.event.v1 import event_service_pb2, event_service_pb2_grpc
from nodedrop.store import EventType, Keys

from .conftest import KEY_A, EventsStack, start_events
from .reader import EventReader

SUBSCRIBERS = 1_000
CHANNELS = 4
EVENTS = 20


def _call(channel: grpc.aio.Channel, execution_id: str) -> EventReader:
    return EventReader(
        event_service_pb2_grpc.EventServiceStub(channel).StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id),
            metadata=(("authorization", f"Bearer {KEY_A}"),),
            timeout=60,
        )
    )


@pytest.mark.slow
async def test_a_thousand_subscribers_all_receive_every_event(stack: EventsStack) -> None:
    execution_id = "ex-fan"
    await stack.writer.write(execution_id, [EventType.EXECUTION_QUEUED])
    channels = [grpc.aio.insecure_channel(stack.address) for _ in range(CHANNELS)]
    latencies_ms: list[float] = []
    subscribed = asyncio.Semaphore(0)

    async def subscriber(channel: grpc.aio.Channel) -> list[int]:
        seqs: list[int] = []
        async for event in _call(channel, execution_id):
            seqs.append(event.sequence)
            if event.sequence == 1:
                subscribed.release()
            else:
                latencies_ms.append(time.time() * 1000 - event.time.ToMilliseconds())
        return seqs

    tasks = [asyncio.create_task(subscriber(channels[i % CHANNELS])) for i in range(SUBSCRIBERS)]
    try:
        for _ in range(SUBSCRIBERS):
            await asyncio.wait_for(subscribed.acquire(), 30)
        assert stack.hub.subscriber_count == SUBSCRIBERS
        for _ in range(EVENTS - 2):
            await stack.writer.write(execution_id, [EventType.NODE_COMPLETED])
            # Paced below the process's delivery rate, so the figure is latency
            # rather than the length of a backlog.
            await asyncio.sleep(0.1)
        await stack.writer.write(execution_id, [EventType.EXECUTION_COMPLETED])
        results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
        for channel in channels:
            await channel.close()
    expected = list(range(1, EVENTS + 1))
    assert all(seqs == expected for seqs in results)
    quantiles = statistics.quantiles(latencies_ms, n=100)
    print(
        f"\n{SUBSCRIBERS} subscribers x {EVENTS} events: commit-to-receipt "
        f"p50={quantiles[49]:.1f} ms p99={quantiles[98]:.1f} ms"
    )


@pytest.fixture
async def small_stack(redis: Redis, keys: Keys, auth_address: str) -> AsyncIterator[EventsStack]:
    async for s in start_events(redis, keys, auth_address, capacity=256):
        yield s
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        await redis.delete(key)


@pytest.mark.slow
async def test_a_slow_subscriber_is_cut_off_while_others_finish(small_stack: EventsStack) -> None:
    stack = small_stack
    execution_id = "ex-slow"
    total = 1_500
    await stack.writer.write(execution_id, [EventType.EXECUTION_QUEUED])
    fat = '{"blob": "' + "x" * 16_000 + '"}'
    async with (
        grpc.aio.insecure_channel(stack.address) as slow_channel,
        grpc.aio.insecure_channel(stack.address) as fast_channel,
    ):
        slow = _call(slow_channel, execution_id)
        assert (await slow.read()).sequence == 1  # then it stops reading

        progress = [0] * 5
        moved = asyncio.Condition()

        async def fast(i: int) -> list[int]:
            seqs = []
            async for event in _call(fast_channel, execution_id):
                seqs.append(event.sequence)
                progress[i] = event.sequence
                async with moved:
                    moved.notify_all()
            return seqs

        async def caught_up(seq: int) -> None:
            async with moved:
                await moved.wait_for(lambda: min(progress) >= seq)

        fast_tasks = [asyncio.create_task(fast(i)) for i in range(len(progress))]
        await asyncio.wait_for(caught_up(1), 10)
        # Paced by the fast subscribers only: the slow one never holds them up.
        while (sent := stack.writer._seqs[execution_id]) < total - 1:
            n = min(50, total - 1 - sent)
            await stack.writer.write(execution_id, [EventType.NODE_COMPLETED] * n, data_json=fat)
            await asyncio.wait_for(caught_up(sent + n), 10)
        await stack.writer.write(execution_id, [EventType.EXECUTION_COMPLETED])
        # The others finish although the slow one never read another message.
        results = await asyncio.wait_for(asyncio.gather(*fast_tasks), 30)
        assert all(seqs == list(range(1, total + 1)) for seqs in results)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            got = [1]
            while (event := await slow.read()) is not grpc.aio.EOF:
                got.append(event.sequence)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "resume" in (info.value.details() or "")
        assert got == list(range(1, len(got) + 1))
        assert len(got) < total
    assert stack.hub.overflows == 1
