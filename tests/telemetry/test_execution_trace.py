"""One trace per queued execution: the caller's span, the scheduler's RPC and
enqueue spans, one execution span per attempt, one span per node run, and the
retry's link to the attempt before it, all seen by an in-memory exporter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping

import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from nodedrop.common.client import call, open_channel
from nodedrop.common.settings import TelemetrySettings
from nodedrop.common.telemetry import configure_tracing, install_in_memory_tracing
from nodedrop.common.tracing import ATTR_ATTEMPT, ATTR_NODE_ID, current_traceparent
from nodedrop.execution.v1 import execution_pb2 as ex
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.queue.v1 import scheduler_service_pb2_grpc as pb_grpc
from nodedrop.workflow.v1 import workflow_pb2 as wf_pb
from tests.helpers.services import service_metadata
from tests.telemetry.conftest import Stack
from tests.telemetry.flaky_nodes import LEAKED_KEY, LEAKED_PASSWORD


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    # The process-wide provider (the one services use), with its derived-id
    # generator; the exporter stops keeping spans when the test ends.
    configure_tracing(TelemetrySettings("nodedrop-test", None))
    memory = install_in_memory_tracing()
    try:
        yield memory
    finally:
        memory.shutdown()


def three_nodes() -> wf_pb.Workflow:
    return wf_pb.Workflow(
        id="wf-trace",
        name="trace",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="flaky", type="telemetry_flaky"),
            wf_pb.Node(id="done", type="noop"),
        ],
        connections=[
            wf_pb.Connection(source="start", target="flaky"),
            wf_pb.Connection(source="flaky", target="done"),
        ],
    )


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_queued_execution_is_one_trace_with_a_link_between_attempts(
    stack_factory: Callable[[Mapping[str, str]], Stack], exporter: InMemorySpanExporter
) -> None:
    stack = stack_factory({})
    await stack.start_scheduler()
    await stack.start_worker()
    tracer = trace.get_tracer("test-client")
    async with open_channel(stack.scheduler_target) as channel:
        stub = pb_grpc.SchedulerServiceStub(channel)
        # Stands in for the API's ExecuteWorkflow server span.
        with tracer.start_as_current_span("ExecuteWorkflow") as root:
            request = pb.EnqueueExecutionRequest(
                execution_id="ex-trace",
                tenant_id="t1",
                workflow=three_nodes(),
                trigger_data_json='{"n": 1}',
                max_attempts=3,
                backoff=Duration(nanos=20_000_000),
                traceparent=current_traceparent(),
            )
            assert (await call(stub.EnqueueExecution, request, metadata=service_metadata())).created
        deadline = time.monotonic() + 15
        while True:
            states = await call(
                stub.GetExecutionStates,
                pb.GetExecutionStatesRequest(execution_ids=["ex-trace"]),
                metadata=service_metadata(),
            )
            if states.states[0].status == ex.EXECUTION_STATUS_COMPLETED:
                break
            assert time.monotonic() < deadline, f"not completed: {states.states[0]}"
            await asyncio.sleep(0.05)

    trace_id = root.get_span_context().trace_id
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    # Every span of the execution is in the root's trace, none elsewhere.
    others = [
        s
        for s in exporter.get_finished_spans()
        if s.context.trace_id != trace_id and s.name in ("enqueue", "execution")
    ]
    assert others == []
    by_id = {s.context.span_id: s for s in spans}

    (client,) = [s for s in spans if s.kind is SpanKind.CLIENT and "EnqueueExecution" in s.name]
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER and "EnqueueExecution" in s.name]
    (enqueue,) = [s for s in spans if s.name == "enqueue"]
    assert parent_of(client) == root.get_span_context().span_id
    assert parent_of(server) == client.context.span_id
    assert parent_of(enqueue) == server.context.span_id
    assert enqueue.kind is SpanKind.PRODUCER

    attempts = sorted(
        (s for s in spans if s.name == "execution"),
        key=lambda s: int((s.attributes or {})[ATTR_ATTEMPT]),  # type: ignore[arg-type]
    )
    assert [int((s.attributes or {})[ATTR_ATTEMPT]) for s in attempts] == [1, 2]  # type: ignore[arg-type]
    first, second = attempts
    for attempt in attempts:
        assert attempt.kind is SpanKind.CONSUMER
        assert parent_of(attempt) == enqueue.context.span_id
    assert first.status.status_code is StatusCode.ERROR
    assert second.status.status_code is StatusCode.UNSET

    def node_runs(attempt: ReadableSpan) -> dict[str, ReadableSpan]:
        return {
            str((s.attributes or {})[ATTR_NODE_ID]): s
            for s in spans
            if s.name.startswith("node ") and parent_of(s) == attempt.context.span_id
        }

    first_nodes, second_nodes = node_runs(first), node_runs(second)
    # Attempt 2 resumes after the checkpoint of "start": one span per node run.
    assert sorted(first_nodes) == ["flaky", "start"]
    assert sorted(second_nodes) == ["done", "flaky"]
    assert first_nodes["flaky"].status.status_code is StatusCode.ERROR
    assert first_nodes["flaky"].name == "node telemetry_flaky"
    assert second_nodes["done"].name == "node noop"
    assert second_nodes["flaky"].status.status_code is StatusCode.UNSET
    assert len([s for s in spans if s.name.startswith("node ")]) == 4

    # The retry links to the marker attempt 1 left, a child of attempt 1's span.
    assert first.links == ()
    (link,) = second.links
    assert link.context.trace_id == trace_id
    marker = by_id[link.context.span_id]
    assert marker.name == "retry scheduled"
    assert parent_of(marker) == first.context.span_id
    assert (link.attributes or {}).get("nodedrop.link") == "previous_attempt"


async def test_exported_spans_never_carry_a_secret(
    stack_factory: Callable[[Mapping[str, str]], Stack], exporter: InMemorySpanExporter
) -> None:
    # A node's error quoting a connection string and an API key becomes the
    # node span's status and the execution span's; the exporter sees them masked.
    stack = stack_factory({})
    await stack.start_scheduler()
    await stack.start_worker()
    workflow = wf_pb.Workflow(
        id="wf-leaky",
        name="leaky",
        nodes=[
            wf_pb.Node(id="start", type="manual_trigger"),
            wf_pb.Node(id="leak", type="telemetry_leaky"),
        ],
        connections=[wf_pb.Connection(source="start", target="leak")],
    )
    async with open_channel(stack.scheduler_target) as channel:
        stub = pb_grpc.SchedulerServiceStub(channel)
        request = pb.EnqueueExecutionRequest(
            execution_id="ex-leaky",
            tenant_id="t1",
            workflow=workflow,
            max_attempts=1,
            backoff=Duration(nanos=20_000_000),
        )
        assert (await call(stub.EnqueueExecution, request, metadata=service_metadata())).created
        deadline = time.monotonic() + 15
        while True:
            states = await call(
                stub.GetExecutionStates,
                pb.GetExecutionStatesRequest(execution_ids=["ex-leaky"]),
                metadata=service_metadata(),
            )
            if states.states[0].status == ex.EXECUTION_STATUS_FAILED:
                break
            assert time.monotonic() < deadline, f"not failed: {states.states[0]}"
            await asyncio.sleep(0.05)

    spans = exporter.get_finished_spans()
    failed = [s for s in spans if s.name == "node telemetry_leaky"]
    assert failed, [s.name for s in spans]
    texts: list[str] = []
    for span in spans:
        texts.append(span.status.description or "")
        for attributes in [span.attributes, *(e.attributes for e in span.events)]:
            texts.extend(str(v) for v in (attributes or {}).values())
    assert any("postgresql://app:***@db" in t for t in texts), texts
    leaked = [t for t in texts if LEAKED_PASSWORD in t or LEAKED_KEY in t]
    assert leaked == []
