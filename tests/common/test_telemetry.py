"""Spans are recorded only when an exporter receives them."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from nodedrop.common import telemetry


@pytest.mark.parametrize("exporting", [False, True])
def test_spans_are_recorded_only_when_exported(
    monkeypatch: pytest.MonkeyPatch, exporting: bool
) -> None:
    monkeypatch.setattr(telemetry, "_exporting", exporting)
    tracer = TracerProvider(sampler=telemetry._RecordWhenExported()).get_tracer("test")
    with tracer.start_as_current_span("parent") as parent, tracer.start_span("child") as child:
        assert parent.is_recording() is exporting
        # Unrecorded spans still carry a valid context, so logs and job
        # entries keep their trace ids and the trace joins up downstream.
        assert parent.get_span_context().is_valid
        assert child.get_span_context().trace_id == parent.get_span_context().trace_id
