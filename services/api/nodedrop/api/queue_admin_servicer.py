"""QueueAdminService: the queue's administration for API keys.

The scheduler takes only the service credential and trusts the tenant a
request names; this servicer is where a tenant's key becomes that name. An
admin key acts on its own tenant (the tenant filter is always set); an
operator key on every tenant (no filter). Nothing in a request names a
tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import orjson

from nodedrop.admin.v1 import queue_admin_service_pb2 as pb
from nodedrop.admin.v1 import queue_admin_service_pb2_grpc as pb_grpc
from nodedrop.api.model import Status
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.subworkflows import SubworkflowPins
from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.common.auth import (
    SCOPE_ADMIN,
    SCOPE_OPERATOR,
    Principal,
    current_credential,
    current_principal,
)
from nodedrop.common.client import call
from nodedrop.common.errors import (
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from nodedrop.contract import Definition, document_of, settings_of, to_proto
from nodedrop.queue.v1 import scheduler_service_pb2 as sched_pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as sched_grpc
from nodedrop.workflow.v1 import workflow_pb2

__all__ = ["QueueAdminServicer"]

_TIMEOUT_S = 10.0
_TICKET_PREFIX = "ndt_"
_UUID_CHARS = 36


def _as_request_fields(exc: InvalidArgument) -> InvalidArgument:
    """The scheduler's violations name its message's fields (``schedule.cron``);
    the caller's request has them at the top (``cron``)."""
    prefix = "schedule."
    violations = [
        FieldViolation(v.field.removeprefix(prefix), v.description) for v in exc.violations
    ]
    message = exc.message.removeprefix(prefix) if exc.message.startswith(prefix) else exc.message
    return InvalidArgument(message, violations)


def _caller() -> tuple[Principal, str]:
    """The caller and the tenant filter its key allows ("" for every tenant)."""
    principal = current_principal()
    if (current_credential() or "").startswith(_TICKET_PREFIX):
        # Tickets travel in URLs: they read and subscribe, never administer.
        raise PermissionDenied("queue administration takes an API key, not a ticket")
    if principal.has_scope(SCOPE_OPERATOR):
        return principal, ""
    if principal.has_scope(SCOPE_ADMIN):
        return principal, principal.tenant_id
    raise PermissionDenied("queue administration needs the 'admin' or 'operator' scope")


