"""structlog, configured once per process.

Context variables are merged first so ``execution_id`` and friends bound with
``structlog.contextvars`` appear on every line; the current OpenTelemetry
span's ids are added so logs join traces. Output is JSON when stderr is not a
terminal (containers, CI) and a readable console format on one.

Every line, whether from structlog or from a library using the standard
``logging`` module (asyncpg, grpc, websockets), goes through the same steps:
exceptions rendered without frame locals (a local holding a connection string
or a caller's key would be printed verbatim), one redaction step
(``nodedrop.common.redaction``) over the event, every value and the exception
text, then a bound on the rendered line's size: a longer line is replaced by
a shorter one with ``truncated`` (the original size in bytes) so the cut is
visible. Uncaught exceptions are logged the same way rather than printed.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any

import orjson
import structlog

from nodedrop.common.redaction import Redactor
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


# Fields a cut line keeps as they are: what it is, when, and what it belongs to.
_KEPT_FIELDS = ("level", "timestamp", "logger", "trace_id", "span_id", "execution_id", "method")
_CUT_MARK = "...[cut]"
# A hidden field: bytes removed from oversized values before rendering.
_REMOVED = "_nodedrop_removed_bytes"
_EXCEPTION_FIELDS = ("exception", "exc_info")

_SCALARS = (bool, int, float)

EventDict = MutableMapping[str, Any]
Processor = Callable[[Any, str, EventDict], Any]


def _redacting(redactor: Redactor, max_value_chars: int) -> Processor:
    """Masks secrets in every value of the event (the event text and the
    rendered exception included), cutting any single string longer than a
    whole line may be before the patterns run over it."""

    def redact(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        removed = 0
        for key, value in event_dict.items():
            if isinstance(value, str):
                text = value
                if len(text) > max_value_chars:
                    removed += len(text[max_value_chars:].encode("utf-8", "replace"))
                    text = text[:max_value_chars] + _CUT_MARK
                event_dict[key] = redactor.text(text)
            elif value is not None and not isinstance(value, _SCALARS):
                event_dict[key] = redactor.value(value)
        if removed:
            event_dict[_REMOVED] = removed
        return event_dict

    return redact


def _bounded(render: Processor, max_line_bytes: int) -> Processor:
    """Renders the event; a line over the bound is rendered again from its
    kept fields, the start of the event text, the start of the rest, and
    ``truncated``: the size the line had (before any value was cut)."""

    def bounded(logger: Any, method: str, event_dict: EventDict) -> Any:
        removed = event_dict.pop(_REMOVED, 0)
        line = render(logger, method, event_dict)
        # A character is at most 4 bytes: short lines need no encoding to measure.
        if not removed and len(line) * 4 <= max_line_bytes:
            return line
        size = len(line.encode("utf-8", "replace")) if isinstance(line, str) else len(line)
        if size <= max_line_bytes and not removed:
            return line
        cut: dict[str, Any] = {
            k: _clip(v, 256) if isinstance(v, str) else v
            for k, v in event_dict.items()
            if k in _KEPT_FIELDS
        }
        budget = max_line_bytes // 4
        cut["event"] = _clip(str(event_dict.get("event", "")), budget)
        exception = event_dict.get("exception")
        if exception is not None:
            text = exception if isinstance(exception, str) else _json_text(exception)
            cut["exception"] = _clip(text, budget)
        rest = {k: v for k, v in event_dict.items() if k not in cut and k != "event"}
        if rest:
            cut["fields"] = _clip(_json_text(rest), budget)
        cut["truncated"] = size + removed
        return render(logger, method, cut)

    return bounded


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        # Deeper than orjson goes, or keys it cannot write.
        return repr(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + _CUT_MARK


def _exception_step(console: bool) -> Processor:
    if console:
        # Plain text, rendered before redaction; the console renderer's own
        # (rich) tracebacks would show every frame's locals.
        return structlog.processors.format_exc_info
    return structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )


class _StderrHandler(logging.Handler):
    """Standard-library records, formatted by the same processors, to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            print(message, file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    get_logger("nodedrop").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_uncaught_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    get_logger("nodedrop").critical(
        "uncaught exception in thread",
        thread=getattr(args.thread, "name", None),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def configure_logging(settings: LogSettings) -> None:
    """Idempotent: several services hosted in one process share one configuration."""
    global _configured  # noqa: PLW0603 - process-wide by nature
    if _configured == settings:
        return
    level = logging.getLevelNamesMapping()[settings.level.upper()]
    console = settings.format == "console" or (settings.format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    redactor = Redactor(settings.secrets)
    redact = _redacting(redactor, settings.max_line_bytes)
    exceptions = _exception_step(console)
    bounded = _bounded(renderer, settings.max_line_bytes)
    # Redaction runs after exceptions are rendered to data and before the
    # timestamp (whose colons would send it down the slow path every line).
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        exceptions,
        redact,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog_trace_ids,
        bounded,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
    # Libraries that use the standard logging module land on the same stream,
    # through the same exception rendering, redaction and bound.
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                exceptions,
                redact,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                bounded,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_thread
    _configured = settings


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
