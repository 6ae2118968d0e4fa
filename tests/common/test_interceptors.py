"""nodedrop.common.interceptors: the one server interceptor, against a real
grpc.aio server: log line, latency metric, error mapping, auth, trace context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import orjson
import pytest
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from nodedrop.common import logging as nodedrop_logging
from nodedrop.common import telemetry
from nodedrop.common.auth import Principal, current_principal
from nodedrop.common.errors import NotFound, Unauthenticated
from nodedrop.common.interceptors import ServerCallInterceptor
from nodedrop.common.logging import configure_logging
from nodedrop.common.metrics import Metrics, create_metrics
from nodedrop.common.settings import LogSettings, TelemetrySettings
from nodedrop.common.telemetry import configure_tracing, install_in_memory_tracing
from nodedrop.common.tracing import TRACEPARENT, current_traceparent

KEY = "right-key"
PUBLIC = frozenset({"/test.Echo/Open", "/grpc.health.v1.Health/"})


class Keys:
    async def authenticate(self, credential: str) -> Principal:
        if credential != KEY:
            raise Unauthenticated("invalid api key")
        return Principal(tenant_id="tenant-1", scopes=frozenset({"read"}), key_id="k1")


def _identity(b: bytes) -> bytes:
    return b


async def _say(request: bytes, context: Any) -> bytes:
    if request == b"missing":
        raise NotFound("no such thing")
    if request == b"boom":
        raise RuntimeError("secret internal detail")
    if request == b"aborted":
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now")
    if request == b"whoami":
        return current_principal().tenant_id.encode()
    # The caller's trace continues here: hand back our traceparent.
    return current_traceparent().encode()


async def _count(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()
    if request == b"2":
        raise NotFound("stream ran dry")


@pytest.fixture
def metrics() -> Metrics:
    return create_metrics(CollectorRegistry())


@pytest.fixture
def exporting(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    configure_tracing(TelemetrySettings("nodedrop-test", None))
    memory = install_in_memory_tracing()
    # Other tests of the session run as if nothing exported, as before this one.
    monkeypatch.setattr(telemetry, "_exporting", True)
    try:
        yield memory
    finally:
        memory.shutdown()


@pytest.fixture
def log_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.CaptureFixture[str]]:
    monkeypatch.setattr(nodedrop_logging, "_configured", None)
    configure_logging(LogSettings(level="info", format="json"))
    yield capsys
    structlog.reset_defaults()


async def _server(interceptor: ServerCallInterceptor) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=[interceptor])
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(_say, _identity, _identity)
        for name in ("Say", "Open")
    }
    handlers["Count"] = grpc.unary_stream_rpc_method_handler(_count, _identity, _identity)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


AUTH = (("authorization", f"Bearer {KEY}"),)


async def test_statuses_metric_and_log_line(
    metrics: Metrics, log_lines: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever an earlier test installed: no server span here.
    monkeypatch.setattr(telemetry, "_exporting", False)
    server, target = await _server(ServerCallInterceptor(Keys(), PUBLIC, metrics=metrics))
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            say = channel.unary_unary("/test.Echo/Say", _identity, _identity)
            count = channel.unary_stream("/test.Echo/Count", _identity, _identity)
            assert await say(b"whoami", metadata=AUTH, timeout=5) == b"tenant-1"
            for request, code, details in (
                (b"missing", grpc.StatusCode.NOT_FOUND, "no such thing"),
                (b"boom", grpc.StatusCode.INTERNAL, "internal error"),
                (b"aborted", grpc.StatusCode.FAILED_PRECONDITION, "not now"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await say(request, metadata=AUTH, timeout=5)
                assert info.value.code() == code
                assert "secret" not in (info.value.details() or "")
                if code is not grpc.StatusCode.INTERNAL:
                    assert info.value.details() == details
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await say(b"whoami", metadata=metadata, timeout=5)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # Public: no credentials needed, and no principal set.
            open_ = channel.unary_unary("/test.Echo/Open", _identity, _identity)
            assert await open_(b"", timeout=5) == b""
            assert [r async for r in count(b"3", metadata=AUTH, timeout=5)] == [b"0", b"1", b"2"]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                _ = [r async for r in count(b"2", metadata=AUTH, timeout=5)]
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    finally:
        await server.stop(None)

    def count_of(method: str, code: str) -> float | None:
        return metrics.registry.get_sample_value(
            "nodedrop_request_duration_seconds_count", {"method": method, "code": code}
        )

    assert count_of("/test.Echo/Say", "OK") == 1
    assert count_of("/test.Echo/Say", "NOT_FOUND") == 1
    assert count_of("/test.Echo/Say", "INTERNAL") == 1
    assert count_of("/test.Echo/Say", "FAILED_PRECONDITION") == 1
    assert count_of("/test.Echo/Say", "UNAUTHENTICATED") == 2
    assert count_of("/test.Echo/Open", "OK") == 1
    assert count_of("/test.Echo/Count", "OK") == 1
    assert count_of("/test.Echo/Count", "NOT_FOUND") == 1
    assert count_of("/grpc.health.v1.Health/Check", "OK") is None

    lines = [orjson.loads(line) for line in log_lines.readouterr().err.splitlines()]
    rpc = [(x["method"], x["status"]) for x in lines if x["event"] == "rpc"]
    assert rpc == [
        ("/test.Echo/Say", "OK"),
        ("/test.Echo/Say", "NOT_FOUND"),
        ("/test.Echo/Say", "INTERNAL"),
        ("/test.Echo/Say", "FAILED_PRECONDITION"),
        ("/test.Echo/Say", "UNAUTHENTICATED"),
        ("/test.Echo/Say", "UNAUTHENTICATED"),
        ("/test.Echo/Open", "OK"),
        ("/test.Echo/Count", "OK"),
        ("/test.Echo/Count", "NOT_FOUND"),
        ("/grpc.health.v1.Health/Check", "OK"),
    ]
    (crash,) = [x for x in lines if x["event"] == "unhandled error in rpc"]
    assert crash["method"] == "/test.Echo/Say"


async def test_wrapped_handlers_are_built_once_per_method(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (With spans exported, the span's own wrapper is added per call.)
    monkeypatch.setattr(telemetry, "_exporting", False)
    interceptor = ServerCallInterceptor(None, metrics=metrics)
    handler = grpc.unary_unary_rpc_method_handler(_say, _identity, _identity)

    async def found(_details: Any) -> Any:
        return handler

    class Details:
        method = "/test.Echo/Say"

    first = await interceptor.intercept_service(found, Details())
    assert first is not handler
    assert await interceptor.intercept_service(found, Details()) is first


async def test_caller_trace_continues_when_nothing_exports(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    server, target = await _server(ServerCallInterceptor(None, metrics=metrics))
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            say = channel.unary_unary("/test.Echo/Say", _identity, _identity)
            answer = await say(b"", metadata=((TRACEPARENT, caller),), timeout=5)
            alone = await say(b"", timeout=5)
    finally:
        await server.stop(None)
    # No server span: the handler sees the caller's span as its current one.
    assert answer.decode() == caller
    assert alone == b""


async def test_server_span_when_spans_are_exported(
    metrics: Metrics, exporting: InMemorySpanExporter
) -> None:
    server, target = await _server(ServerCallInterceptor(Keys(), PUBLIC, metrics=metrics))
    tracer = trace.get_tracer("test-client")
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            say = channel.unary_unary("/test.Echo/Say", _identity, _identity)
            with tracer.start_as_current_span("client-root") as root:
                answer = await say(
                    b"", metadata=(*AUTH, (TRACEPARENT, current_traceparent())), timeout=5
                )
            with pytest.raises(grpc.aio.AioRpcError):
                await say(b"boom", metadata=AUTH, timeout=5)
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    finally:
        await server.stop(None)
    server_spans = [s for s in exporting.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in server_spans] == ["/test.Echo/Say", "/test.Echo/Say"]
    ok, failed = server_spans
    assert ok.context.trace_id == root.get_span_context().trace_id
    assert ok.parent is not None and ok.parent.span_id == root.get_span_context().span_id
    # The handler ran inside the server span.
    assert answer.decode().split("-")[2] == f"{ok.context.span_id:016x}"
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
