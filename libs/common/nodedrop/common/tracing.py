"""Tracing helpers: one OpenTelemetry trace per execution.

The trace of an execution is built from these pieces, each made here so every
service builds it the same way:

    ExecuteWorkflow                 (api, SERVER span, gRPC interceptor)
    └── EnqueueExecution            (scheduler, SERVER span, parent from gRPC metadata)
        └── enqueue                 (scheduler, PRODUCER span: enqueue_span)
            ├── execution attempt 1 (worker, CONSUMER span: execution_span,
            │   ├── node <type>      parent = the job entry's traceparent)
            │   └── node <type>     (node_span, one per node run)
            └── execution attempt 2 (parent = the same traceparent,
                └── node <type>      linked to attempt 1's span)

The job entry carries the W3C ``traceparent`` of the enqueue span; every
attempt of the execution keeps that same value, so every attempt lands in one
trace under one parent. A retry also carries the failed attempt's own
traceparent (``previous_traceparent``), which becomes a span link: the trace
view shows the attempts side by side and jumps from one to the one before.

The queue keeps no field for that traceparent, so the link is made without
it: the attempt that schedules a retry records a ``retry scheduled`` marker
span (``mark_retry``) whose id is derived from the trace, the execution and
the attempt number (``nodedrop.common.span_ids``); the next attempt's
execution span derives the same id and links to it. The marker is a child of
the failed attempt's execution span, one click away in the trace view.

Export is configured elsewhere (``nodedrop.common.telemetry``) and only by
the standard OTEL_* variables; without a configured SDK every helper here is
a cheap no-op, as the OpenTelemetry API promises.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from nodedrop.common.span_ids import attempt_span_id, forced_span_id

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_EXECUTION_ID",
    "ATTR_NODE_ID",
    "ATTR_NODE_TYPE",
    "ATTR_PARTITION",
    "ATTR_TENANT_ID",
    "ATTR_WORKFLOW_ID",
    "TRACEPARENT",
    "TRACER_NAME",
    "NodeSpans",
    "client_interceptors",
    "context_from_metadata",
    "context_from_traceparent",
    "current_traceparent",
    "enqueue_span",
    "execution_span",
    "link_to",
    "mark_failed",
    "mark_retry",
    "metadata_with_trace",
    "node_span",
    "server_interceptor",
    "structlog_trace_ids",
    "trace_id_of",
    "traceparent_of",
    "unrecorded_enqueue_traceparent",
]

TRACER_NAME = "nodedrop"
TRACEPARENT = "traceparent"

# W3C trace context only (no baggage): the job entry has room for one
# traceparent, and that is all a worker needs to join the trace.
_PROPAGATOR = TraceContextTextMapPropagator()

# Attribute names, kept together so a trace query uses the same spelling.
ATTR_EXECUTION_ID = "nodedrop.execution.id"
ATTR_ATTEMPT = "nodedrop.execution.attempt"
ATTR_WORKFLOW_ID = "nodedrop.workflow.id"
ATTR_TENANT_ID = "nodedrop.tenant.id"
ATTR_NODE_ID = "nodedrop.node.id"
ATTR_NODE_TYPE = "nodedrop.node.type"
ATTR_PARTITION = "nodedrop.partition"


def _tracer(tracer: Tracer | None) -> Tracer:
    return tracer if tracer is not None else trace.get_tracer(TRACER_NAME)


# -- propagation ---------------------------------------------------------------


def traceparent_of(span: Span) -> str:
    """The W3C traceparent naming ``span``; empty for a non-recording no-op span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT, "")