class QueueAdminServicer(pb_grpc.QueueAdminServiceServicer):
    def __init__(
        self,
        scheduler: grpc.aio.Channel | None,
        metadata: Sequence[tuple[str, str]],
        repository: ExecutionRepository,
        workflows: WorkflowCache,
        pins: SubworkflowPins | None = None,
    ) -> None:
        """``metadata``: the API's service credential for the scheduler; ``pins``
        pin a schedule's sub-workflows by id when it is created."""
        self._stub = None if scheduler is None else sched_grpc.SchedulerServiceStub(scheduler)
        self._metadata = tuple(metadata)
        self._repo = repository
        self._workflows = workflows
        self._pins = pins

    async def _call(self, method_name: str, request: Any) -> Any:
        """The scheduler's answer; its refusals of the caller's request (a bad
        cron, an unknown schedule) come back as they are, field violations
        included, but its refusing the API itself is an outage to the caller."""
        if self._stub is None:
            raise Unavailable("queue administration needs the scheduler, which is not configured")
        try:
            return await call(
                getattr(self._stub, method_name),
                request,
                timeout_s=_TIMEOUT_S,
                metadata=self._metadata,
            )
        except Unauthenticated as exc:
            raise Unavailable("the scheduler refused the API's service credential") from exc
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"the scheduler failed: {exc.code().name}") from exc

    async def GetQueueStats(
        self, request: pb.GetQueueStatsRequest, context: object
    ) -> pb.GetQueueStatsResponse:
        _, tenant = _caller()
        if not tenant:
            stats = await self._call("GetQueueStats", sched_pb.GetQueueStatsRequest())
            return pb.GetQueueStatsResponse(stats=stats)
        counts = await self._repo.count_unfinished(tenant)
        failed = 0
        token = ""
        while True:
            page = await self._call(
                "ListFailedJobs",
                sched_pb.ListFailedJobsRequest(page_size=1000, page_token=token, tenant_id=tenant),
            )
            failed += len(page.jobs)
            token = page.next_page_token
            if not token:
                break
        return pb.GetQueueStatsResponse(
            tenant_id=tenant,
            stats=sched_pb.GetQueueStatsResponse(
                waiting=counts.get(Status.QUEUED, 0),
                active=counts.get(Status.RUNNING, 0),
                delayed=counts.get(Status.RETRY_SCHEDULED, 0),
                failed=failed,
            ),
        )

    async def ListFailedJobs(
        self, request: pb.ListFailedJobsRequest, context: object
    ) -> pb.ListFailedJobsResponse:
        _, tenant = _caller()
        r = await self._call(
            "ListFailedJobs",
            sched_pb.ListFailedJobsRequest(
                page_size=request.page_size, page_token=request.page_token, tenant_id=tenant
            ),
        )
        return pb.ListFailedJobsResponse(jobs=r.jobs, next_page_token=r.next_page_token)

    async def RetryFailedJobs(
        self, request: pb.RetryFailedJobsRequest, context: object
    ) -> pb.RetryFailedJobsResponse:
        _, tenant = _caller()
        r = await self._call(
            "RetryFailedJobs",
            sched_pb.RetryFailedJobsRequest(
                execution_ids=request.execution_ids, all=request.all, tenant_id=tenant
            ),
        )
        return pb.RetryFailedJobsResponse(retried=r.retried)

    async def PurgeFailedJobs(
        self, request: pb.PurgeFailedJobsRequest, context: object
    ) -> pb.PurgeFailedJobsResponse:
        _, tenant = _caller()
        r = await self._call(
            "PurgeFailedJobs",
            sched_pb.PurgeFailedJobsRequest(
                execution_ids=request.execution_ids, all=request.all, tenant_id=tenant
            ),
        )
        return pb.PurgeFailedJobsResponse(purged=r.purged)

    async def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: object
    ) -> pb.CreateScheduleResponse:
        principal, _ = _caller()
        # Always the key's own tenant, operator or not: a schedule runs as
        # its tenant, and no request may choose one.
        schedule = sched_pb.Schedule(
            tenant_id=principal.tenant_id,
            cron=request.cron,
            timezone=request.timezone,
            paused=request.paused,
            overlap=request.overlap,
            catch_up=request.catch_up,
            catch_up_window=request.catch_up_window,
            jitter=request.jitter,
        )
        source = request.WhichOneof("source")
        if source == "workflow_id":
            workflow_id = request.workflow_id
            # Not a stored id's shape: unknown, without a database read.
            cached = (
                await self._workflows.get(principal.tenant_id, workflow_id, None)
                if len(workflow_id) == _UUID_CHARS
                else None
            )
            if cached is None:
                raise NotFound(f"workflow {workflow_id!r} not found")
            definition = cached.definition
            if self._pins is not None:
                definition = await self._pins.pin(principal.tenant_id, definition, "workflow_id")
            workflow = to_proto(definition.document)
            workflow.id = cached.record.id
            workflow.version = cached.record.version
            schedule.workflow.CopyFrom(workflow)
            schedule.workflow_id = cached.record.id
        elif source == "workflow":
            schedule.workflow.CopyFrom(await self._pinned(principal.tenant_id, request.workflow))
        try:
            r = await self._call(
                "CreateSchedule", sched_pb.CreateScheduleRequest(schedule=schedule)
            )
        except InvalidArgument as exc:
            raise _as_request_fields(exc) from None
        return pb.CreateScheduleResponse(schedule=r.schedule)

    async def _pinned(self, tenant_id: str, wf: workflow_pb2.Workflow) -> workflow_pb2.Workflow:
        """The inline workflow with its sub-workflows by id pinned, as every cron run
        runs them; one the edge checks refuse goes on for the scheduler to report."""
        if self._pins is None or not any(n.type == "execute_workflow" for n in wf.nodes):
            return wf
        document, undecoded = document_of(wf)
        if undecoded:
            return wf
        definition = Definition(document, orjson.dumps(document).decode(), settings_of(document))
        pinned = await self._pins.pin(tenant_id, definition, "workflow")
        return wf if pinned is definition else to_proto(pinned.document)

    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: object
    ) -> pb.ListSchedulesResponse:
        _, tenant = _caller()
        r = await self._call("ListSchedules", sched_pb.ListSchedulesRequest(tenant_id=tenant))
        return pb.ListSchedulesResponse(schedules=r.schedules)

    async def PauseSchedule(
        self, request: pb.PauseScheduleRequest, context: object
    ) -> pb.PauseScheduleResponse:
        r = await self._on_schedule("PauseSchedule", sched_pb.PauseScheduleRequest, request)
        return pb.PauseScheduleResponse(schedule=r.schedule)

    async def ResumeSchedule(
        self, request: pb.ResumeScheduleRequest, context: object
    ) -> pb.ResumeScheduleResponse:
        r = await self._on_schedule("ResumeSchedule", sched_pb.ResumeScheduleRequest, request)
        return pb.ResumeScheduleResponse(schedule=r.schedule)

    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: object
    ) -> pb.DeleteScheduleResponse:
        await self._on_schedule("DeleteSchedule", sched_pb.DeleteScheduleRequest, request)
        return pb.DeleteScheduleResponse()

    async def GetSchedule(
        self, request: pb.GetScheduleRequest, context: object
    ) -> pb.GetScheduleResponse:
        r = await self._on_schedule("GetSchedule", sched_pb.GetScheduleRequest, request)
        return pb.GetScheduleResponse(schedule=r.schedule)

    async def TriggerSchedule(
        self, request: pb.TriggerScheduleRequest, context: object
    ) -> pb.TriggerScheduleResponse:
        r = await self._on_schedule("TriggerSchedule", sched_pb.TriggerScheduleRequest, request)
        return pb.TriggerScheduleResponse(schedule=r.schedule, execution_id=r.execution_id)

    async def _on_schedule(self, method: str, message: Any, request: Any) -> Any:
        _, tenant = _caller()
        try:
            return await self._call(
                method, message(schedule_id=request.schedule_id, tenant_id=tenant)
            )
        except PermissionDenied:
            # Another tenant's schedule is not revealed to exist.
            raise NotFound(f"schedule {request.schedule_id!r} not found") from None
