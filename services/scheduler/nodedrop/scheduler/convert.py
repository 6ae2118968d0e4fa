"""Protobuf <-> domain values of the scheduler, at the edge only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.common.errors import FieldViolation, InvalidArgument
from nodedrop.contract import Definition, check, to_proto
from nodedrop.engine import NodeRegistry
from nodedrop.execution.v1 import execution_pb2
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.scheduler.schedules import Schedule
from nodedrop.scheduler.ticks import CatchUp, Overlap, Timing
from nodedrop.store import ExecutionStatus, FailedJob, JobSpec, QueueStats
from nodedrop.workflow.v1 import workflow_pb2

_STATUS = {
    ExecutionStatus.QUEUED: execution_pb2.EXECUTION_STATUS_QUEUED,
    ExecutionStatus.RUNNING: execution_pb2.EXECUTION_STATUS_RUNNING,
    ExecutionStatus.RETRY_SCHEDULED: execution_pb2.EXECUTION_STATUS_RETRY_SCHEDULED,
    ExecutionStatus.COMPLETED: execution_pb2.EXECUTION_STATUS_COMPLETED,
    ExecutionStatus.FAILED: execution_pb2.EXECUTION_STATUS_FAILED,
    ExecutionStatus.CANCELLED: execution_pb2.EXECUTION_STATUS_CANCELLED,
    ExecutionStatus.TIMED_OUT: execution_pb2.EXECUTION_STATUS_TIMED_OUT,
}
_MAX_TRIGGER_BYTES = 4 * 1024 * 1024


def status_to_proto(status: ExecutionStatus) -> Any:
    return _STATUS[status]


def workflow_snapshot(
    msg: workflow_pb2.Workflow, registry: NodeRegistry, field: str = "workflow"
) -> Definition:
    """The validated definition; INVALID_ARGUMENT lists every problem."""
    definition, problems = check(msg, field, registry=registry)
    if problems:
        violations = [FieldViolation(p.path, f"{p.code}: {p.message}") for p in problems]
        raise InvalidArgument(
            "invalid workflow: "
            + "; ".join(v.field + ": " + v.description for v in violations[:5]),
            violations,
        )
    assert definition is not None
    return definition


def enqueue_to_spec(req: pb.EnqueueExecutionRequest, registry: NodeRegistry) -> JobSpec:
    if not req.execution_id:
        raise InvalidArgument.field("execution_id", "is required")
    if not req.HasField("workflow"):
        raise InvalidArgument.field("workflow", "is required")
    definition = workflow_snapshot(req.workflow, registry)
    trigger = req.trigger_data_json
    if trigger:
        if len(trigger) > _MAX_TRIGGER_BYTES:
            raise InvalidArgument.field("trigger_data_json", "is larger than 4 MiB")
        try:
            orjson.loads(trigger)
        except orjson.JSONDecodeError as e:
            raise InvalidArgument.field("trigger_data_json", f"is not JSON: {e}") from None
    for node, out in req.completed_outputs_json.items():
        try:
            parsed = orjson.loads(out)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidArgument.field(
                f"completed_outputs_json[{node}]", 'must be a JSON object {"port": [items]}'
            )
    settings = definition.settings
    max_attempts = req.max_attempts if req.HasField("max_attempts") else settings.max_attempts
    backoff = _seconds(req.backoff) if req.HasField("backoff") else settings.backoff_s
    timeout = _seconds(req.timeout) if req.HasField("timeout") else settings.timeout_s
    run_at = _ms(req.run_time) if req.HasField("run_time") else 0
    if req.attempt < 0:
        raise InvalidArgument.field("attempt", "must be >= 0")
    return JobSpec(
        execution_id=req.execution_id,
        tenant_id=req.tenant_id,
        workflow_id=req.workflow.id,
        workflow_json=definition.json,
        trigger_json=trigger,
        priority=req.priority,
        run_at_ms=run_at,
        max_attempts=max_attempts,
        backoff_s=backoff,
        timeout_s=timeout,
        traceparent=req.traceparent,
        completed_outputs=dict(req.completed_outputs_json),
        attempt=max(1, req.attempt),
    )


def stats_to_proto(s: QueueStats) -> pb.GetQueueStatsResponse:
    return pb.GetQueueStatsResponse(
        waiting=s.waiting,
        active=s.active,
        delayed=s.delayed,
        completed=s.completed,
        failed=s.failed,
        oldest_waiting_age=_duration(s.oldest_waiting_age_ms),
        lanes=[
            pb.LaneStats(
                priority=lane.priority,
                waiting=lane.waiting,
                oldest_waiting_age=_duration(lane.oldest_waiting_age_ms),
            )
            for lane in s.lanes
        ],
        partitions=s.partitions,
    )


def failed_to_proto(j: FailedJob) -> pb.FailedJob:
    return pb.FailedJob(
        execution_id=j.execution_id,
        tenant_id=j.tenant_id,
        workflow_id=j.workflow_id,
        attempts=j.attempts,
        reason=j.reason,
        node_id=j.node_id,
        fail_time=_timestamp(j.fail_time_ms),
    )


_OVERLAP = {
    pb.OVERLAP_POLICY_UNSPECIFIED: Overlap.SKIP,
    pb.OVERLAP_POLICY_SKIP: Overlap.SKIP,
    pb.OVERLAP_POLICY_ALLOW: Overlap.ALLOW,
    pb.OVERLAP_POLICY_BUFFER_ONE: Overlap.BUFFER_ONE,
}
_OVERLAP_PROTO = {
    Overlap.SKIP: pb.OVERLAP_POLICY_SKIP,
    Overlap.ALLOW: pb.OVERLAP_POLICY_ALLOW,
    Overlap.BUFFER_ONE: pb.OVERLAP_POLICY_BUFFER_ONE,
}
_CATCH_UP = {
    pb.CATCH_UP_POLICY_UNSPECIFIED: CatchUp.SKIP,
    pb.CATCH_UP_POLICY_SKIP: CatchUp.SKIP,
    pb.CATCH_UP_POLICY_RUN_LAST: CatchUp.RUN_LAST,
}
_CATCH_UP_PROTO = {
    CatchUp.SKIP: pb.CATCH_UP_POLICY_SKIP,
    CatchUp.RUN_LAST: pb.CATCH_UP_POLICY_RUN_LAST,
}


@dataclass(frozen=True, slots=True)
class ScheduleFields:
    overlap: Overlap
    timing: Timing


def schedule_fields(s: pb.Schedule) -> ScheduleFields:
    """The policies of a schedule to create; INVALID_ARGUMENT for unknown enum values
    (their ranges are ``check_timing``'s)."""
    if s.overlap not in _OVERLAP:
        raise InvalidArgument.field("schedule.overlap", f"unknown overlap policy {s.overlap}")
    if s.catch_up not in _CATCH_UP:
        raise InvalidArgument.field("schedule.catch_up", f"unknown catch-up policy {s.catch_up}")
    return ScheduleFields(
        _OVERLAP[s.overlap],
        Timing(
            cron=s.cron,
            timezone=s.timezone,
            jitter_ms=s.jitter.ToMilliseconds(),
            catch_up=_CATCH_UP[s.catch_up],
            catch_up_window_ms=s.catch_up_window.ToMilliseconds(),
        ),
    )


def schedule_to_proto(s: Schedule, last_status: ExecutionStatus | None) -> pb.Schedule:
    """``last_status``: the last run's status while the store keeps its state."""
    wf = to_proto(orjson.loads(s.workflow_json))
    wf.id = s.workflow_id
    out = pb.Schedule(
        id=s.id,
        tenant_id=s.tenant_id,
        workflow_id=s.workflow_id,
        workflow=wf,
        cron=s.cron,
        timezone=s.timezone,
        paused=s.paused,
        next_fire_time=_timestamp(s.next_fire_ms),
        overlap=_OVERLAP_PROTO[s.overlap],
        catch_up=_CATCH_UP_PROTO[s.catch_up],
        catch_up_window=_duration(s.catch_up_window_ms),
        jitter=_duration(s.jitter_ms),
    )
    if s.last_run is not None:
        out.last_run.CopyFrom(
            pb.ScheduleRun(
                execution_id=s.last_run.execution_id,
                scheduled_time=_timestamp(s.last_run.tick_ms),
                start_time=_timestamp(s.last_run.start_ms),
                status=execution_pb2.EXECUTION_STATUS_UNSPECIFIED
                if last_status is None
                else status_to_proto(last_status),
            )
        )
    if s.buffered_tick_ms:
        out.buffered_time.CopyFrom(_timestamp(s.buffered_tick_ms))
    return out


def _seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _ms(ts: Timestamp) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


def _duration(ms: int) -> Duration:
    d = Duration()
    d.FromMilliseconds(ms)
    return d


def _timestamp(ms: int) -> Timestamp:
    t = Timestamp()
    t.FromMilliseconds(ms)
    return t


def now_ms() -> int:
    return int(time.time() * 1000)
