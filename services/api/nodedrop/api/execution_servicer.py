"""ExecutionService: the servicer checks requests and translates; the
ExecutionManager and the repository do the work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from math import ceil

import orjson

from nodedrop.api import pagination
from nodedrop.api.checks import Violations, reject_nul
from nodedrop.api.convert import (
    TRIGGER_FROM_PROTO,
    duration,
    event,
    execution,
    timestamp,
)
from nodedrop.api.executions import ExecutionManager, Submission
from nodedrop.api.inline_definitions import InlineDefinitions
from nodedrop.api.limits import TokenBuckets
from nodedrop.api.model import ExecutionFilter
from nodedrop.api.node_test import NodeTester
from nodedrop.api.queueing import QueuePort, status_from_proto, status_to_proto
from nodedrop.api.repository import ExecutionRepository
from nodedrop.api.result_cache import ResultCache
from nodedrop.api.subworkflows import SubworkflowPins
from nodedrop.api.validation import Rules
from nodedrop.api.workflow_cache import WorkflowCache
from nodedrop.common.auth import SCOPE_EXECUTE, SCOPE_READ, require_scope
from nodedrop.common.errors import FailedPrecondition, NodedropError, NotFound, ResourceExhausted
from nodedrop.contract import Definition
from nodedrop.engine import EngineConfig
from nodedrop.engine.budget import SUMMARY_KEY
from nodedrop.execution.v1 import execution_pb2, execution_service_pb2_grpc
from nodedrop.execution.v1 import execution_service_pb2 as pb
from nodedrop.store import MAX_CANCEL_REASON

__all__ = ["ExecutionLimits", "ExecutionServicer"]

MAX_DELAY_S = 30 * 86400
MAX_IDEMPOTENCY_KEY = 200
MAX_PRIORITY = 1000
DEFAULT_OUTPUT_CAP = 256 * 1024
MAX_OUTPUT_CAP = 4 * 1024 * 1024
# A day of minutes: the stats page's charts, never a response of unbounded size.
MAX_BUCKETS = 1440
_MODES = {
    execution_pb2.EXECUTION_MODE_DIRECT: "direct",
    execution_pb2.EXECUTION_MODE_QUEUE: "queue",
}


class ExecutionLimits:
    def __init__(
        self,
        *,
        max_request_bytes: int,
        max_trigger_bytes: int,
        max_nodes: int,
        rate: TokenBuckets | None,
        default_mode: str,
        engine: EngineConfig | None = None,
    ) -> None:
        self.max_request_bytes = max_request_bytes
        self.max_trigger_bytes = max_trigger_bytes
        self.max_nodes = max_nodes
        self.rate = rate
        self.default_mode = default_mode
        self.engine = engine or EngineConfig()


class ExecutionServicer(execution_service_pb2_grpc.ExecutionServiceServicer):
    def __init__(
        self,
        repository: ExecutionRepository,
        manager: ExecutionManager,
        queue: QueuePort | None,
        cache: ResultCache | None,
        limits: ExecutionLimits,
        *,
        workflows: WorkflowCache | None = None,
        pins: SubworkflowPins | None = None,
    ) -> None:
        self._repo = repository
        self._manager = manager
        self._queue = queue
        self._cache = cache
        self._limits = limits
        self._workflows = workflows or WorkflowCache(repository)
        self._node_tester = NodeTester(
            max_request_bytes=limits.max_request_bytes, config=limits.engine
        )
        self._pins = pins or SubworkflowPins(
            self._workflows, limits.engine, max_bytes=limits.max_request_bytes
        )
        self._inline = InlineDefinitions(Rules(max_nodes=limits.max_nodes, engine=limits.engine))

    def _rate_check(self, tenant_id: str, call: str) -> None:
        """Every call that starts work takes from the tenant's one bucket, so no
        call is a way around the limit."""
        if self._limits.rate is not None:
            wait = self._limits.rate.try_take(tenant_id)
            if wait > 0:
                raise ResourceExhausted(
                    f"{call}: the rate limit of this tenant is reached; retry in {wait:.2f} s"
                )

    async def ExecuteWorkflow(
        self, request: pb.ExecuteWorkflowRequest, context: object
    ) -> pb.ExecuteWorkflowResponse:
        principal = require_scope(SCOPE_EXECUTE)
        reject_nul(request)
        if request.ByteSize() > self._limits.max_request_bytes:
            raise ResourceExhausted(
                f"request is {request.ByteSize()} bytes; "
                f"the limit is {self._limits.max_request_bytes}"
            )
        # Bytes, not characters: a character takes up to four bytes in UTF-8.
        trigger_bytes = len(request.trigger_data_json.encode())
        if trigger_bytes > self._limits.max_trigger_bytes:
            raise ResourceExhausted(
                f"trigger_data_json is {trigger_bytes} bytes; "
                f"the limit is {self._limits.max_trigger_bytes}"
            )
        self._rate_check(principal.tenant_id, "ExecuteWorkflow")
        v = Violations()
        source = request.WhichOneof("source")
        definition: Definition | None = None
        if source is None:
            v.add("source", "set workflow_id or workflow")
        elif source == "workflow_id":
            v.uuid("workflow_id", request.workflow_id)
        else:
            definition, problems = self._inline.check(request.workflow, "workflow")
            for p in problems:
                v.add(p.path, f"{p.code}: {p.message}")
        version = request.workflow_version if request.HasField("workflow_version") else None
        if version is not None and (source != "workflow_id" or version < 1):
            v.add("workflow_version", "must be >= 1 and only with workflow_id")
        v.json_items(
            "trigger_data_json",
            request.trigger_data_json,
            allow_object=True,
            max_depth=self._limits.engine.limits.max_data_depth,
        )
        mode = self._limits.default_mode
        if request.mode != execution_pb2.EXECUTION_MODE_UNSPECIFIED:
            if request.mode not in _MODES:
                v.add("mode", f"unknown mode {request.mode}")
            else:
                mode = _MODES[request.mode]
        if abs(request.priority) > MAX_PRIORITY:
            v.add("priority", f"must be -{MAX_PRIORITY}..{MAX_PRIORITY}")
        delay_s = 0.0
        if request.HasField("delay"):
            delay_s = request.delay.seconds + request.delay.nanos / 1e9
            if delay_s < 0 or delay_s > MAX_DELAY_S:
                v.add("delay", f"must be 0..{MAX_DELAY_S} seconds")
            elif delay_s > 0 and mode == "direct":
                v.add("delay", "a delay needs queue mode")
        if len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY:
            v.add("idempotency_key", f"at most {MAX_IDEMPOTENCY_KEY} characters")
        trigger_kind = "manual"
        if request.trigger_kind != execution_pb2.TRIGGER_KIND_UNSPECIFIED:
            if request.trigger_kind not in TRIGGER_FROM_PROTO:
                v.add("trigger_kind", f"unknown trigger kind {request.trigger_kind}")
            else:
                trigger_kind = TRIGGER_FROM_PROTO[request.trigger_kind]
        v.raise_if_any()
        workflow_id: str | None = None
        workflow_version = 0
        if definition is None:
            cached = await self._workflows.get(principal.tenant_id, request.workflow_id, version)
            if cached is None:
                what = f" version {version}" if version is not None else ""
                raise NotFound(f"workflow {request.workflow_id!r}{what} not found")
            definition = cached.definition
            workflow_id, workflow_version = cached.record.id, cached.record.version
        definition = await self._pins.pin(principal.tenant_id, definition, source or "workflow")
        submitted = await self._manager.submit(
            Submission(
                tenant_id=principal.tenant_id,
                definition=definition,
                workflow_id=workflow_id,
                workflow_version=workflow_version,
                trigger_data_json=request.trigger_data_json,
                mode=mode,
                trigger_kind=trigger_kind,
                priority=request.priority,
                delay_s=delay_s,
                idempotency_key=request.idempotency_key or None,
            )
        )
        return pb.ExecuteWorkflowResponse(
            execution_id=submitted.execution_id,
            status=status_to_proto(submitted.status),
            deduplicated=submitted.deduplicated,
        )

    async def GetExecution(
        self, request: pb.GetExecutionRequest, context: object
    ) -> pb.GetExecutionResponse:
        principal = require_scope(SCOPE_READ)
        v = Violations()
        v.execution_id("execution_id", request.execution_id)
        if request.max_output_bytes < 0 or request.max_output_bytes > MAX_OUTPUT_CAP:
            v.add("max_output_bytes", f"must be 0..{MAX_OUTPUT_CAP}")
        v.raise_if_any()
        cap = request.max_output_bytes or DEFAULT_OUTPUT_CAP
        cache_key = (request.execution_id, request.include_outputs, cap)
        if self._cache is not None:
            cached = await self._cache.get(principal.tenant_id, *cache_key)
            if cached is not None:
                return pb.GetExecutionResponse(execution=cached)
        record = await self._manager.get(principal.tenant_id, request.execution_id)
        msg = execution(record, include_outputs=request.include_outputs, output_cap=cap)
        if self._cache is not None and record.finished:
            await self._cache.put(principal.tenant_id, *cache_key, msg)
        return pb.GetExecutionResponse(execution=msg)

    async def GetExecutionOutput(
        self, request: pb.GetExecutionOutputRequest, context: object
    ) -> pb.GetExecutionOutputResponse:
        principal = require_scope(SCOPE_READ)
        v = Violations()
        v.execution_id("execution_id", request.execution_id)
        if not request.node_id:
            v.add("node_id", "required")
        size = v.page_size("page_size", request.page_size)
        v.raise_if_any()
        offset = 0
        if request.page_token:
            (value,) = pagination.decode(request.page_token, "page_token", 1)
            if not isinstance(value, int) or value < 0:
                v.add("page_token", "not a page token returned by this API")
                v.raise_if_any()
            offset = int(value)
        record = await self._manager.get(principal.tenant_id, request.execution_id)
        runs = [r for r in record.node_runs if r.node_id == request.node_id and r.outputs_json]
        if not runs:
            raise NotFound(f"node {request.node_id!r} has no output in this execution")
        latest = max(runs, key=lambda r: r.attempt)
        ports = orjson.loads(latest.outputs_json or "{}")
        if isinstance(ports, dict) and SUMMARY_KEY in ports:
            summary = ports[SUMMARY_KEY]
            raise FailedPrecondition(
                f"node {request.node_id!r} output {summary.get('bytes')} bytes, more than "
                f"its events carry (NODEDROP_MAX_EVENT_BYTES, {summary.get('max_event_bytes')}); "
                "the history has their summary only"
            )
        items = ports.get(request.port or "main") if isinstance(ports, dict) else None
        if not isinstance(items, list):
            raise NotFound(
                f"node {request.node_id!r} has no output on port {request.port or 'main'!r}"
            )
        page = items[offset : offset + size]
        response = pb.GetExecutionOutputResponse(
            items_json=orjson.dumps(page).decode(), total_items=len(items)
        )
        if offset + size < len(items):
            response.next_page_token = pagination.encode([offset + size])
        return response

    async def ListExecutions(
        self, request: pb.ListExecutionsRequest, context: object
    ) -> pb.ListExecutionsResponse:
        principal = require_scope(SCOPE_READ)
        reject_nul(request)
        v = Violations()
        v.uuid("workflow_id", request.workflow_id, required=False)
        size = v.page_size("page_size", request.page_size)
        statuses = []
        for i, s in enumerate(request.statuses):
            status = status_from_proto(s)
            if status is None:
                v.add(f"statuses[{i}]", f"unknown status {s}")
            else:
                statuses.append(status)
        triggers = []
        for i, t in enumerate(request.trigger_kinds):
            kind = TRIGGER_FROM_PROTO.get(t)
            if kind is None:
                v.add(f"trigger_kinds[{i}]", f"unknown trigger kind {t}")
            else:
                triggers.append(kind)
        after_t = (
            v.timestamp("created_after", request.created_after)
            if request.HasField("created_after")
            else None
        )
        before_t = (
            v.timestamp("created_before", request.created_before)
            if request.HasField("created_before")
            else None
        )
        if after_t and before_t and after_t >= before_t:
            v.add("created_before", "must be later than created_after")
        v.raise_if_any()
        cursor = None
        if request.page_token:
            cursor = pagination.decode_time_cursor(request.page_token, "page_token")
        records = await self._repo.list_executions(
            principal.tenant_id,
            ExecutionFilter(
                request.workflow_id or None, tuple(statuses), after_t, before_t, tuple(triggers)
            ),
            cursor,
            size + 1,
        )
        response = pb.ListExecutionsResponse(executions=[execution(r) for r in records[:size]])
        if len(records) > size:
            last = records[size - 1]
            response.next_page_token = pagination.encode_time_cursor(last.created_at, last.id)
        return response

    async def CancelExecution(
        self, request: pb.CancelExecutionRequest, context: object
    ) -> pb.CancelExecutionResponse:
        principal = require_scope(SCOPE_EXECUTE)
        reject_nul(request)
        v = Violations()
        v.execution_id("execution_id", request.execution_id)
        if len(request.reason) > MAX_CANCEL_REASON:
            v.add("reason", f"at most {MAX_CANCEL_REASON} characters")
        v.raise_if_any()
        status = await self._manager.cancel(
            principal.tenant_id, request.execution_id, request.reason
        )
        return pb.CancelExecutionResponse(
            execution_id=request.execution_id, status=status_to_proto(status)
        )

    async def RetryExecution(
        self, request: pb.RetryExecutionRequest, context: object
    ) -> pb.RetryExecutionResponse:
        principal = require_scope(SCOPE_EXECUTE)
        self._rate_check(principal.tenant_id, "RetryExecution")
        v = Violations()
        v.execution_id("execution_id", request.execution_id)
        if request.retry_from not in (0, pb.RETRY_FROM_FAILED_NODE, pb.RETRY_FROM_START):
            v.add("retry_from", f"unknown value {request.retry_from}")
        mode = None
        if request.mode != execution_pb2.EXECUTION_MODE_UNSPECIFIED:
            if request.mode not in _MODES:
                v.add("mode", f"unknown mode {request.mode}")
            else:
                mode = _MODES[request.mode]
        v.raise_if_any()
        submitted = await self._manager.retry(
            principal.tenant_id,
            request.execution_id,
            from_failed_node=request.retry_from != pb.RETRY_FROM_START,
            mode=mode,
        )
        return pb.RetryExecutionResponse(
            execution_id=submitted.execution_id, status=status_to_proto(submitted.status)
        )

    async def ExecuteNode(
        self, request: pb.ExecuteNodeRequest, context: object
    ) -> pb.ExecuteNodeResponse:
        principal = require_scope(SCOPE_EXECUTE)
        reject_nul(request)
        self._rate_check(principal.tenant_id, "ExecuteNode")
        return await self._node_tester.run(request, principal.tenant_id)

    async def GetExecutionStats(
        self, request: pb.GetExecutionStatsRequest, context: object
    ) -> pb.GetExecutionStatsResponse:
        principal = require_scope(SCOPE_READ)
        v = Violations()
        v.uuid("workflow_id", request.workflow_id, required=False)
        now = datetime.now(UTC)
        end = v.timestamp("end_time", request.end_time) if request.HasField("end_time") else now
        start = (
            v.timestamp("start_time", request.start_time)
            if request.HasField("start_time")
            else _day_before(end, v)
        )
        if start is not None and end is not None:
            if start >= end:
                v.add("start_time", "must be earlier than end_time")
            elif end - start > timedelta(days=366):
                v.add("start_time", "the window is at most 366 days")
        width = None
        if request.HasField("bucket_width"):
            width = request.bucket_width.ToTimedelta()
            if width < timedelta(seconds=1):
                v.add("bucket_width", "must be at least one second")
            elif start is not None and end is not None and (end - start) / width > MAX_BUCKETS:
                v.add("bucket_width", f"the window holds at most {MAX_BUCKETS} buckets")
        v.raise_if_any()
        assert start is not None and end is not None
        workflow_id = request.workflow_id or None
        rows = await self._repo.stats(principal.tenant_id, workflow_id, start, end)
        response = pb.GetExecutionStatsResponse()
        if width is not None:
            counted = await self._repo.stats_buckets(
                principal.tenant_id, workflow_id, start, end, width
            )
            buckets = [
                response.buckets.add(start_time=timestamp(start + i * width))
                for i in range(ceil((end - start) / width))
            ]
            for i, status, count in counted:
                buckets[i].status_counts.add(status=status_to_proto(status), count=count)
        for row in rows:
            failed = sum(n for s, n in row.status_counts if s.value in ("failed", "timed_out"))
            ws = response.workflows.add(
                workflow_id=row.workflow_id,
                total=row.total,
                failure_rate=failed / row.total if row.total else 0.0,
            )
            for status, count in row.status_counts:
                ws.status_counts.add(status=status_to_proto(status), count=count)
            if row.p50_s is not None:
                ws.p50_duration.CopyFrom(duration(row.p50_s))
            if row.p95_s is not None:
                ws.p95_duration.CopyFrom(duration(row.p95_s))
            for node in row.nodes:
                ns = ws.nodes.add(
                    node_id=node.node_id,
                    runs=node.runs,
                    failures=node.failures,
                    failure_rate=node.failures / node.runs if node.runs else 0.0,
                )
                if node.p50_s is not None:
                    ns.p50_duration.CopyFrom(duration(node.p50_s))
                if node.p95_s is not None:
                    ns.p95_duration.CopyFrom(duration(node.p95_s))
        return response

    async def ListExecutionEvents(
        self, request: pb.ListExecutionEventsRequest, context: object
    ) -> pb.ListExecutionEventsResponse:
        principal = require_scope(SCOPE_READ)
        v = Violations()
        v.execution_id("execution_id", request.execution_id)
        size = v.page_size("page_size", request.page_size)
        v.raise_if_any()
        record = await self._repo.get_execution(principal.tenant_id, request.execution_id)
        if record is None:
            raise NotFound(f"execution {request.execution_id!r} not found")
        events = await self._repo.list_events(record.id, request.after_sequence, size + 1)
        return pb.ListExecutionEventsResponse(
            events=[event(e, record.workflow_id or "") for e in events[:size]],
            more=len(events) > size,
        )

    async def GetSystemHealth(
        self, request: pb.GetSystemHealthRequest, context: object
    ) -> pb.GetSystemHealthResponse:
        if self._queue is None:
            return pb.GetSystemHealthResponse(healthy=True)
        try:
            figures = await self._queue.figures()
        except NodedropError:
            return pb.GetSystemHealthResponse(healthy=False)
        return pb.GetSystemHealthResponse(
            healthy=True,
            waiting=figures.waiting,
            active=figures.active,
            delayed=figures.delayed,
            failed=figures.failed,
        )


def _day_before(end: datetime | None, v: Violations) -> datetime | None:
    if end is None:
        return None
    try:
        return end - timedelta(days=1)
    except OverflowError:
        v.add("end_time", "must be a time from year 1 to 9999")
        return None
