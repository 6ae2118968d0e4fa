"""Domain records -> protobuf messages (the servicers' outbound half)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from google.protobuf import duration_pb2, timestamp_pb2

from nodedrop.api.model import (
    ApiKeyRecord,
    ExecutionRecord,
    NodeRunRecord,
    RecordedEvent,
    Scope,
    WorkflowRecord,
)
from nodedrop.api.queueing import status_to_proto
from nodedrop.api.schedule_trigger import schedule_of
from nodedrop.auth.v1 import auth_service_pb2
from nodedrop.contract import from_json, to_proto
from nodedrop.event.v1 import event_pb2
from nodedrop.execution.v1 import execution_pb2
from nodedrop.workflow.v1 import workflow_pb2

__all__ = [
    "api_key",
    "duration",
    "event",
    "execution",
    "timestamp",
    "workflow",
]

SCOPE_TO_PROTO = {
    Scope.READ: auth_service_pb2.SCOPE_READ,
    Scope.EXECUTE: auth_service_pb2.SCOPE_EXECUTE,
    Scope.ADMIN: auth_service_pb2.SCOPE_ADMIN,
    Scope.OPERATOR: auth_service_pb2.SCOPE_OPERATOR,
}
SCOPE_FROM_PROTO = {v: k for k, v in SCOPE_TO_PROTO.items()}
MODE_TO_PROTO = {
    "direct": execution_pb2.EXECUTION_MODE_DIRECT,
    "queue": execution_pb2.EXECUTION_MODE_QUEUE,
}
TRIGGER_TO_PROTO = {
    "manual": execution_pb2.TRIGGER_KIND_MANUAL,
    "webhook": execution_pb2.TRIGGER_KIND_WEBHOOK,
    "schedule": execution_pb2.TRIGGER_KIND_SCHEDULE,
    "retry": execution_pb2.TRIGGER_KIND_RETRY,
    "sub_workflow": execution_pb2.TRIGGER_KIND_SUB_WORKFLOW,
}
TRIGGER_FROM_PROTO = {v: k for k, v in TRIGGER_TO_PROTO.items()}
_NODE_STATUS = {
    "running": execution_pb2.NODE_RUN_STATUS_RUNNING,
    "completed": execution_pb2.NODE_RUN_STATUS_COMPLETED,
    "failed": execution_pb2.NODE_RUN_STATUS_FAILED,
    "skipped": execution_pb2.NODE_RUN_STATUS_SKIPPED,
}


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _error(error_json: str | None) -> execution_pb2.ExecutionError | None:
    if not error_json:
        return None
    try:
        raw = orjson.loads(error_json)
    except orjson.JSONDecodeError:
        return execution_pb2.ExecutionError(message=error_json)
    if not isinstance(raw, dict):
        return execution_pb2.ExecutionError(message=str(raw))
    return execution_pb2.ExecutionError(
        message=str(raw.get("message", "")),
        node_id=str(raw.get("node_id") or raw.get("node") or ""),
        code=str(raw.get("code", "")),
        retryable=bool(raw.get("retryable", False)),
    )


def port_counts(outputs_json: str | None) -> dict[str, int]:
    """Items per port of a node's recorded output: its items, or the summary an
    event carries in their place when they were too large for it."""
    if not outputs_json:
        return {}
    try:
        ports = orjson.loads(outputs_json)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(ports, dict):
        return {}
    summary = ports.get("$summary")
    if isinstance(summary, dict) and isinstance(summary.get("items"), dict):
        ports = summary["items"]
        return {str(p): n for p, n in ports.items() if isinstance(n, int)}
    return {str(p): len(items) for p, items in ports.items() if isinstance(items, list)}


def capped_ports(outputs_json: str, cap: int) -> execution_pb2.NodeOutput:
    """Each port's items, cut to `cap` bytes of JSON in total (whole items only)."""
    out = execution_pb2.NodeOutput()
    try:
        ports = orjson.loads(outputs_json)
    except orjson.JSONDecodeError:
        return out
    if not isinstance(ports, dict):
        return out
    budget = cap
    for port, items in ports.items():
        if not isinstance(items, list):
            continue
        kept: list[object] = []
        for item in items:
            size = len(orjson.dumps(item)) + 1
            if size > budget:
                out.truncated = True
                break
            budget -= size
            kept.append(item)
        out.ports_json[str(port)] = orjson.dumps(kept).decode()
    return out


def _finish_order(run: NodeRunRecord) -> tuple[int, datetime]:
    return (run.attempt, run.finished_at or datetime.min.replace(tzinfo=UTC))


