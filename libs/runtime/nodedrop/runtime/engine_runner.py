"""Runs an attempt with nodedrop.engine: parses the snapshot (cached), resumes after
the checkpoints, and turns engine events into store event drafts.

Each attempt runs in its execution span (parent: the job's traceparent) and each
node run gets a span and a duration sample, both built from the engine's node
events, so the engine itself stays free of telemetry."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson
from opentelemetry import trace

from nodedrop.common import tracing
from nodedrop.common.engine_settings import EngineSettings
from nodedrop.common.metrics import Metrics, get_metrics
from nodedrop.common.telemetry import spans_exported
from nodedrop.engine import (
    CancelToken,
    EngineConfig,
    EngineEvent,
    ExecutionInfo,
    ExecutionStatus,
    NodeOutputs,
    ValidationError,
    Workflow,
)
from nodedrop.engine.events import EventType as EngineEventType
from nodedrop.engine.executor import run_workflow
from nodedrop.engine.limits import DEFAULT_LIMITS
from nodedrop.engine.parse import parse_workflow
from nodedrop.engine.plan import get_plan
from nodedrop.runtime.plugins import build_registry
from nodedrop.runtime.runner import Ending, JobSink, RunOutcome
from nodedrop.sandbox import ProcessSandbox
from nodedrop.store import EventError, ExecutionContext
from nodedrop.store.engine_events import event_draft, event_error

# Parsed workflows by snapshot text: a burst of executions of one workflow parses
# and plans it once (the engine caches the plan on the Workflow object).
_CACHE_SIZE = 512

_ENDINGS = {
    ExecutionStatus.COMPLETED: Ending.COMPLETED,
    ExecutionStatus.FAILED: Ending.FAILED,
    ExecutionStatus.CANCELLED: Ending.CANCELLED,
    ExecutionStatus.TIMED_OUT: Ending.TIMED_OUT,
}


def build_config(
    plugins: tuple[str, ...] = (), engine: EngineSettings | None = None
) -> EngineConfig:
    """The engine of a process that runs workflows, with its code sandbox (whose
    runner processes start with the first code node run)."""
    if engine is None:
        return EngineConfig(
            registry=build_registry(plugins),
            code=ProcessSandbox(1, DEFAULT_LIMITS.code_memory_bytes),
        )
    return EngineConfig(
        registry=build_registry(plugins),
        http=engine.http,
        limits=engine.limits,
        code=ProcessSandbox(
            engine.code_runners,
            engine.limits.code_memory_bytes,
            per_tenant=engine.code_runners_per_tenant,
        ),
    )


class _NodeTimes:
    """NodeSpans' bookkeeping without spans: node run times for the duration
    samples when the execution span does not record (no exporter), where a
    span per node would cost more than running a noop node."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[str, float] = {}

    def started(self, node_id: str, node_type: str, at_s: float) -> None:
        self._open[node_id] = at_s

    def finished(self, node_id: str, at_s: float, *, error: str | None = None) -> float | None:
        started = self._open.pop(node_id, None)
        return None if started is None else max(0.0, at_s - started)

    def close(self, reason: str) -> None:
        self._open.clear()


class _NodeTelemetry:
    """Node spans and node duration samples from the engine's node events."""

    __slots__ = ("_metrics", "_spans", "_types")

    def __init__(
        self, workflow: Workflow, spans: tracing.NodeSpans | _NodeTimes, metrics: Metrics
    ) -> None:
        self._types = {n.id: n.type for n in workflow.nodes}
        self._spans = spans
        self._metrics = metrics

    def observe(self, event: EngineEvent) -> None:
        node_id = event.node_id
        if node_id is None:
            return
        node_type = self._types.get(node_id, "unknown")
        if event.type is EngineEventType.NODE_STARTED:
            self._spans.started(node_id, node_type, event.time)
        elif event.type is EngineEventType.NODE_COMPLETED:
            took = self._spans.finished(node_id, event.time)
            self._metrics.observe_node(node_type, "completed", took or 0.0)
        elif event.type is EngineEventType.NODE_FAILED:
            message = event.error.message if event.error else "node failed"
            took = self._spans.finished(node_id, event.time, error=message)
            self._metrics.observe_node(node_type, "failed", took or 0.0)
        elif event.type is EngineEventType.NODE_SKIPPED:
            self._metrics.observe_node(node_type, "skipped", 0.0)


class _Events:
    """The engine's EventSink and CheckpointStore over a JobSink (no awaits on Redis)."""

    __slots__ = ("_sink", "_telemetry")

    def __init__(self, sink: JobSink, telemetry: _NodeTelemetry) -> None:
        self._sink = sink
        self._telemetry = telemetry

    async def emit(self, event: EngineEvent) -> None:
        self._telemetry.observe(event)
        self._sink.emit(event_draft(event))

    async def save(self, node_id: str, outputs: NodeOutputs, event: EngineEvent) -> None:
        self._telemetry.observe(event)
        data = event.checkpoint_json or orjson.dumps(outputs).decode()
        self._sink.checkpoint(node_id, data, event_draft(event))


