"""ScheduleRunService (internal, for the scheduler): a schedule's tick becomes
an ordinary execution, its row committed here before it is queued, as
ExecuteWorkflow does for a client."""

from __future__ import annotations

import uuid
from datetime import UTC

import orjson

from nodedrop.api.checks import Violations, reject_nul
from nodedrop.api.executions import ExecutionManager, Submission
from nodedrop.api.inline_definitions import InlineDefinitions
from nodedrop.api.queueing import status_to_proto
from nodedrop.api.schedule_trigger import trigger_data
from nodedrop.contract import Definition
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc

__all__ = ["ScheduleRunServicer"]

_MAX_KEY = 200


class ScheduleRunServicer(pb_grpc.ScheduleRunServiceServicer):
    def __init__(self, manager: ExecutionManager, inline: InlineDefinitions) -> None:
        self._manager = manager
        self._inline = inline

    async def StartScheduledRun(
        self, request: pb.StartScheduledRunRequest, context: object
    ) -> pb.StartScheduledRunResponse:
        reject_nul(request)
        v = Violations()
        if not request.tenant_id:
            v.add("tenant_id", "required")
        if not request.schedule_id:
            v.add("schedule_id", "required")
        if not request.HasField("scheduled_time"):
            v.add("scheduled_time", "required")
        if len(request.idempotency_key) > _MAX_KEY:
            v.add("idempotency_key", f"at most {_MAX_KEY} characters")
        definition: Definition | None = None
        if not request.HasField("workflow"):
            v.add("workflow", "required")
        else:
            definition, problems = self._inline.check(request.workflow, "workflow")
            for p in problems:
                v.add(p.path, f"{p.code}: {p.message}")
        v.raise_if_any()
        assert definition is not None
        submitted = await self._manager.submit(
            Submission(
                tenant_id=request.tenant_id,
                definition=definition,
                # A schedule of a stored workflow names it; an inline one's id is the client's text.
                workflow_id=request.workflow_id if _is_uuid(request.workflow_id) else None,
                workflow_version=0,
                trigger_data_json=orjson.dumps(
                    trigger_data(request.schedule_id, request.scheduled_time.ToDatetime(tzinfo=UTC))
                ).decode(),
                mode="queue",
                trigger_kind="schedule",
                priority=0,
                delay_s=0.0,
                idempotency_key=request.idempotency_key or None,
            )
        )
        return pb.StartScheduledRunResponse(
            execution_id=submitted.execution_id,
            status=status_to_proto(submitted.status),
            deduplicated=submitted.deduplicated,
        )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
