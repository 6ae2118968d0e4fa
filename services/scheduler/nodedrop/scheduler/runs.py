"""Starting a schedule's run: the API's ScheduleRunService commits it as an
ordinary execution (a UUID id in its database, then the queue), so a cron run
is shown, cancelled and retried like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc
import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.common.client import call
from nodedrop.common.errors import NodedropError, Unauthenticated, Unavailable
from nodedrop.contract import to_proto
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.scheduler.schedules import Schedule

__all__ = ["ApiRunStarter", "RunStarter"]

_TIMEOUT_S = 10.0


class RunStarter(Protocol):
    async def start(self, schedule: Schedule, tick_ms: int, idempotency_key: str) -> str:
        """The id of the execution started for ``tick_ms``; raises a common error."""
        ...


class ApiRunStarter:
    def __init__(self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
        """``metadata``: the scheduler's service credential for the API."""
        self._stub = pb_grpc.ScheduleRunServiceStub(channel)
        self._metadata = tuple(metadata)

    async def start(self, schedule: Schedule, tick_ms: int, idempotency_key: str) -> str:
        workflow = to_proto(orjson.loads(schedule.workflow_json))
        workflow.id = schedule.workflow_id
        at = Timestamp()
        at.FromMilliseconds(tick_ms)
        request = pb.StartScheduledRunRequest(
            tenant_id=schedule.tenant_id,
            schedule_id=schedule.id,
            workflow_id=schedule.workflow_id,
            workflow=workflow,
            scheduled_time=at,
            idempotency_key=idempotency_key,
        )
        try:
            reply = await call(
                self._stub.StartScheduledRun,
                request,
                timeout_s=_TIMEOUT_S,
                metadata=self._metadata,
            )
        except Unauthenticated as exc:
            raise Unavailable("the API refused the scheduler's service credential") from exc
        except NodedropError:
            raise
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"the API failed: {exc.code().name}") from exc
        execution_id: str = reply.execution_id
        return execution_id
