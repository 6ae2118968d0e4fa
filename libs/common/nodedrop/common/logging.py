"""structlog, configured once per process.

Context variables are merged first so ``execution_id`` and friends bound with
``structlog.contextvars`` appear on every line; the current OpenTelemetry
span's ids are added so logs join traces. Output is JSON when stderr is not a
terminal (containers, CI) and a readable console format on one.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from nodedrop.common.settings import LogSettings

__all__ = ["add_trace_ids", "configure_logging", "get_logger"]

_configured: LogSettings | None = None


def add_trace_ids(
    _logger: Any, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(settings: LogSettings) -> None:
    """Idempotent: several services hosted in one process share one configuration."""
    global _configured  # noqa: PLW0603 - process-wide by nature
    if _configured == settings:
        return
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    console = settings.format == "console" or (settings.format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
    ]
    if not console:
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module land on the same stream.
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, force=True)
    _configured = settings


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