def current_traceparent() -> str:
    """The traceparent of the current span, to store in a job entry or a
    request's ``traceparent`` field; empty when there is no valid span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def context_from_traceparent(traceparent: str | None) -> Context:
    """A context whose current span is the remote one named by ``traceparent``.

    An empty or malformed value yields an empty context, so the span started
    in it begins a new trace instead of failing the job: tracing must never
    stop work.
    """
    if not traceparent:
        return Context()
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}, context=Context())


def link_to(traceparent: str | None) -> Link | None:
    """A span link to the span named by ``traceparent``, or None if it names none."""
    span_context = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    if not span_context.is_valid:
        return None
    return Link(span_context, attributes={"nodedrop.link": "previous_attempt"})


def metadata_with_trace(
    metadata: Sequence[tuple[str, str]] = (),
) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata plus the current trace context.

    Only for channels built without :func:`client_interceptors` (which inject
    it themselves), e.g. a raw channel in a test.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return (*metadata, *carrier.items())


def context_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
    """The remote trace context carried in gRPC invocation metadata."""
    carrier: MutableMapping[str, str] = {}
    for key, value in metadata or ():
        if isinstance(value, str):
            carrier[key.lower()] = value
    return _PROPAGATOR.extract(carrier, context=Context())


# -- gRPC instrumentation ----------------------------------------------------


def server_interceptor(tracer_provider: trace.TracerProvider | None = None) -> Any:
    """The OpenTelemetry grpc.aio server interceptor, with ``grpc.*`` left out.

    The interceptor breaks handlers that write with ``await context.write()``,
    the standard Health.Watch among them; health and reflection calls are also
    noise in a trace. Put it first in the server's interceptor list so the
    server span covers the others (error mapping, auth, latency).
    """
    return aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=tracer_provider,
        filter_=filters.negate(filters.service_prefix("grpc.")),
    )


def client_interceptors(tracer_provider: trace.TracerProvider | None = None) -> list[Any]:
    """Client interceptors for ``grpc.aio`` channels: a CLIENT span per call and
    the traceparent sent in the metadata, so the callee's span joins the trace."""
    return list(aio_client_interceptors(tracer_provider=tracer_provider))  # type: ignore[no-untyped-call]


# -- spans of an execution ---------------------------------------------------