def execution(
    rec: ExecutionRecord, *, include_outputs: bool = False, output_cap: int = 0
) -> execution_pb2.Execution:
    msg = execution_pb2.Execution(
        id=rec.id,
        workflow_id=rec.workflow_id or "",
        workflow_version=rec.workflow_version,
        status=status_to_proto(rec.status),
        mode=MODE_TO_PROTO.get(rec.mode, execution_pb2.EXECUTION_MODE_UNSPECIFIED),
        trigger_kind=TRIGGER_TO_PROTO.get(rec.trigger_kind, execution_pb2.TRIGGER_KIND_UNSPECIFIED),
        trigger_data_json=rec.trigger_data_json,
        attempt=rec.attempt,
        max_attempts=rec.max_attempts,
        priority=rec.priority,
        idempotency_key=rec.idempotency_key or "",
        retry_of=rec.retry_of or "",
        create_time=timestamp(rec.created_at),
        trace_id=rec.trace_id,
    )
    scheduled = schedule_of(rec.trigger_kind, rec.trigger_data_json)
    if scheduled is not None:
        msg.schedule_id = scheduled[0]
        msg.scheduled_time.CopyFrom(timestamp(scheduled[1]))
    if rec.started_at is not None:
        msg.start_time.CopyFrom(timestamp(rec.started_at))
    if rec.finished_at is not None:
        msg.end_time.CopyFrom(timestamp(rec.finished_at))
    err = _error(rec.error_json)
    if err is not None:
        if not err.node_id:
            # The store's event error carries no node: the node that failed
            # last is the one that ended the execution.
            failed = [r for r in rec.node_runs if r.status == "failed"]
            if failed:
                err.node_id = max(failed, key=_finish_order).node_id
        msg.error.CopyFrom(err)
    for run in rec.node_runs:
        nr = msg.node_runs.add(
            node_id=run.node_id,
            status=_NODE_STATUS.get(run.status, execution_pb2.NODE_RUN_STATUS_UNSPECIFIED),
            attempt=run.attempt,
            output_item_count=run.output_item_count,
        )
        if run.started_at is not None:
            nr.start_time.CopyFrom(timestamp(run.started_at))
        if run.finished_at is not None:
            nr.end_time.CopyFrom(timestamp(run.finished_at))
        run_err = _error(run.error_json)
        if run_err is not None:
            nr.error.CopyFrom(run_err)
        for port, count in port_counts(run.outputs_json).items():
            nr.port_item_counts[port] = count
    if include_outputs and rec.result_json:
        try:
            result = orjson.loads(rec.result_json)
        except orjson.JSONDecodeError:
            result = {}
        if isinstance(result, dict):
            for node_id, items in result.items():
                msg.outputs[str(node_id)].CopyFrom(
                    capped_ports(orjson.dumps({"main": items}).decode(), output_cap)
                )
    return msg


def workflow(rec: WorkflowRecord) -> workflow_pb2.Workflow:
    msg = to_proto(from_json(rec.definition_json).document)
    msg.id = rec.id
    msg.version = rec.version
    msg.name = rec.name
    msg.create_time.CopyFrom(timestamp(rec.created_at))
    msg.update_time.CopyFrom(timestamp(rec.updated_at))
    return msg


def api_key(rec: ApiKeyRecord) -> auth_service_pb2.ApiKey:
    msg = auth_service_pb2.ApiKey(
        id=rec.id,
        tenant_id=rec.tenant_id,
        name=rec.name,
        scopes=[SCOPE_TO_PROTO[s] for s in rec.scopes],
        prefix=rec.prefix,
        create_time=timestamp(rec.created_at),
    )
    if rec.revoked_at is not None:
        msg.revoke_time.CopyFrom(timestamp(rec.revoked_at))
    return msg


def event(rec: RecordedEvent, workflow_id: str) -> event_pb2.ExecutionEvent:
    msg = event_pb2.ExecutionEvent(
        execution_id=rec.execution_id,
        sequence=rec.sequence,
        type=event_pb2.EventType.Value("EVENT_TYPE_" + rec.type.upper()),
        time=timestamp(rec.time),
        workflow_id=workflow_id,
        node_id=rec.node_id,
        attempt=rec.attempt,
        data_json=rec.data_json,
    )
    err = _error(rec.error_json)
    if err is not None:
        msg.error.CopyFrom(
            event_pb2.EventError(message=err.message, code=err.code, retryable=err.retryable)
        )
    return msg
