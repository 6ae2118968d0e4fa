"""Secrets out of exported spans: the log lines' redaction applied to traces.

Spans carry text a process did not write itself: the gRPC instrumentation
records a failed call's exception (message and stack trace), and a driver's
error may quote a connection string. Every span passes through ``Redactor``
on its way to any exporter, as every log line does, so a trace backend never
holds what the logs may not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace.status import Status

from nodedrop.common.redaction import MASK, Redactor, is_secret_name

__all__ = ["RedactingExporter"]


class RedactingExporter(SpanExporter):
    """Wraps an exporter; every span it receives is a redacted copy."""

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._redacted(s) for s in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            status = Status(status.status_code, self._redactor.text(status.description))
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=self._attributes(span.attributes),
            events=[
                Event(e.name, self._attributes(e.attributes), e.timestamp) for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def _attributes(self, attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if attributes is None:
            return None
        return {k: MASK if is_secret_name(k) else self._value(v) for k, v in attributes.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.text(value)
        if isinstance(value, tuple | list):
            return tuple(self._redactor.text(v) if isinstance(v, str) else v for v in value)
        return value
