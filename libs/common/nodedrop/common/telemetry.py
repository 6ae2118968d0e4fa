"""OpenTelemetry tracer provider bootstrap.

Spans go to an OTLP exporter only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
Otherwise they are not recorded at all: the sampler drops them, so the hot
path pays for a span context (logs and job entries still carry trace ids) but
not for attributes, events and end-of-span processing nobody will read.
Tests install an in-memory exporter with ``install_in_memory_tracing``.

Redis and asyncpg calls are instrumented (``instrument_clients``) only when
spans are exported somewhere: the instrumentation wraps every command, and a
process whose spans go nowhere should not pay for it on its hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from nodedrop.common.redaction import Redactor
from nodedrop.common.settings import TelemetrySettings
from nodedrop.common.span_ids import AttemptIdGenerator
from nodedrop.common.span_redaction import RedactingExporter

__all__ = [
    "configure_tracing",
    "install_in_memory_tracing",
    "instrument_clients",
    "shutdown_tracing",
    "spans_exported",
]

_provider: TracerProvider | None = None
# Every exporter gets redacted copies of the spans (see span_redaction).
_redactor = Redactor()
# True once an exporter (OTLP or in-memory) receives this process's spans.
_exporting = False
_instrumented = False


class _RecordWhenExported(Sampler):
    """Records spans only while an exporter receives them (see the module doc)."""

    def should_sample(  # noqa: PLR0917 - the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent_state = trace.get_current_span(parent_context).get_span_context().trace_state
        if _exporting:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent_state)
        return SamplingResult(Decision.DROP, None, parent_state)

    def get_description(self) -> str:
        return "RecordWhenExported"


def configure_tracing(settings: TelemetrySettings) -> TracerProvider:
    """Installs the global tracer provider once; later calls return the first one."""
    global _provider, _redactor  # noqa: PLW0603 - the OTel global is process-wide too
    if _provider is not None:
        return _provider
    _redactor = Redactor(settings.secrets)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.service_name}),
        # Retry links name the previous attempt's marker span by a derived id.
        id_generator=AttemptIdGenerator(),
        sampler=_RecordWhenExported(),
    )
    if settings.otlp_endpoint is not None:
        # Imported here: the exporter pulls in its own gRPC client machinery
        # that a process without an endpoint never needs.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(
            BatchSpanProcessor(
                RedactingExporter(OTLPSpanExporter(endpoint=settings.otlp_endpoint), _redactor)
            )
        )
        _mark_exporting()
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def _mark_exporting() -> None:
    global _exporting  # noqa: PLW0603 - one flag per process, like the provider
    _exporting = True


def spans_exported() -> bool:
    """Whether this process's spans reach an exporter."""
    return _exporting


def instrument_clients() -> bool:
    """Instruments the Redis and asyncpg clients once, when spans are exported.

    Returns whether the clients are instrumented. Called by the server
    lifecycle at start; later calls are free.
    """
    global _instrumented  # noqa: PLW0603 - instrumentation patches process-wide classes
    if _instrumented or not _exporting:
        return _instrumented
    # Imported here: a process that exports nothing never loads them.
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

    RedisInstrumentor().instrument(tracer_provider=_provider)
    AsyncPGInstrumentor().instrument(tracer_provider=_provider)  # type: ignore[no-untyped-call]
    _instrumented = True
    return True


def install_in_memory_tracing(provider: TracerProvider | None = None) -> InMemorySpanExporter:
    """Adds an exporter that keeps finished spans in memory, for tests."""
    exporter = InMemorySpanExporter()
    target = provider or _provider
    if target is None:
        target = configure_tracing(TelemetrySettings("nodedrop-test", None))
    target.add_span_processor(SimpleSpanProcessor(RedactingExporter(exporter, _redactor)))
    if target is _provider:
        _mark_exporting()
    return exporter


def shutdown_tracing() -> None:
    """Flushes pending spans; called once at process exit."""
    if _provider is not None:
        _provider.shutdown()
