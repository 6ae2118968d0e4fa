"""SchedulerService: translates protobuf, calls the store; errors become precise statuses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from uuid import uuid4

import grpc

from nodedrop.common.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from nodedrop.common.tracing import current_traceparent, enqueue_span
from nodedrop.engine import NodeRegistry
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.scheduler.convert import (
    enqueue_to_spec,
    failed_to_proto,
    now_ms,
    schedule_fields,
    schedule_to_proto,
    stats_to_proto,
    status_to_proto,
    workflow_snapshot,
)
from nodedrop.scheduler.errors import store_errors
from nodedrop.scheduler.firing import Firing
from nodedrop.scheduler.schedules import Schedule, ScheduleStore, new_schedule_id
from nodedrop.scheduler.ticks import ScheduleError, check_timing, next_tick_ms
from nodedrop.store import MAX_CANCEL_REASON, ExecutionStatus, FailedJob, JobQueue, StateStore
from nodedrop.store.validation import ID_PATTERN, is_valid_id

_MAX_IDS = 1000
_MAX_PAGE = 1000
# Store pages of the failed queue one tenant-filtered page may read.
_SCAN_PAGES = 10


class SchedulerServicer(pb_grpc.SchedulerServiceServicer):
    def __init__(
        self,
        queue: JobQueue,
        state: StateStore,
        schedules: ScheduleStore,
        registry: NodeRegistry,
        firing: Firing,
    ) -> None:
        self._firing = firing
        self._q = queue
        self._state = state
        self._schedules = schedules
        self._registry = registry

    async def EnqueueExecution(
        self, request: pb.EnqueueExecutionRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnqueueExecutionResponse:
        spec = enqueue_to_spec(request, self._registry)
        with enqueue_span(spec.execution_id, parent_traceparent=request.traceparent):
            # The job carries the enqueue span: every attempt of the execution
            # (retries, moves, recovery) runs under it, in the caller's trace.
            spec = replace(spec, traceparent=current_traceparent() or spec.traceparent)
            with store_errors():
                r = await self._q.enqueue(spec, now_ms())
        return pb.EnqueueExecutionResponse(
            execution_id=r.execution_id, status=status_to_proto(r.status), created=r.created
        )

    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelExecutionResponse:
        if not request.execution_id:
            raise InvalidArgument.field("execution_id", "is required")
        _check_ids("execution_id", [request.execution_id])
        if len(request.reason) > MAX_CANCEL_REASON:
            raise InvalidArgument.field("reason", f"at most {MAX_CANCEL_REASON} characters")
        with store_errors():
            status = await self._state.cancel(
                request.execution_id, request.tenant_id, now_ms(), request.reason
            )
        return pb.CancelExecutionResponse(status=status_to_proto(status))

    async def GetExecutionStates(
        self, request: pb.GetExecutionStatesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExecutionStatesResponse:
        ids = list(request.execution_ids)
        if len(ids) > _MAX_IDS:
            raise InvalidArgument.field("execution_ids", f"at most {_MAX_IDS} per call")
        _check_ids("execution_ids", ids)
        with store_errors():
            states = await self._state.states(ids)
        out = []
        for x, s in zip(ids, states, strict=True):
            # Another tenant's execution looks unknown: its existence is not revealed.
            if s is None or (request.tenant_id and s.tenant_id != request.tenant_id):
                out.append(pb.ExecutionState(execution_id=x, known=False))
            else:
                out.append(
                    pb.ExecutionState(
                        execution_id=x,
                        known=True,
                        status=status_to_proto(s.status),
                        attempt=s.attempt,
                    )
                )
        return pb.GetExecutionStatesResponse(states=out)

    async def GetQueueStats(
        self, request: pb.GetQueueStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetQueueStatsResponse:
        with store_errors():
            return stats_to_proto(await self._q.stats(now_ms()))

    async def ListFailedJobs(
        self, request: pb.ListFailedJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFailedJobsResponse:
        size = request.page_size or 100
        if size < 0 or size > _MAX_PAGE:
            raise InvalidArgument.field("page_size", f"must be within 0..{_MAX_PAGE}")
        jobs, token = await self._failed_page(size, request.page_token, request.tenant_id)
        return pb.ListFailedJobsResponse(
            jobs=[failed_to_proto(j) for j in jobs], next_page_token=token
        )

    async def RetryFailedJobs(
        self, request: pb.RetryFailedJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryFailedJobsResponse:
        ids = _ids_or_all(request.execution_ids, request.all)
        if request.tenant_id:
            ids = await self._tenant_failed(ids, request.all, request.tenant_id)
            with store_errors():
                n = await self._q.retry_failed(ids, False, now_ms()) if ids else 0
        else:
            with store_errors():
                n = await self._q.retry_failed(ids, request.all, now_ms())
        return pb.RetryFailedJobsResponse(retried=n)

    async def PurgeFailedJobs(
        self, request: pb.PurgeFailedJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PurgeFailedJobsResponse:
        ids = _ids_or_all(request.execution_ids, request.all)
        if request.tenant_id:
            ids = await self._tenant_failed(ids, request.all, request.tenant_id)
            with store_errors():
                n = await self._q.purge_failed(ids, False) if ids else 0
        else:
            with store_errors():
                n = await self._q.purge_failed(ids, request.all)
        return pb.PurgeFailedJobsResponse(purged=n)

    async def _failed_page(
        self, size: int, token: str, tenant_id: str
    ) -> tuple[list[FailedJob], str]:
        """A page of the failed queue, of one tenant when ``tenant_id`` is set.

        The store pages the whole queue; a tenant's page is filtered from up
        to ``_SCAN_PAGES`` of those, so one call stays bounded however few of
        the jobs are the tenant's (the token continues the scan).
        """
        if not tenant_id:
            with store_errors():
                return await self._q.list_failed(size, token)
        found: list[FailedJob] = []
        for _ in range(_SCAN_PAGES):
            with store_errors():
                jobs, token = await self._q.list_failed(size, token)
            found.extend(j for j in jobs if j.tenant_id == tenant_id)
            if not token or len(found) >= size:
                break
        # The store's pages are kept whole (its token continues after the
        # last job it read), so an answer can hold up to page_size - 1 more.
        return found, token

    async def _tenant_failed(self, ids: list[str], all_: bool, tenant_id: str) -> list[str]:
        """The ids among ``ids`` (or in the whole failed queue) that are the tenant's."""
        if all_:
            owned: list[str] = []
            token = ""
            while True:
                jobs, token = await self._failed_page(_MAX_PAGE, token, tenant_id)
                owned.extend(j.execution_id for j in jobs)
                if not token:
                    return owned
        with store_errors():
            states = await self._state.states(ids)
        # An execution whose state expired has no known tenant: only an
        # unfiltered (operator) call can act on it.
        return [
            x
            for x, st in zip(ids, states, strict=True)
            if st is not None and st.tenant_id == tenant_id
        ]

    async def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateScheduleResponse:
        s = request.schedule
        if not s.tenant_id:
            raise InvalidArgument.field("schedule.tenant_id", "is required")
        if not s.HasField("workflow"):
            raise InvalidArgument.field("schedule.workflow", "is required")
        fields = schedule_fields(s)
        try:
            check_timing(fields.timing)
        except ScheduleError as e:
            raise InvalidArgument.field(f"schedule.{e.field}", e.reason) from None
        snapshot = workflow_snapshot(s.workflow, self._registry, "schedule.workflow").json
        schedule = Schedule(
            id=new_schedule_id(),
            tenant_id=s.tenant_id,
            workflow_id=s.workflow_id or s.workflow.id,
            workflow_json=snapshot,
            cron=s.cron,
            timezone=s.timezone,
            paused=s.paused,
            next_fire_ms=next_tick_ms(s.cron, s.timezone, now_ms()),
            overlap=fields.overlap,
            catch_up=fields.timing.catch_up,
            catch_up_window_ms=fields.timing.catch_up_window_ms,
            jitter_ms=fields.timing.jitter_ms,
        )
        with store_errors():
            await self._schedules.put(schedule)
        return pb.CreateScheduleResponse(schedule=schedule_to_proto(schedule, None))

    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSchedulesResponse:
        with store_errors():
            items = sorted(
                (
                    s
                    for s in await self._schedules.all()
                    if not request.tenant_id or s.tenant_id == request.tenant_id
                ),
                key=lambda s: s.id,
            )
            statuses = await self._last_statuses(items)
        return pb.ListSchedulesResponse(
            schedules=[schedule_to_proto(s, st) for s, st in zip(items, statuses, strict=True)]
        )

    async def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetScheduleResponse:
        s = await self._owned(request.schedule_id, request.tenant_id)
        return pb.GetScheduleResponse(schedule=await self._shown(s))

    async def TriggerSchedule(
        self, request: pb.TriggerScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.TriggerScheduleResponse:
        s = await self._owned(request.schedule_id, request.tenant_id)
        # A run asked for by hand: its own key, never a tick's.
        with store_errors():
            recorded = await self._firing.start(s, now_ms(), f"schedule:{s.id}:now:{uuid4()}")
        if recorded is None or recorded.last_run is None:
            raise NotFound(f"schedule {s.id} not found")
        return pb.TriggerScheduleResponse(
            schedule=await self._shown(recorded), execution_id=recorded.last_run.execution_id
        )

    async def PauseSchedule(
        self, request: pb.PauseScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseScheduleResponse:
        s = await self._changed(request.schedule_id, request.tenant_id, _pause)
        return pb.PauseScheduleResponse(schedule=await self._shown(s))

    async def ResumeSchedule(
        self, request: pb.ResumeScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeScheduleResponse:
        s = await self._changed(request.schedule_id, request.tenant_id, _resume)
        return pb.ResumeScheduleResponse(schedule=await self._shown(s))

    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteScheduleResponse:
        s = await self._owned(request.schedule_id, request.tenant_id)
        with store_errors():
            await self._schedules.delete(s.id)
        return pb.DeleteScheduleResponse()

    async def _changed(
        self, schedule_id: str, tenant_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule:
        s = await self._owned(schedule_id, tenant_id)
        with store_errors():
            changed = await self._schedules.update(s.id, change)
        if changed is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return changed

    async def _shown(self, s: Schedule) -> pb.Schedule:
        with store_errors():
            (status,) = await self._last_statuses([s])
        return schedule_to_proto(s, status)

    async def _last_statuses(self, items: list[Schedule]) -> list[ExecutionStatus | None]:
        ids = [s.last_run.execution_id for s in items if s.last_run is not None]
        states = iter(await self._state.states(ids) if ids else [])
        out: list[ExecutionStatus | None] = []
        for s in items:
            state = next(states) if s.last_run is not None else None
            out.append(state.status if state is not None else None)
        return out

    async def _owned(self, schedule_id: str, tenant_id: str) -> Schedule:
        if not schedule_id:
            raise InvalidArgument.field("schedule_id", "is required")
        with store_errors():
            s = await self._schedules.get(schedule_id)
        if s is None:
            raise NotFound(f"schedule {schedule_id} not found")
        if tenant_id and s.tenant_id != tenant_id:
            raise PermissionDenied(f"schedule {schedule_id} belongs to another tenant")
        return s


def _pause(s: Schedule) -> Schedule:
    return replace(s, paused=True)


def _resume(s: Schedule) -> Schedule:
    # Ticks missed while paused are not run late, whatever the catch-up policy.
    return replace(s, paused=False, next_fire_ms=next_tick_ms(s.cron, s.timezone, now_ms()))


def _ids_or_all(ids: Iterable[str], all_: bool) -> list[str]:
    listed = list(ids)
    if all_ and listed:
        raise InvalidArgument.field("execution_ids", "give ids or all, not both")
    if not all_ and not listed:
        raise InvalidArgument.field("execution_ids", "give at least one id, or all")
    if len(listed) > _MAX_IDS:
        raise InvalidArgument.field("execution_ids", f"at most {_MAX_IDS} per call")
    _check_ids("execution_ids", listed)
    return listed


def _check_ids(field: str, ids: list[str]) -> None:
    """The API's and the events service's rule for an execution id, here too."""
    repeated = field.endswith("s")
    bad = [
        FieldViolation(f"{field}[{i}]" if repeated else field, f"must match {ID_PATTERN}")
        for i, x in enumerate(ids)
        if not is_valid_id(x)
    ]
    if bad:
        raise InvalidArgument(f"{bad[0].field}: {bad[0].description}", bad)


__all__ = ["SchedulerServicer"]
