"""Reading event streams one event at a time, across the batched responses."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc

from nodedrop.event.v1 import event_pb2


class EventReader:
    """Wraps a StreamExecutionEvents/StreamEvents call; `read` returns one event or EOF."""

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        self.call = call
        self.responses = 0
        self._pending: deque[event_pb2.ExecutionEvent] = deque()

    async def read(self) -> Any:
        while not self._pending:
            response = await self.call.read()
            if response is grpc.aio.EOF:
                return grpc.aio.EOF
            # A response is never empty: that would be a wasted message.
            assert len(response.events) > 0
            self.responses += 1
            self._pending.extend(response.events)
        return self._pending.popleft()

    def __aiter__(self) -> AsyncIterator[event_pb2.ExecutionEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[event_pb2.ExecutionEvent]:
        while (event := await self.read()) is not grpc.aio.EOF:
            yield event

    def cancel(self) -> None:
        self.call.cancel()
