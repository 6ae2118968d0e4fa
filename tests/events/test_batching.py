"""Responses carry every ready event, in order, within the count and byte caps."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from nodedrop.events.batching import pack
from nodedrop.events.live import LiveEvent
from nodedrop.store import EventType

from .conftest import KEY_A, EventsStack


def _event(seq: int, data: str = "") -> LiveEvent:
    return LiveEvent.from_proto(
        "t",
        event_pb2.ExecutionEvent(
            execution_id="e", sequence=seq, type=event_pb2.EVENT_TYPE_NODE_COMPLETED, data_json=data
        ),
    )


def _sequences(response: bytes) -> list[int]:
    parsed = event_service_pb2.StreamExecutionEventsResponse.FromString(response)
    also = event_service_pb2.StreamEventsResponse.FromString(response)
    assert list(also.events) == list(parsed.events)
    return [e.sequence for e in parsed.events]


def test_pack_caps_a_response_by_count() -> None:
    responses = list(pack([_event(s) for s in range(1, 11)], max_events=4))
    assert [_sequences(r) for r in responses] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]


def test_pack_caps_a_response_by_bytes_and_sends_an_oversized_event_alone() -> None:
    events = [_event(1, "a" * 100), _event(2, "b" * 100), _event(3, "c" * 1000), _event(4)]
    responses = list(pack(events, max_bytes=300))
    assert [_sequences(r) for r in responses] == [[1, 2], [3], [4]]
    assert all(len(r) <= 300 for i, r in enumerate(responses) if i != 1)


def test_pack_of_nothing_sends_nothing() -> None:
    assert list(pack([])) == []
    with pytest.raises(ValueError):
        list(pack([_event(1)], max_events=0))


async def test_a_backlog_arrives_in_few_responses(stack: EventsStack) -> None:
    execution_id = "ex-batch"
    await stack.writer.write(execution_id, [EventType.EXECUTION_QUEUED])
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = event_service_pb2_grpc.EventServiceStub(channel).StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(execution_id=execution_id),
            metadata=(("authorization", f"Bearer {KEY_A}"),),
            timeout=10,
        )
        first = await call.read()
        assert [e.sequence for e in first.events] == [1]
        # The subscriber does not read while 499 more are committed live.
        for _ in range(10):
            await stack.writer.write(execution_id, [EventType.NODE_COMPLETED] * 49)
        await stack.writer.write(execution_id, [EventType.NODE_COMPLETED] * 8)
        await stack.writer.write(execution_id, [EventType.EXECUTION_COMPLETED])
        await asyncio.sleep(0.3)
        seqs: list[int] = []
        responses = 0
        while (response := await call.read()) is not grpc.aio.EOF:
            responses += 1
            seqs.extend(e.sequence for e in response.events)
    assert seqs == list(range(2, 501))
    # One response per feed read that found events (12 writes, a few reads
    # each), never one per event: without batching this would be 499.
    assert responses < 50
