"""Executions Redis no longer holds: served from the API's recorded history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.asyncio import Redis

from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from nodedrop.execution.v1 import execution_service_pb2, execution_service_pb2_grpc
from nodedrop.store import EventType, Keys

from .conftest import KEY_A, KEY_B, EventsStack, FakeAuthService, start_events

_T = event_pb2


def _recorded(
    execution_id: str, types: list[event_pb2.EventType.ValueType]
) -> list[event_pb2.ExecutionEvent]:
    return [
        event_pb2.ExecutionEvent(execution_id=execution_id, sequence=i + 1, type=t)
        for i, t in enumerate(types)
    ]


RECORDED = {
    "ex-old": _recorded(
        "ex-old",
        [
            _T.EVENT_TYPE_EXECUTION_QUEUED,
            _T.EVENT_TYPE_EXECUTION_STARTED,
            _T.EVENT_TYPE_NODE_STARTED,
            _T.EVENT_TYPE_NODE_COMPLETED,
            _T.EVENT_TYPE_EXECUTION_COMPLETED,
        ],
    ),
    "ex-lost": _recorded(
        "ex-lost", [_T.EVENT_TYPE_EXECUTION_QUEUED, _T.EVENT_TYPE_EXECUTION_STARTED]
    ),
}


class FakeHistory(execution_service_pb2_grpc.ExecutionServiceServicer):
    """Test double of the API's ListExecutionEvents (tenant-a owns every recorded execution)."""

    async def ListExecutionEvents(
        self,
        request: execution_service_pb2.ListExecutionEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> execution_service_pb2.ListExecutionEventsResponse:
        metadata = dict(context.invocation_metadata() or ())
        events = RECORDED.get(request.execution_id)
        if events is None or metadata.get("authorization") != f"Bearer {KEY_A}":
            await context.abort(grpc.StatusCode.NOT_FOUND, "execution not found")
            raise AssertionError("unreachable")
        after = [e for e in events if e.sequence > request.after_sequence]
        page = after[: request.page_size or 100]
        return execution_service_pb2.ListExecutionEventsResponse(
            events=page, more=len(after) > len(page)
        )


@pytest.fixture
async def history_stack(redis: Redis, keys: Keys) -> AsyncIterator[EventsStack]:
    api = grpc.aio.server()
    from nodedrop.auth.v1 import auth_service_pb2_grpc  # noqa: PLC0415

    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuthService(), api)
    # Only ListExecutionEvents is called; the base class answers UNIMPLEMENTED for the rest.
    execution_service_pb2_grpc.add_ExecutionServiceServicer_to_server(FakeHistory(), api)  # type: ignore[abstract]
    port = api.add_insecure_port("127.0.0.1:0")
    await api.start()
    async for stack in start_events(redis, keys, f"127.0.0.1:{port}", history=True):
        yield stack
    await api.stop(0)
    async for key in redis.scan_iter(match=f"{keys.prefix}:*", count=1000):
        await redis.delete(key)


async def _stream(
    stack: EventsStack, execution_id: str, after: int = 0, key: str = KEY_A
) -> list[int]:
    async with grpc.aio.insecure_channel(stack.address) as channel:
        call = event_service_pb2_grpc.EventServiceStub(channel).StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(
                execution_id=execution_id, after_sequence=after
            ),
            metadata=(("authorization", f"Bearer {key}"),),
            timeout=10,
        )
        return [e.sequence async for r in call for e in r.events]


async def test_an_expired_execution_is_replayed_from_the_history(
    history_stack: EventsStack,
) -> None:
    assert await _stream(history_stack, "ex-old") == [1, 2, 3, 4, 5]
    assert await _stream(history_stack, "ex-old", after=2) == [3, 4, 5]


@pytest.mark.parametrize(("execution_id", "key"), [("ex-old", KEY_B), ("ex-none", KEY_A)])
async def test_history_refusals_are_not_found(
    history_stack: EventsStack, execution_id: str, key: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _stream(history_stack, execution_id, key=key)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_recorded_unfinished_execution_continues_live(
    history_stack: EventsStack,
) -> None:
    task = asyncio.create_task(_stream(history_stack, "ex-lost"))
    await asyncio.sleep(0.3)
    # Redis lost the first two events; the worker goes on from sequence 3.
    history_stack.writer._seqs["ex-lost"] = 2
    await history_stack.writer.write("ex-lost", [EventType.NODE_STARTED])
    await history_stack.writer.write("ex-lost", [EventType.EXECUTION_COMPLETED])
    assert await asyncio.wait_for(task, 5) == [1, 2, 3, 4]
