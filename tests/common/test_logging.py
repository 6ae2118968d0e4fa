from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from nodedrop.common import logging as nodedrop_logging
from nodedrop.common.logging import configure_logging, get_logger
from nodedrop.common.settings import LogSettings
from nodedrop.common.telemetry import install_in_memory_tracing


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    # The test points structlog at its captured stderr, which closes after
    # it: later tests must not log into it.
    yield
    structlog.reset_defaults()


def test_json_lines_carry_context_and_trace_ids(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Configure afresh so the output goes to this test's captured stderr.
    monkeypatch.setattr(nodedrop_logging, "_configured", None)
    configure_logging(LogSettings(level="info", format="json"))
    provider = TracerProvider()
    exporter = install_in_memory_tracing(provider)
    log = get_logger("test")
    with structlog.contextvars.bound_contextvars(execution_id="ex-1"):
        with provider.get_tracer("t").start_as_current_span("work") as span:
            log.info("inside", n=1)
        log.debug("filtered out by level")
    line = orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "inside"
    assert line["execution_id"] == "ex-1"
    assert line["level"] == "info"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert [s.name for s in exporter.get_finished_spans()] == ["work"]
