"""Why a service could not start, told in one line, and the exit status that goes with it.

A dependency a service needs before it can serve (PostgreSQL for the API)
that refuses or cannot be reached raises ``DependencyUnavailable`` naming the
dependency and the variable that points at it; ``describe_failure`` turns any
start failure into the line ``nodedrop <service>`` prints and its exit status.
The line is redacted: a driver's error may quote a connection string.
Exit statuses (docs/operations.md):

    0  stopped on SIGTERM/SIGINT after draining
    1  failed for a reason not listed here (the log line has the traceback)
    2  a setting holds a value the service cannot start with
    3  a dependency refused or could not be reached at start
    130 interrupted before it was serving
"""

from __future__ import annotations

from dataclasses import dataclass

from nodedrop.common.redaction import Redactor
from nodedrop.common.settings import SettingsError

__all__ = [
    "EXIT_DEPENDENCY",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_SETTINGS",
    "DependencyUnavailable",
    "StartFailure",
    "describe_failure",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SETTINGS = 2
EXIT_DEPENDENCY = 3

# A driver's message can run to pages (asyncpg quotes server notices).
_MAX_REASON_CHARS = 300


class DependencyUnavailable(Exception):
    """A dependency the service needs to start refused or did not answer."""

    def __init__(self, dependency: str, variable: str, reason: BaseException | str) -> None:
        text = reason if isinstance(reason, str) else _reason(reason)
        super().__init__(f"{dependency} unavailable: {text}")
        self.dependency = dependency
        self.variable = variable
        self.reason = text


@dataclass(frozen=True, slots=True)
class StartFailure:
    line: str
    status: int
    # Whether the traceback is worth logging (a failure nobody foresaw).
    unexpected: bool


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def describe_failure(what: str, exc: BaseException, secrets: tuple[str, ...] = ()) -> StartFailure:
    """The one line for a failed start of ``what`` (``nodedrop api``), and its
    status; ``secrets`` are literal values to mask besides the patterns."""
    redact = Redactor(secrets).text
    if isinstance(exc, SettingsError):
        return StartFailure(f"{what}: {exc}", EXIT_SETTINGS, unexpected=False)
    child_status = getattr(exc, "exit_code", None)
    if isinstance(exc, ChildProcessError) and child_status in (EXIT_SETTINGS, EXIT_DEPENDENCY):
        # Processes of a group (NODEDROP_API_PROCESSES) printed their line.
        return StartFailure(f"{what}: {exc}", child_status, unexpected=False)
    if isinstance(exc, DependencyUnavailable):
        reason = redact(exc.reason)[:_MAX_REASON_CHARS]
        line = (
            f"{what}: cannot start: {exc.dependency} is unavailable ({reason}); "
            f"check {exc.variable}"
        )
        return StartFailure(line, EXIT_DEPENDENCY, unexpected=False)
    reason = redact(_reason(exc))[:_MAX_REASON_CHARS]
    return StartFailure(f"{what}: failed: {reason}", EXIT_FAILED, unexpected=True)
