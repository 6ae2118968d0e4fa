"""The queue as the API sees it: a port, and its SchedulerService adapter.

The API enqueues, cancels and asks about executions through this port only;
`SchedulerQueue` speaks gRPC to the scheduler with a deadline on every call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import grpc
from google.protobuf import timestamp_pb2

from nodedrop.api.model import Status
from nodedrop.common.client import call
from nodedrop.common.errors import FailedPrecondition, Unavailable
from nodedrop.contract import Definition, to_proto
from nodedrop.execution.v1 import execution_pb2
from nodedrop.queue.v1 import scheduler_service_pb2 as sched_pb2
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as sched_grpc
from nodedrop.workflow.v1 import workflow_pb2

__all__ = [
    "EnqueueRequest",
    "KnownState",
    "QueueFigures",
    "QueuePort",
    "SchedulerQueue",
    "status_from_proto",
    "status_to_proto",
]

_TO_PROTO = {
    Status.QUEUED: execution_pb2.EXECUTION_STATUS_QUEUED,
    Status.RUNNING: execution_pb2.EXECUTION_STATUS_RUNNING,
    Status.RETRY_SCHEDULED: execution_pb2.EXECUTION_STATUS_RETRY_SCHEDULED,
    Status.COMPLETED: execution_pb2.EXECUTION_STATUS_COMPLETED,
    Status.FAILED: execution_pb2.EXECUTION_STATUS_FAILED,
    Status.CANCELLED: execution_pb2.EXECUTION_STATUS_CANCELLED,
    Status.TIMED_OUT: execution_pb2.EXECUTION_STATUS_TIMED_OUT,
}
_FROM_PROTO: dict[int, Status] = {int(v): k for k, v in _TO_PROTO.items()}
_REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)


def status_to_proto(status: Status) -> execution_pb2.ExecutionStatus.ValueType:
    return _TO_PROTO[status]


def status_from_proto(value: int) -> Status | None:
    return _FROM_PROTO.get(int(value))


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    execution_id: str
    tenant_id: str
    definition: Definition
    # The stored workflow's id and version; "" and 0 for an inline definition.
    workflow_id: str
    workflow_version: int
    trigger_data_json: str
    priority: int
    run_at: datetime | None
    traceparent: str = ""
    completed_outputs: Mapping[str, str] = field(default_factory=dict)
    # The attempt to start at (orphan recovery: the recorded one).
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class KnownState:
    execution_id: str
    known: bool
    status: Status | None
    attempt: int


@dataclass(frozen=True, slots=True)
class QueueFigures:
    waiting: int
    active: int
    delayed: int
    failed: int


class QueuePort(Protocol):
    async def enqueue(self, request: EnqueueRequest) -> Status: ...

    async def cancel(self, execution_id: str, tenant_id: str, reason: str) -> Status: ...

    async def states(self, execution_ids: Sequence[str]) -> list[KnownState]: ...

    async def figures(self) -> QueueFigures: ...


_SNAPSHOTS: OrderedDict[tuple[str, str, int], workflow_pb2.Workflow] = OrderedDict()
_SNAPSHOT_CACHE = 256


def _snapshot(request: EnqueueRequest) -> workflow_pb2.Workflow:
    """The definition as the scheduler's message; a burst of submissions of one
    workflow builds it once (never mutated: the request message copies it)."""
    key = (request.definition.json, request.workflow_id, request.workflow_version)
    wf = _SNAPSHOTS.get(key)
    if wf is None:
        wf = to_proto(request.definition.document)
        wf.id = request.workflow_id
        wf.version = request.workflow_version
        _SNAPSHOTS[key] = wf
        if len(_SNAPSHOTS) > _SNAPSHOT_CACHE:
            _SNAPSHOTS.popitem(last=False)
    return wf


class SchedulerQueue:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout_s: float = 5.0,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        """``metadata``: the API's service credential; the scheduler takes no other."""
        self._stub = sched_grpc.SchedulerServiceStub(channel)
        self._timeout_s = timeout_s
        self._metadata = tuple(metadata)

    async def enqueue(self, request: EnqueueRequest) -> Status:
        msg = sched_pb2.EnqueueExecutionRequest(
            execution_id=request.execution_id,
            tenant_id=request.tenant_id,
            workflow=_snapshot(request),
            trigger_data_json=request.trigger_data_json,
            priority=request.priority,
            traceparent=request.traceparent,
            completed_outputs_json=dict(request.completed_outputs),
            attempt=request.attempt,
        )
        if request.run_at is not None:
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(request.run_at)
            msg.run_time.CopyFrom(ts)
        response = await self._call(self._stub.EnqueueExecution, msg)
        return status_from_proto(response.status) or Status.QUEUED

    async def cancel(self, execution_id: str, tenant_id: str, reason: str) -> Status:
        response = await self._call(
            self._stub.CancelExecution,
            sched_pb2.CancelExecutionRequest(
                execution_id=execution_id, tenant_id=tenant_id, reason=reason
            ),
        )
        return status_from_proto(response.status) or Status.CANCELLED

    async def states(self, execution_ids: Sequence[str]) -> list[KnownState]:
        response = await self._call(
            self._stub.GetExecutionStates,
            sched_pb2.GetExecutionStatesRequest(execution_ids=list(execution_ids)),
        )
        return [
            KnownState(s.execution_id, s.known, status_from_proto(s.status), s.attempt)
            for s in response.states
        ]

    async def figures(self) -> QueueFigures:
        r = await self._call(self._stub.GetQueueStats, sched_pb2.GetQueueStatsRequest())
        return QueueFigures(r.waiting, r.active, r.delayed, r.failed)

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await call(method, request, timeout_s=self._timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                # The scheduler answered and said no: retrying will not help.
                raise FailedPrecondition(
                    f"the scheduler refused: {exc.code().name}: {exc.details()}"
                ) from exc
            raise Unavailable(f"the scheduler failed: {exc.code().name}") from exc