@contextmanager
def enqueue_span(
    execution_id: str,
    *,
    partition: int | None = None,
    parent_traceparent: str | None = None,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """The PRODUCER span around putting an execution's first attempt on the
    queue; store ``current_traceparent()`` (taken inside it) in the job entry.

    ``parent_traceparent`` is the request's ``traceparent`` field. The span is
    a child of the current span (the RPC's server span) when that belongs to
    the same trace, or when the field is empty; the field wins only for a
    caller that sent it without trace metadata, so the trace stays one tree.
    """
    parent = _enqueue_parent(parent_traceparent)
    attributes: dict[str, str | int] = {
        ATTR_EXECUTION_ID: execution_id,
        "messaging.system": "redis",
        "messaging.operation.type": "send",
    }
    if partition is not None:
        attributes[ATTR_PARTITION] = partition
    with _tracer(tracer).start_as_current_span(
        "enqueue", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


_IDS = RandomIdGenerator()


def unrecorded_enqueue_traceparent(parent_traceparent: str | None = None) -> str:
    """What ``current_traceparent()`` gives inside :func:`enqueue_span` when nothing
    records spans (the sampler drops them): a new span id under the same parent,
    or in a new trace, not sampled. For a hot path that would otherwise start,
    make current and end a span only to name it."""
    parent = trace.get_current_span(_enqueue_parent(parent_traceparent)).get_span_context()
    trace_id = parent.trace_id if parent.is_valid else _IDS.generate_trace_id()
    return f"00-{trace_id:032x}-{_IDS.generate_span_id():016x}-00"


def _enqueue_parent(parent_traceparent: str | None) -> Context | None:
    if not parent_traceparent:
        return None
    remote = context_from_traceparent(parent_traceparent)
    remote_ctx = trace.get_current_span(remote).get_span_context()
    current = trace.get_current_span().get_span_context()
    if not remote_ctx.is_valid or (current.is_valid and current.trace_id == remote_ctx.trace_id):
        return None
    return remote


def _previous_attempt_link(traceparent: str | None, execution_id: str, attempt: int) -> Link | None:
    """A link to the marker the previous attempt left (``mark_retry``), if any."""
    if attempt <= 1:
        return None
    parent = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    if not parent.is_valid:
        # No shared trace: attempts are separate traces, the marker's id
        # cannot be derived.
        return None
    marker = SpanContext(
        parent.trace_id,
        attempt_span_id(parent.trace_id, execution_id, attempt - 1),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return Link(marker, attributes={"nodedrop.link": "previous_attempt"})


@contextmanager
def execution_span(
    execution_id: str,
    attempt: int,
    *,
    traceparent: str | None,
    previous_traceparent: str | None = None,
    workflow_id: str = "",
    tenant_id: str = "",
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """The worker's CONSUMER span for one attempt of an execution.

    ``traceparent`` is the job entry's (the enqueue span, the same for every
    attempt); ``previous_traceparent`` names the failed attempt's execution
    span on a retry and becomes a link. The span is made current, so node
    spans, Redis calls and log lines inside it join the trace. An exception
    escaping the block marks the span as an error and is re-raised.
    """
    candidates = (
        link_to(previous_traceparent),
        _previous_attempt_link(traceparent, execution_id, attempt),
    )
    links = [link for link in candidates if link is not None]
    attributes: dict[str, str | int] = {
        ATTR_EXECUTION_ID: execution_id,
        ATTR_ATTEMPT: attempt,
        "messaging.system": "redis",
        "messaging.operation.type": "process",
    }
    if workflow_id:
        attributes[ATTR_WORKFLOW_ID] = workflow_id
    if tenant_id:
        attributes[ATTR_TENANT_ID] = tenant_id
    with _tracer(tracer).start_as_current_span(
        "execution",
        context=context_from_traceparent(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    ) as span:
        yield span


@contextmanager
def node_span(
    node_id: str,
    node_type: str,
    *,
    tracer: Tracer | None = None,
) -> Iterator[Span]:
    """An INTERNAL span for one node run, child of the current (execution) span.

    Named after the node type so span names stay few; the node id is an
    attribute. A node that fails without raising (the engine reports it)
    should call :func:`mark_failed`.
    """
    with _tracer(tracer).start_as_current_span(
        f"node {node_type}",
        attributes={ATTR_NODE_ID: node_id, ATTR_NODE_TYPE: node_type},
    ) as span:
        yield span


def mark_failed(span: Span, message: str) -> None:
    """Mark a span as failed for an error that was reported, not raised."""
    span.set_status(Status(StatusCode.ERROR, message))


def mark_retry(execution_id: str, attempt: int, *, tracer: Tracer | None = None) -> None:
    """Records, under the current (execution) span, that ``attempt`` ends in a
    retry: a zero-length ``retry scheduled`` span whose id the next attempt
    derives to link to. Call it inside :func:`execution_span`."""
    current = trace.get_current_span().get_span_context()
    if not current.is_valid:
        return
    token = forced_span_id.set(attempt_span_id(current.trace_id, execution_id, attempt))
    try:
        span = _tracer(tracer).start_span(
            "retry scheduled",
            attributes={ATTR_EXECUTION_ID: execution_id, ATTR_ATTEMPT: attempt},
        )
    finally:
        forced_span_id.reset(token)
    span.end()


class NodeSpans:
    """One span per node run, built from the engine's node events.

    Nodes of one execution can run concurrently, so their spans are started
    and ended explicitly (never made current) under the execution span, with
    the engine's own event times. A node still open when the run ends (the
    run was cancelled or timed out) is ended as failed by :meth:`close`.
    """

    __slots__ = ("_open", "_parent", "_tracer")

    def __init__(self, parent: Span, *, tracer: Tracer | None = None) -> None:
        self._parent = trace.set_span_in_context(parent)
        self._tracer = _tracer(tracer)
        self._open: dict[str, tuple[Span, float]] = {}

    def started(self, node_id: str, node_type: str, at_s: float) -> None:
        span = self._tracer.start_span(
            f"node {node_type}",
            context=self._parent,
            attributes={ATTR_NODE_ID: node_id, ATTR_NODE_TYPE: node_type},
            start_time=int(at_s * 1e9),
        )
        previous = self._open.pop(node_id, None)
        if previous is not None:
            previous[0].end()
        self._open[node_id] = (span, at_s)

    def finished(self, node_id: str, at_s: float, *, error: str | None = None) -> float | None:
        """Ends the node's span; returns its run time, None if it never started."""
        entry = self._open.pop(node_id, None)
        if entry is None:
            return None
        span, started = entry
        if error is not None:
            mark_failed(span, error)
        span.end(end_time=int(at_s * 1e9))
        return max(0.0, at_s - started)

    def close(self, reason: str) -> None:
        for span, _ in self._open.values():
            mark_failed(span, reason)
            span.end()
        self._open.clear()


# -- logs ----------------------------------------------------------------------


def trace_id_of(traceparent: str) -> str:
    """The trace id (32 hex digits) a W3C ``traceparent`` names, or '' if none."""
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return ""
    try:
        int(parts[1], 16)
    except ValueError:
        return ""
    return parts[1]


def structlog_trace_ids(
    _logger: object, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor adding ``trace_id`` and ``span_id`` of the current span.

    Cheap when no span is active (one context-variable read). execution_id is
    bound by the services with structlog's contextvars, not here.
    """
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict
