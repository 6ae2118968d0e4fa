"""Events of executions that Redis no longer holds, read from the API's PostgreSQL history."""

from __future__ import annotations

from typing import Protocol

import grpc

from nodedrop.common.auth import bearer_metadata
from nodedrop.common.errors import NotFound, OutOfRange, Unavailable
from nodedrop.event.v1 import event_pb2
from nodedrop.execution.v1 import execution_service_pb2, execution_service_pb2_grpc


class History(Protocol):
    async def read(
        self, credential: str, execution_id: str, after_seq: int, limit: int
    ) -> tuple[list[event_pb2.ExecutionEvent], bool]:
        """A page of recorded events after `after_seq` and whether more follow.

        Raises NotFound for an unknown execution or one of another tenant.
        """
        ...


class ApiHistory:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float = 5.0) -> None:
        self._stub = execution_service_pb2_grpc.ExecutionServiceStub(channel)
        self._timeout_s = timeout_s

    async def read(
        self, credential: str, execution_id: str, after_seq: int, limit: int
    ) -> tuple[list[event_pb2.ExecutionEvent], bool]:
        try:
            reply = await self._stub.ListExecutionEvents(
                execution_service_pb2.ListExecutionEventsRequest(
                    execution_id=execution_id, after_sequence=after_seq, page_size=limit
                ),
                metadata=bearer_metadata(credential),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                raise NotFound(f"execution {execution_id!r} not found") from None
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise OutOfRange(
                    f"execution {execution_id!r} is past Redis retention and the API "
                    "does not serve its recorded history"
                ) from None
            raise Unavailable("the execution history service is unavailable") from exc
        return list(reply.events), reply.more
