"""End-of-run rules: how an attempt's outcome becomes its last commit.

A retryable failure with attempts left schedules the next one (exponential
backoff); past the last attempt it is dead-lettered, unless the run was a held
job (direct mode), which has no retries and no failed queue to go to.
"""

from __future__ import annotations

import time

import orjson

from nodedrop.runtime.runner import Ending, RunOutcome
from nodedrop.store import (
    EventDraft,
    EventError,
    EventType,
    ExecutionContext,
    ExecutionStatus,
    Transition,
)


def end_of(
    ctx: ExecutionContext, outcome: RunOutcome, *, dead_letter: bool = True
) -> tuple[Transition, list[EventDraft]]:
    """The attempt's ending transition and its last events."""
    if outcome.ending is Ending.TIMED_OUT:
        err = outcome.error or EventError(
            f"execution timed out after {ctx.timeout_s:g}s", "execution_timeout", False
        )
        return Transition(ExecutionStatus.TIMED_OUT), [
            EventDraft(EventType.EXECUTION_TIMED_OUT, outcome.failed_node, error=err)
        ]
    if outcome.ending is Ending.CANCELLED:
        return Transition(ExecutionStatus.CANCELLED), [
            EventDraft(EventType.EXECUTION_CANCELLED, error=outcome.error)
        ]
    if outcome.ending is Ending.COMPLETED:
        return Transition(ExecutionStatus.COMPLETED), [
            EventDraft(EventType.EXECUTION_COMPLETED, data_json=outcome.result_json or "{}")
        ]
    err = outcome.error or EventError("execution failed", "FAILED", True)
    if err.retryable and ctx.attempts_left > 0:
        delay = ctx.backoff_s * 2 ** (ctx.round_attempt - 1)
        data = orjson.dumps({"delay_s": delay}).decode()
        retry_at = int(time.time() * 1000) + int(delay * 1000)
        return Transition(ExecutionStatus.RETRY_SCHEDULED, retry_at_ms=retry_at), [
            EventDraft(EventType.EXECUTION_RETRYING, outcome.failed_node, data, err)
        ]
    failed = [EventDraft(EventType.EXECUTION_FAILED, outcome.failed_node, error=err)]
    if not err.retryable or not dead_letter:
        # A deliberate failure (stop_and_error, invalid workflow): retrying cannot help.
        return Transition(ExecutionStatus.FAILED), failed
    return (
        Transition(
            ExecutionStatus.FAILED,
            dead_letter_reason=err.message,
            failed_node=outcome.failed_node,
        ),
        failed,
    )
