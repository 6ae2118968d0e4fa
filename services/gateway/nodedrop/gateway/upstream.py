"""The gateway's calls to the events service and the API, made with the caller's credential."""

from __future__ import annotations

import time
from typing import Any

import grpc
import orjson

from nodedrop.auth.v1 import auth_service_pb2, auth_service_pb2_grpc
from nodedrop.common.auth import bearer_metadata
from nodedrop.event.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from nodedrop.execution.v1 import (
    execution_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
)
from nodedrop.gateway.example import TRIGGER_DATA, example_workflow

# The event types that change an execution's status: what a list of
# executions needs to stay current (docs/events.md, StreamEvents).
EXECUTION_STATUS_EVENTS = (
    event_pb2.EVENT_TYPE_EXECUTION_QUEUED,
    event_pb2.EVENT_TYPE_EXECUTION_STARTED,
    event_pb2.EVENT_TYPE_EXECUTION_RETRYING,
    event_pb2.EVENT_TYPE_EXECUTION_COMPLETED,
    event_pb2.EVENT_TYPE_EXECUTION_FAILED,
    event_pb2.EVENT_TYPE_EXECUTION_CANCELLED,
    event_pb2.EVENT_TYPE_EXECUTION_TIMED_OUT,
)


class UpstreamError(Exception):
    """A failed upstream call, carrying the gRPC status name for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError) -> UpstreamError:
        code = exc.code()
        if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
            return cls("UNAVAILABLE", "upstream service failed")
        return cls(code.name, exc.details() or code.name.lower())


def _status_name(value: int) -> str:
    try:
        return execution_pb2.ExecutionStatus.Name(value).removeprefix("EXECUTION_STATUS_")  # type: ignore[arg-type]
    except ValueError:
        return "UNSPECIFIED"


class Upstream:
    def __init__(
        self, events: grpc.aio.Channel, api: grpc.aio.Channel, *, timeout_s: float = 10.0
    ) -> None:
        self._events = event_service_pb2_grpc.EventServiceStub(events)
        self._executions = execution_service_pb2_grpc.ExecutionServiceStub(api)
        self._auth = auth_service_pb2_grpc.AuthServiceStub(api)
        self._timeout_s = timeout_s

    def stream_execution(
        self, credential: str, execution_id: str, after_sequence: int
    ) -> grpc.aio.UnaryStreamCall:
        # No deadline: a subscription lasts as long as the execution; keepalive
        # pings on the channel detect a dead events service instead.
        return self._events.StreamExecutionEvents(
            event_service_pb2.StreamExecutionEventsRequest(
                execution_id=execution_id, after_sequence=after_sequence
            ),
            metadata=bearer_metadata(credential),
        )

    def stream_status_events(self, credential: str) -> grpc.aio.UnaryStreamCall:
        """The tenant's live feed of execution status changes (no replay, no end)."""
        return self._events.StreamEvents(
            event_service_pb2.StreamEventsRequest(event_types=EXECUTION_STATUS_EVENTS),
            metadata=bearer_metadata(credential),
        )

    async def list_executions(self, credential: str, limit: int) -> list[dict[str, Any]]:
        try:
            reply = await self._executions.ListExecutions(
                execution_service_pb2.ListExecutionsRequest(page_size=limit),
                metadata=bearer_metadata(credential),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise UpstreamError.from_rpc(exc) from None
        return [
            {
                "id": e.id,
                "workflow_id": e.workflow_id,
                "status": _status_name(e.status),
                "create_time": e.create_time.ToJsonString() if e.HasField("create_time") else None,
                "end_time": e.end_time.ToJsonString() if e.HasField("end_time") else None,
            }
            for e in reply.executions
        ]

    async def run_example(self, credential: str) -> dict[str, Any]:
        try:
            reply = await self._executions.ExecuteWorkflow(
                execution_service_pb2.ExecuteWorkflowRequest(
                    workflow=example_workflow(),
                    trigger_data_json=orjson.dumps(TRIGGER_DATA).decode(),
                    trigger_kind=execution_pb2.TRIGGER_KIND_MANUAL,
                ),
                metadata=bearer_metadata(credential),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise UpstreamError.from_rpc(exc) from None
        return {"execution_id": reply.execution_id, "status": _status_name(reply.status)}

    async def cancel(self, credential: str, execution_id: str) -> dict[str, Any]:
        try:
            reply = await self._executions.CancelExecution(
                execution_service_pb2.CancelExecutionRequest(
                    execution_id=execution_id, reason="cancelled from the live view"
                ),
                metadata=bearer_metadata(credential),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise UpstreamError.from_rpc(exc) from None
        return {"execution_id": reply.execution_id, "status": _status_name(reply.status)}

    async def issue_ticket(self, api_key: str) -> dict[str, Any]:
        try:
            reply = await self._auth.IssueTicket(
                auth_service_pb2.IssueTicketRequest(),
                metadata=bearer_metadata(api_key),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise UpstreamError.from_rpc(exc) from None
        expire = reply.expire_time.ToJsonString() if reply.HasField("expire_time") else None
        # Relative too: a browser's clock may be off, and it must renew in time.
        expires_in = max(0.0, reply.expire_time.seconds - time.time()) if expire else None
        return {"ticket": reply.ticket, "expire_time": expire, "expires_in_s": expires_in}
