"""End-of-run rules: the last commit an attempt's outcome becomes."""

from __future__ import annotations

import time

from nodedrop.runtime.endings import end_of
from nodedrop.runtime.runner import Ending, RunOutcome
from nodedrop.store import EventError, EventType, ExecutionContext, ExecutionStatus


def _ctx(round_attempt: int, max_attempts: int = 3) -> ExecutionContext:
    return ExecutionContext(
        "x1", "t1", "wf1", "{}", "", round_attempt, max_attempts, 2.0, 30.0, "", round_attempt, {}
    )


def test_a_completed_run_ends_with_its_result() -> None:
    t, events = end_of(_ctx(1), RunOutcome(Ending.COMPLETED, result_json='{"a": [1]}'))
    assert t.status is ExecutionStatus.COMPLETED
    assert [(e.type, e.data_json) for e in events] == [
        (EventType.EXECUTION_COMPLETED, '{"a": [1]}')
    ]


def test_a_retryable_failure_with_attempts_left_backs_off_exponentially() -> None:
    err = EventError("boom", "node_error", True)
    before = int(time.time() * 1000)
    t, events = end_of(_ctx(2), RunOutcome(Ending.FAILED, error=err, failed_node="n"))
    assert t.status is ExecutionStatus.RETRY_SCHEDULED
    # The second attempt of the round waits 2 s * 2.
    assert before + 4000 <= t.retry_at_ms <= int(time.time() * 1000) + 4000
    assert events[0].type is EventType.EXECUTION_RETRYING and events[0].node_id == "n"


def test_the_last_retryable_failure_is_dead_lettered_unless_the_job_was_held() -> None:
    outcome = RunOutcome(Ending.FAILED, error=EventError("boom", "x", True), failed_node="n")
    t, events = end_of(_ctx(3), outcome)
    assert (t.status, t.dead_letter_reason, t.failed_node) == (ExecutionStatus.FAILED, "boom", "n")
    assert events[0].type is EventType.EXECUTION_FAILED
    # Direct mode has no retries and no failed queue: the run just fails.
    held, _ = end_of(_ctx(1, max_attempts=1), outcome, dead_letter=False)
    assert held.status is ExecutionStatus.FAILED and not held.dead_letter_reason


def test_a_deliberate_failure_is_never_retried_nor_dead_lettered() -> None:
    outcome = RunOutcome(Ending.FAILED, error=EventError("no", "stop_and_error", False))
    t, _ = end_of(_ctx(1), outcome)
    assert t.status is ExecutionStatus.FAILED and not t.dead_letter_reason


def test_a_timeout_without_an_error_says_how_long() -> None:
    t, events = end_of(_ctx(1), RunOutcome(Ending.TIMED_OUT))
    assert t.status is ExecutionStatus.TIMED_OUT
    err = events[0].error
    assert err is not None and err.message == "execution timed out after 30s"
