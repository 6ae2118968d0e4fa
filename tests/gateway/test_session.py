"""Session flow control with a client that never drains: deterministic, no kernel buffers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
from websockets.frames import CloseCode

from nodedrop.common.auth import Principal
from nodedrop.event.v1 import event_pb2, event_service_pb2
from nodedrop.gateway.session import SLOW_CONSUMER_REASON, Session


class StuckConnection:
    """A client connection whose sends never complete (the peer stopped reading)."""

    def __init__(self, incoming: list[str]) -> None:
        self._incoming = incoming
        self.sent = 0
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str]:
        for message in self._incoming:
            yield message
        await self.closed.wait()

    async def send(self, message: str) -> None:
        self.sent += 1
        await asyncio.Event().wait()

    async def close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        self.closed.set()


class FakeCall:
    def __init__(self, count: int, error: grpc.aio.AioRpcError | None = None) -> None:
        self._count = count
        self._error = error

    def __aiter__(self) -> AsyncIterator[event_service_pb2.StreamExecutionEventsResponse]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[event_service_pb2.StreamExecutionEventsResponse]:
        # Batches of three, as the events service packs what is ready.
        for first in range(1, self._count + 1, 3):
            yield event_service_pb2.StreamExecutionEventsResponse(
                events=[
                    event_pb2.ExecutionEvent(execution_id="ex", sequence=seq)
                    for seq in range(first, min(first + 3, self._count + 1))
                ]
            )
            await asyncio.sleep(0)
        if self._error is not None:
            raise self._error
        await asyncio.Event().wait()

    def cancel(self) -> None:
        pass


class FakeUpstream:
    def __init__(self, call: FakeCall) -> None:
        self.call = call

    def stream_execution(self, credential: str, execution_id: str, after: int) -> FakeCall:
        return self.call


def _session(connection: StuckConnection, upstream: FakeUpstream) -> Session:
    return Session(
        connection,  # type: ignore[arg-type]
        upstream,  # type: ignore[arg-type]
        Principal("tenant-a", frozenset({"read"}), "k"),
        "cred",
        outbox_size=16,
        max_subscriptions=4,
    )


SUBSCRIBE = orjson.dumps({"type": "subscribe", "execution_id": "ex"}).decode()


async def test_a_full_outbox_closes_with_1013() -> None:
    connection = StuckConnection([SUBSCRIBE])
    await asyncio.wait_for(_session(connection, FakeUpstream(FakeCall(100))).run(), 5)
    assert connection.close_code == CloseCode.TRY_AGAIN_LATER
    assert CloseCode.TRY_AGAIN_LATER.value == 1013
    assert connection.close_reason == SLOW_CONSUMER_REASON
    # One frame in flight plus a full outbox: the rest were never buffered.
    assert connection.sent == 1


async def test_events_service_cut_off_also_closes_with_1013() -> None:
    error: Any = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="subscriber fell behind",
    )
    connection = StuckConnection([SUBSCRIBE])
    await asyncio.wait_for(_session(connection, FakeUpstream(FakeCall(3, error))).run(), 5)
    assert connection.close_code == 1013
