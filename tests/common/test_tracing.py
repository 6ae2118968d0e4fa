"""nodedrop.common.tracing: propagation, execution/node spans, gRPC filter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from nodedrop.common.span_ids import attempt_span_id
from nodedrop.common.tracing import (
    ATTR_ATTEMPT,
    client_interceptors,
    context_from_metadata,
    context_from_traceparent,
    current_traceparent,
    enqueue_span,
    execution_span,
    link_to,
    mark_failed,
    metadata_with_trace,
    node_span,
    server_interceptor,
    structlog_trace_ids,
    trace_id_of,
    traceparent_of,
    unrecorded_enqueue_traceparent,
)


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    # A private provider: the global one belongs to whoever configured it first.
    tp = TracerProvider()
    exporter = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    yield tp, exporter
    tp.shutdown()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_execution_trace_tree_with_retry_link(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tp, exporter = provider
    tracer = tp.get_tracer("test")
    with tracer.start_as_current_span("ExecuteWorkflow") as api_span:
        request_traceparent = current_traceparent()
    # The scheduler gets the traceparent through the request, in another task.
    with enqueue_span("ex-1", partition=7, parent_traceparent=request_traceparent, tracer=tracer):
        job_traceparent = current_traceparent()

    attempt_spans: list[trace.Span] = []
    with (
        pytest.raises(RuntimeError),
        execution_span(
            "ex-1", 1, traceparent=job_traceparent, workflow_id="wf", tracer=tracer
        ) as first,
    ):
        attempt_spans.append(first)
        with node_span("start", "manual_trigger", tracer=tracer):
            pass
        with node_span("call", "http_request", tracer=tracer):
            raise RuntimeError("503")
    first_traceparent = traceparent_of(attempt_spans[0])
    with (
        execution_span(
            "ex-1",
            2,
            traceparent=job_traceparent,
            previous_traceparent=first_traceparent,
            tracer=tracer,
        ),
        node_span("call", "http_request", tracer=tracer),
    ):
        pass

    spans = exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {api_span.get_span_context().trace_id}
    (enqueue,) = by_name(spans, "enqueue")
    attempt1, attempt2 = sorted(
        by_name(spans, "execution"), key=lambda s: str((s.attributes or {}).get(ATTR_ATTEMPT))
    )
    assert (
        enqueue.parent is not None and enqueue.parent.span_id == api_span.get_span_context().span_id
    )
    assert enqueue.kind is SpanKind.PRODUCER
    for attempt in (attempt1, attempt2):
        assert attempt.kind is SpanKind.CONSUMER
        assert attempt.parent is not None and attempt.parent.span_id == enqueue.context.span_id
    assert attempt1.links == ()
    # An explicit previous traceparent, then the derived id of the marker
    # attempt 1 would have left had it scheduled the retry (mark_retry).
    assert [link.context.span_id for link in attempt2.links] == [
        attempt1.context.span_id,
        attempt_span_id(enqueue.context.trace_id, "ex-1", 1),
    ]
    assert attempt1.attributes is not None and attempt1.attributes["nodedrop.workflow.id"] == "wf"

    nodes = [s for s in spans if s.name.startswith("node ")]
    assert [(s.attributes or {})["nodedrop.node.id"] for s in nodes] == ["start", "call", "call"]
    assert [s.parent.span_id for s in nodes if s.parent] == [
        attempt1.context.span_id,
        attempt1.context.span_id,
        attempt2.context.span_id,
    ]
    assert nodes[1].status.status_code is StatusCode.ERROR
    assert attempt1.status.status_code is StatusCode.ERROR  # the exception crossed it
    assert attempt2.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("bad", ["", None, "garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_bad_traceparent_starts_a_new_trace(
    provider: tuple[TracerProvider, InMemorySpanExporter], bad: str | None
) -> None:
    tp, exporter = provider
    assert not trace.get_current_span(context_from_traceparent(bad)).get_span_context().is_valid
    assert link_to(bad) is None
    with execution_span(
        "ex-2", 1, traceparent=bad, previous_traceparent=bad, tracer=tp.get_tracer("t")
    ):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.links == ()


def test_traceparent_round_trip_and_metadata(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tp, _ = provider
    assert current_traceparent() == ""
    assert metadata_with_trace((("x-key", "v"),)) == (("x-key", "v"),)
    with tp.get_tracer("t").start_as_current_span("outer") as span:
        ctx = span.get_span_context()
        tp_text = current_traceparent()
        assert tp_text == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        metadata = metadata_with_trace((("x-key", "v"),))
    assert metadata == (("x-key", "v"), ("traceparent", tp_text))
    remote = trace.get_current_span(
        context_from_metadata([("Traceparent", tp_text), ("bin", b"\x00")])
    )
    assert remote.get_span_context().span_id == ctx.span_id
    assert remote.get_span_context().is_remote
    assert not trace.get_current_span(context_from_metadata(None)).get_span_context().is_valid


def test_mark_failed(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    tp, exporter = provider
    with node_span("n", "if", tracer=tp.get_tracer("t")) as span:
        mark_failed(span, "expression error at 1:4")
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "node if"
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "expression error at 1:4"


def test_structlog_processor(provider: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    tp, _ = provider
    assert structlog_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    with tp.get_tracer("t").start_as_current_span("s") as span:
        ctx = span.get_span_context()
        out = structlog_trace_ids(None, "info", {"event": "x"})
    assert out == {
        "event": "x",
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
    }


def _identity(b: bytes) -> bytes:
    return b


async def _say(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    # The caller's trace continues here: hand back our traceparent.
    return current_traceparent().encode()


async def test_grpc_interceptors_trace_calls_but_leave_health_alone(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tp, exporter = provider
    server = grpc.aio.server(interceptors=[server_interceptor(tp)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Echo",
                {"Say": grpc.unary_unary_rpc_method_handler(_say, _identity, _identity)},
            ),
        )
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=client_interceptors(tp)
        ) as channel:
            with tp.get_tracer("t").start_as_current_span("client-root") as root:
                answer = await channel.unary_unary("/test.Echo/Say", _identity, _identity)(
                    b"", timeout=5
                )
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            # Health.Watch is the handler the interceptor would break.
            watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
    finally:
        await server.stop(None)

    spans = exporter.get_finished_spans()
    server_spans = [s for s in spans if s.kind is SpanKind.SERVER]
    assert [s.name for s in server_spans] == ["/test.Echo/Say"]
    (say_server,) = server_spans
    assert say_server.context.trace_id == root.get_span_context().trace_id
    assert answer.decode().split("-")[1] == f"{root.get_span_context().trace_id:032x}"


def test_unrecorded_enqueue_traceparent_names_a_new_span_under_the_parent() -> None:
    fresh = unrecorded_enqueue_traceparent()
    version, trace_id, span_id, flags = fresh.split("-")
    assert (version, flags) == ("00", "00")
    assert int(trace_id, 16) and int(span_id, 16)
    assert unrecorded_enqueue_traceparent().split("-")[1] != trace_id
    # enqueue_span's rule: the current span is the parent, unless the
    # request's field names another trace.
    field = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    child = unrecorded_enqueue_traceparent(field).split("-")
    assert child[1] == "0af7651916cd43dd8448eb211c80319c"
    assert child[2] != "b7ad6b7169203331"
    current = trace.SpanContext(0xABC, 0xDEF, is_remote=True)
    with trace.use_span(trace.NonRecordingSpan(current)):
        assert unrecorded_enqueue_traceparent().split("-")[1] == f"{0xABC:032x}"
        assert unrecorded_enqueue_traceparent(field).split("-")[1] == child[1]


def test_trace_id_of_reads_a_traceparent_and_rejects_anything_else() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(f"00-{tid}-00f067aa0ba902b7-01") == tid
    for bad in (
        "",
        "garbage",
        f"00-{tid}-00f067aa0ba902b7",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{'z' * 32}-00f067aa0ba902b7-01",
        f"00-{tid[:-1]}-00f067aa0ba902b7-01",
    ):
        assert trace_id_of(bad) == "", bad
