"""Protobuf messages to the client's domain types (and the few requests back)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from nodedrop.auth.v1 import auth_service_pb2 as auth_pb
from nodedrop.client.types import (
    ApiKey,
    ErrorInfo,
    Event,
    Execution,
    ExecutionStatus,
    NodeRun,
    NodeRunStatus,
    Schedule,
    ScheduleRun,
    Workflow,
)
from nodedrop.event.v1 import event_pb2
from nodedrop.execution.v1 import execution_pb2
from nodedrop.queue.v1 import scheduler_service_pb2 as queue_pb
from nodedrop.workflow.v1 import workflow_pb2

__all__ = [
    "api_key_of",
    "event_of",
    "execution_of",
    "schedule_of",
    "schedule_policies",
    "status_of",
    "status_value",
    "workflow_of",
    "workflow_proto",
]


def _enum_word(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


def status_of(value: int) -> ExecutionStatus:
    name = execution_pb2.ExecutionStatus.Name(value)  # type: ignore[arg-type]
    return ExecutionStatus(_enum_word(name, "EXECUTION_STATUS_"))


def status_value(status: ExecutionStatus | str) -> int:
    """The proto's enum value of a status word (``completed``)."""
    word = ExecutionStatus(str(status).lower())
    return int(execution_pb2.ExecutionStatus.Value(f"EXECUTION_STATUS_{word.value.upper()}"))


def trigger_kind_value(kind: str) -> int:
    """The proto's enum value of a trigger kind word (``webhook``); ValueError if unknown."""
    return int(execution_pb2.TriggerKind.Value(f"TRIGGER_KIND_{kind.upper()}"))


def _time(ts: Timestamp) -> datetime | None:
    if not ts.seconds and not ts.nanos:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _error(e: Any) -> ErrorInfo:
    return ErrorInfo(
        message=e.message,
        code=e.code,
        node_id=getattr(e, "node_id", "") or None,
        retryable=e.retryable,
    )


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _outputs(execution: execution_pb2.Execution) -> dict[str, dict[str, list[Any]]]:
    outputs: dict[str, dict[str, list[Any]]] = {}
    for node, out in execution.outputs.items():
        ports: dict[str, list[Any]] = {}
        for port, text in out.ports_json.items():
            items = _json(text)
            ports[port] = items if isinstance(items, list) else []
        outputs[node] = ports
    return outputs


_STOPPED = {
    ExecutionStatus.CANCELLED: NodeRunStatus.CANCELLED,
    ExecutionStatus.TIMED_OUT: NodeRunStatus.TIMED_OUT,
}


def _node_run(run: execution_pb2.NodeRun, execution_status: ExecutionStatus) -> NodeRun:
    name = execution_pb2.NodeRunStatus.Name(run.status)
    status = NodeRunStatus(_enum_word(name, "NODE_RUN_STATUS_"))
    if status is NodeRunStatus.RUNNING and execution_status in _STOPPED:
        status = _STOPPED[execution_status]
    # By port name: a protobuf map has no order of its own.
    items = dict(sorted(run.port_item_counts.items()))
    if not items and status is NodeRunStatus.COMPLETED:
        # A server from before per-port counts: the main port's is all it has.
        items = {"main": run.output_item_count}
    return NodeRun(
        node_id=run.node_id,
        status=status,
        attempt=run.attempt,
        started=_time(run.start_time),
        ended=_time(run.end_time),
        error=_error(run.error) if run.HasField("error") else None,
        items=items,
    )


def execution_of(e: execution_pb2.Execution) -> Execution:
    status = status_of(e.status)
    outputs = _outputs(e)
    return Execution(
        id=e.id,
        status=status,
        workflow_id=e.workflow_id or None,
        workflow_version=e.workflow_version,
        mode=_enum_word(execution_pb2.ExecutionMode.Name(e.mode), "EXECUTION_MODE_"),
        trigger_kind=_enum_word(execution_pb2.TriggerKind.Name(e.trigger_kind), "TRIGGER_KIND_"),
        attempt=e.attempt,
        max_attempts=e.max_attempts,
        created=_time(e.create_time),
        started=_time(e.start_time),
        ended=_time(e.end_time),
        retry_of=e.retry_of or None,
        idempotency_key=e.idempotency_key or None,
        node_runs=tuple(_node_run(r, status) for r in e.node_runs),
        outputs=outputs,
        error=_error(e.error) if e.HasField("error") else None,
        trace_id=e.trace_id or None,
        schedule_id=e.schedule_id or None,
        scheduled=_time(e.scheduled_time),
    )


