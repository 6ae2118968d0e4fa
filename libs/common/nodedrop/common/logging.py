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

from nodedrop.common.settings import LogSettings
from nodedrop.common.tracing import structlog_trace_ids

__all__ = ["add_trace_ids", "configure_logging", "get_logger"]

_configured: LogSettings | None = None


# The processor lives with the rest of the tracing helpers; the old name stays.
add_trace_ids = structlog_trace_ids


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is at that moment.

    structlog's PrintLogger binds the stream object it is given once; a
    process that swaps stderr later (test runners capturing output, daemons
    redirecting it) would then write to a closed file.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = err = critical = fatal = exception = msg


def _stderr_logger_factory(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


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
        structlog_trace_ids,
    ]
    if not console:
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module land on the same stream.
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, force=True)
    _configured = settings


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