class EngineRunner:
    def __init__(self, config: EngineConfig | None = None, metrics: Metrics | None = None) -> None:
        self._config = config or build_config()
        self._metrics = metrics if metrics is not None else get_metrics()
        self._workflows: OrderedDict[str, Workflow] = OrderedDict()
        self._inline: dict[str, bool] = {}
        # Looked up once: the global provider's get_tracer builds a new Tracer per
        # call (a fifth of a worker's time when done per attempt).  Before a
        # provider is installed this is OpenTelemetry's proxy, which follows it.
        self._tracer = trace.get_tracer(tracing.TRACER_NAME)

    def runs_inline(self, ctx: ExecutionContext) -> bool:
        """True when the attempt never waits on anything but its own sink: every
        node synchronous, without node timeout or retry delay.  Such attempts
        run one after another on a task shared by a read batch."""
        known = self._inline.get(ctx.workflow_json)
        if known is not None:
            return known
        try:
            plan = get_plan(
                self._workflow(ctx.workflow_json), self._config.registry, self._config.limits
            )
            inline = not any(p.is_async for p in plan.prepared) and all(
                n.timeout_s is None and (n.retry is None or n.retry.max_tries <= 1)
                for n in plan.nodes
            )
        except (ValidationError, orjson.JSONDecodeError):
            inline = True  # fails at once, without waiting on anything
        if len(self._inline) >= _CACHE_SIZE:
            self._inline.clear()
        self._inline[ctx.workflow_json] = inline
        return inline

    def _workflow(self, text: str) -> Workflow:
        wf = self._workflows.get(text)
        if wf is not None:
            self._workflows.move_to_end(text)
            return wf
        wf = parse_workflow(orjson.loads(text))
        self._workflows[text] = wf
        if len(self._workflows) > _CACHE_SIZE:
            self._workflows.popitem(last=False)
        return wf

    async def run(self, ctx: ExecutionContext, sink: JobSink, cancel: CancelToken) -> RunOutcome:
        if not spans_exported():
            # Nothing reads the spans: a non-recording span per attempt still cost
            # a tenth of the worker (context manager, attributes, links, context
            # attach).  The job entry keeps its traceparent for the next attempt.
            times = _NodeTimes()
            try:
                return await self._run(ctx, sink, cancel, times)
            finally:
                times.close("the attempt ended before the node finished")
        with tracing.execution_span(
            ctx.execution_id,
            ctx.attempt,
            traceparent=ctx.traceparent,
            workflow_id=ctx.workflow_id,
            tenant_id=ctx.tenant_id,
            tracer=self._tracer,
        ) as span:
            spans: tracing.NodeSpans | _NodeTimes = (
                tracing.NodeSpans(span, tracer=self._tracer)
                if span.is_recording()
                else _NodeTimes()
            )
            try:
                outcome = await self._run(ctx, sink, cancel, spans)
            finally:
                spans.close("the attempt ended before the node finished")
            if outcome.ending is not Ending.COMPLETED:
                err = outcome.error
                tracing.mark_failed(span, err.message if err else outcome.ending.value)
                # The same rule the consumer applies to schedule the retry.
                if (
                    outcome.ending is Ending.FAILED
                    and (err is None or err.retryable)
                    and ctx.attempts_left > 0
                ):
                    tracing.mark_retry(ctx.execution_id, ctx.attempt)
            return outcome

    async def _run(
        self,
        ctx: ExecutionContext,
        sink: JobSink,
        cancel: CancelToken,
        spans: tracing.NodeSpans | _NodeTimes,
    ) -> RunOutcome:
        try:
            workflow = self._workflow(ctx.workflow_json)
            trigger: Any = orjson.loads(ctx.trigger_json) if ctx.trigger_json else None
            completed = {node: orjson.loads(out) for node, out in ctx.outputs.items()}
        except (ValidationError, orjson.JSONDecodeError) as e:
            return _invalid(str(e))
        events = _Events(sink, _NodeTelemetry(workflow, spans, self._metrics))
        try:
            result = await run_workflow(
                workflow,
                execution=ExecutionInfo(
                    ctx.execution_id, ctx.attempt, ctx.workflow_id, ctx.tenant_id
                ),
                trigger_data=trigger,
                sink=events,
                checkpoints=events,
                completed=completed,
                cancel=cancel,
                timeout_s=ctx.timeout_s,
                config=self._config,
            )
        except ValidationError as e:
            return _invalid(str(e))
        ending = _ENDINGS[result.status]
        if ending is Ending.COMPLETED:
            return RunOutcome(ending, result_json=orjson.dumps(result.outputs).decode())
        err = result.error
        return RunOutcome(
            ending,
            error=event_error(err) if err else None,
            failed_node=(err.node_id or "") if err else "",
        )


def _invalid(message: str) -> RunOutcome:
    return RunOutcome(Ending.FAILED, error=EventError(message, "invalid_workflow", False))
