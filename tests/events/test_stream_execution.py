"""StreamExecutionEvents over a real gRPC server and Redis: replay, tail, resume, tenancy."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from nodedrop.store import EventType

from .conftest import KEY_A, KEY_B, KEY_NO_READ, EventsStack
from .reader import EventReader

MIDDLE = [EventType.NODE_STARTED, EventType.NODE_COMPLETED]


def _stub(channel: grpc.aio.Channel) -> event_service_pb2_grpc.EventServiceStub:
    return event_service_pb2_grpc.EventServiceStub(channel)


def _call(
    channel: grpc.aio.Channel, execution_id: str, after: int = 0, key: str = KEY_A
) -> grpc.aio.UnaryStreamCall:
    return _stub(channel).StreamExecutionEvents(
        event_service_pb2.StreamExecutionEventsRequest(
            execution_id=execution_id, after_sequence=after
        ),
        metadata=(("authorization", f"Bearer {key}"),),
        timeout=30,
    )


async def _collect(call: grpc.aio.UnaryStreamCall) -> list[event_pb2.ExecutionEvent]:
    return [e for r in [r async for r in call] for e in r.events]


async def test_replay_of_a_finished_execution_ends_after_the_terminal_event(
    stack: EventsStack,
) -> None:
    await stack.writer.write(
        "ex-done", [EventType.EXECUTION_QUEUED, *MIDDLE, EventType.EXECUTION_COMPLETED]
    )
    async with grpc.aio.insecure_channel(stack.address) as channel:
        events = await _collect(_call(channel, "ex-done"))
        assert [e.sequence for e in events] == [1, 2, 3, 4]
        assert events[-1].type == event_pb2.EVENT_TYPE_EXECUTION_COMPLETED
        assert events[1].node_id == "n1"
        # Resuming at the terminal event ends at once with nothing.
        assert await _collect(_call(channel, "ex-done", after=4)) == []


@pytest.mark.slow
async def test_resume_at_k_of_10000_events_is_exactly_once_in_order(stack: EventsStack) -> None:
    total, k = 10_000, 3_000
    execution_id = "ex-10k"
    await stack.writer.write(execution_id, [EventType.EXECUTION_QUEUED])

    async def produce() -> None:
        sent = 1
        while sent < total - 1:
            n = min(250, total - 1 - sent)
            await stack.writer.write(execution_id, [EventType.NODE_COMPLETED] * n)
            sent += n
            await asyncio.sleep(0.005)
        await stack.writer.write(execution_id, [EventType.EXECUTION_COMPLETED])

    async with grpc.aio.insecure_channel(stack.address) as channel:
        first = EventReader(_call(channel, execution_id))
        producer = asyncio.create_task(produce())
        seen: list[int] = []
        async for event in first:
            seen.append(event.sequence)
            if len(seen) == k:
                break
        first.cancel()
        assert seen == list(range(1, k + 1))
        # Reconnect while the execution is still emitting.
        live = await _collect(_call(channel, execution_id, after=k))
        await producer
        assert [e.sequence for e in live] == list(range(k + 1, total + 1))
        # And again after it ended: served from the stored stream.
        after_end = await _collect(_call(channel, execution_id, after=k))
        assert [e.sequence for e in after_end] == list(range(k + 1, total + 1))


async def test_live_tail_fills_a_gap_from_the_execution_log(stack: EventsStack) -> None:
    await stack.writer.write("ex-gap", [EventType.EXECUTION_QUEUED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = EventReader(_call(channel, "ex-gap"))
        first = await call.read()
        assert first.sequence == 1
        # Two events reach only the execution's stream (as if trimmed from the
        # partition stream); the next live one reveals the hole.
        await stack.writer.write("ex-gap", MIDDLE, partition_stream=False)
        await stack.writer.write("ex-gap", [EventType.EXECUTION_FAILED])
        rest = []
        while (event := await call.read()) is not grpc.aio.EOF:
            rest.append(event)
        assert [e.sequence for e in rest] == [2, 3, 4]


async def test_subscribing_before_any_later_event_tails_live(stack: EventsStack) -> None:
    await stack.writer.write("ex-live", [EventType.EXECUTION_QUEUED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = _call(channel, "ex-live", after=1)
        task = asyncio.create_task(_collect(call))
        await asyncio.sleep(0.1)
        await stack.writer.write("ex-live", [*MIDDLE, EventType.EXECUTION_CANCELLED])
        events = await asyncio.wait_for(task, 5)
        assert [e.sequence for e in events] == [2, 3, 4]


@pytest.mark.parametrize(
    ("execution_id", "after", "key", "code"),
    [
        ("ex-a", 0, KEY_B, grpc.StatusCode.NOT_FOUND),
        ("ex-missing", 0, KEY_A, grpc.StatusCode.NOT_FOUND),
        ("ex-a", 9, KEY_A, grpc.StatusCode.OUT_OF_RANGE),
        ("", 0, KEY_A, grpc.StatusCode.INVALID_ARGUMENT),
        ("ex-a", 0, "wrong-key", grpc.StatusCode.UNAUTHENTICATED),
        ("ex-a", 0, KEY_NO_READ, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_refusals(
    stack: EventsStack, execution_id: str, after: int, key: str, code: grpc.StatusCode
) -> None:
    await stack.writer.write("ex-a", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_STARTED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _collect(_call(channel, execution_id, after=after, key=key))
        assert info.value.code() == code
        assert info.value.details()


async def test_missing_credentials_are_unauthenticated(stack: EventsStack) -> None:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = _stub(channel).StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(execution_id="x"), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _collect(call)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_stream_events_filters_by_workflow_and_type_within_the_tenant(
    stack: EventsStack,
) -> None:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = _stub(channel).StreamEvents(
            event_service_pb2.StreamEventsRequest(
                workflow_id="wf-1", event_types=[event_pb2.EVENT_TYPE_EXECUTION_COMPLETED]
            ),
            metadata=(("authorization", f"Bearer {KEY_A}"),),
            timeout=10,
        )
        await asyncio.sleep(0.2)
        await stack.writer.write(
            "ex-1", [EventType.EXECUTION_QUEUED, EventType.EXECUTION_COMPLETED]
        )
        await stack.writer.write("ex-2", [EventType.EXECUTION_COMPLETED], tenant_id="tenant-b")
        stack.writer.workflow_id = "wf-2"
        await stack.writer.write("ex-3", [EventType.EXECUTION_COMPLETED])
        stack.writer.workflow_id = "wf-1"
        await stack.writer.write("ex-4", [EventType.EXECUTION_COMPLETED])
        reader = EventReader(call)
        got = [(await reader.read()).execution_id for _ in range(2)]
        call.cancel()
        assert got == ["ex-1", "ex-4"]


async def test_stream_events_rejects_unknown_types(stack: EventsStack) -> None:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = _stub(channel).StreamEvents(
            event_service_pb2.StreamEventsRequest(event_types=[99]),  # type: ignore[list-item]
            metadata=(("authorization", f"Bearer {KEY_A}"),),
            timeout=5,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