def event_of(ev: event_pb2.ExecutionEvent) -> Event:
    return Event(
        execution_id=ev.execution_id,
        sequence=ev.sequence,
        type=_enum_word(event_pb2.EventType.Name(ev.type), "EVENT_TYPE_"),
        time=ev.time.ToDatetime(tzinfo=UTC),
        workflow_id=ev.workflow_id or None,
        node_id=ev.node_id or None,
        attempt=ev.attempt,
        data=_json(ev.data_json) if ev.data_json else None,
        error=_error(ev.error) if ev.HasField("error") and ev.error.message else None,
    )


def workflow_proto(definition: Mapping[str, Any]) -> workflow_pb2.Workflow:
    """A workflow document as the API's message (the API validates it)."""
    from nodedrop.contract import to_proto  # noqa: PLC0415

    if not isinstance(definition, Mapping):
        raise TypeError("a workflow definition is a JSON object (a dict)")
    return to_proto(definition)


def workflow_of(wf: workflow_pb2.Workflow) -> Workflow:
    from nodedrop.contract import document_of  # noqa: PLC0415

    document, _ = document_of(wf)
    return Workflow(
        id=wf.id,
        version=wf.version,
        name=wf.name,
        definition=document,
        created=_time(wf.create_time),
        updated=_time(wf.update_time),
        active_version=wf.active_version or None,
    )


def _schedule_run_of(r: queue_pb.ScheduleRun) -> ScheduleRun:
    return ScheduleRun(
        execution_id=r.execution_id,
        scheduled=_time(r.scheduled_time),
        started=_time(r.start_time),
        status=status_of(r.status) if r.status else None,
    )


def _policy(name: str, prefix: str) -> str:
    word = _enum_word(name, prefix)
    # UNSPECIFIED means the default, skip, for both policies.
    return "skip" if word == "unspecified" else word


def schedule_of(s: queue_pb.Schedule) -> Schedule:
    return Schedule(
        id=s.id,
        tenant_id=s.tenant_id,
        workflow_id=s.workflow_id or None,
        cron=s.cron,
        timezone=s.timezone or "UTC",
        paused=s.paused,
        next_fire=_time(s.next_fire_time) if s.HasField("next_fire_time") else None,
        overlap=_policy(queue_pb.OverlapPolicy.Name(s.overlap), "OVERLAP_POLICY_"),
        catch_up=_policy(queue_pb.CatchUpPolicy.Name(s.catch_up), "CATCH_UP_POLICY_"),
        catch_up_window_s=s.catch_up_window.ToMilliseconds() / 1000,
        jitter_s=s.jitter.ToMilliseconds() / 1000,
        last_run=_schedule_run_of(s.last_run) if s.HasField("last_run") else None,
        buffered=_time(s.buffered_time),
    )


def schedule_policies(
    overlap: str, catch_up: str
) -> tuple[queue_pb.OverlapPolicy.ValueType, queue_pb.CatchUpPolicy.ValueType]:
    """The proto's enum values of the policy words; ValueError names the accepted words."""
    try:
        overlap_value = queue_pb.OverlapPolicy.Value(f"OVERLAP_POLICY_{overlap.upper()}")
    except ValueError:
        raise ValueError(f"overlap must be skip, allow or buffer_one, not {overlap!r}") from None
    try:
        catch_up_value = queue_pb.CatchUpPolicy.Value(f"CATCH_UP_POLICY_{catch_up.upper()}")
    except ValueError:
        raise ValueError(f"catch_up must be skip or run_last, not {catch_up!r}") from None
    if not overlap_value or not catch_up_value:
        raise ValueError("overlap and catch_up take a policy word, not 'unspecified'")
    return overlap_value, catch_up_value


def api_key_of(k: auth_pb.ApiKey) -> ApiKey:
    return ApiKey(
        id=k.id,
        tenant_id=k.tenant_id,
        name=k.name,
        scopes=tuple(_enum_word(auth_pb.Scope.Name(s), "SCOPE_") for s in k.scopes),
        prefix=k.prefix,
        created=_time(k.create_time),
        revoked=_time(k.revoke_time) if k.HasField("revoke_time") else None,
    )
