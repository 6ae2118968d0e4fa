"""Domain values the queue ports exchange.

The values a worker builds for every execution (Delivery, Lease,
ExecutionContext, Acquired, Transition, Commit, CommitResult, and EventDraft
in records) are NamedTuples: as immutable as the frozen dataclasses around
them, and built in a fraction of the time (a frozen dataclass sets each field
through object.__setattr__, and a worker builds a dozen of them per
execution; docs/benchmarks.md, Queue).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from nodedrop.store.records import EventDraft, EventError, EventRecord


class ExecutionStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    RETRY_SCHEDULED = "RETRY_SCHEDULED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMED_OUT,
    }
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the scheduler stores and queues for a new execution."""

    execution_id: str
    tenant_id: str
    workflow_id: str
    workflow_json: str
    trigger_json: str = ""
    priority: int = 0
    # Absolute due time; 0 means now.
    run_at_ms: int = 0
    # The execution's settings, always given: their defaults live with the
    # workflow settings in the engine, not here.
    max_attempts: int = field(kw_only=True)
    backoff_s: float = field(kw_only=True)
    timeout_s: float = field(kw_only=True)
    traceparent: str = ""
    # Node id -> outputs JSON of nodes completed before (resume of a retry).
    completed_outputs: Mapping[str, str] = field(default_factory=dict)
    # The attempt to start at: 1 for a new execution; orphan recovery passes
    # the attempt PostgreSQL recorded, so losing Redis never resets the count.
    attempt: int = 1

    @property
    def attempt_base(self) -> int:
        """First attempt of the round ``attempt`` belongs to, as far as it can be
        told without the round's history: never more than ``max_attempts``
        attempts are left counting from it."""
        return max(1, self.attempt - self.max_attempts + 1)


@dataclass(frozen=True, slots=True)
class RestoredFailure:
    """A dead-lettered execution PostgreSQL knows and Redis lost: put back in the
    failed queue as it was (``spec.attempt`` the attempt it failed at)."""

    spec: JobSpec
    last_sequence: int
    reason: str
    failed_node: str
    fail_time_ms: int


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    execution_id: str
    status: ExecutionStatus
    created: bool


class Delivery(NamedTuple):
    """One job stream entry handed to a worker."""

    partition: int
    lane: int
    entry_id: str
    execution_id: str
    attempt: int
    traceparent: str
    enqueued_at_ms: int


class Lease(NamedTuple):
    """A worker's hold on one attempt; every write it makes is checked against ``fence``."""

    execution_id: str
    partition: int
    lane: int
    entry_id: str
    fence: int


class ExecutionContext(NamedTuple):
    execution_id: str
    tenant_id: str
    workflow_id: str
    workflow_json: str
    trigger_json: str
    # Attempt number over the execution's life (events carry it).
    attempt: int
    # Attempts allowed per round; a retry from the failed queue starts a new round.
    max_attempts: int
    backoff_s: float
    timeout_s: float
    traceparent: str
    # 1 for the first attempt of the round: the exponent of the backoff.
    round_attempt: int
    # Node id -> outputs JSON of nodes already completed (checkpoints).
    outputs: Mapping[str, str]

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.round_attempt)


class Acquired(NamedTuple):
    """Outcome of acquiring one delivery: a lease to run, or nothing to do (entry acked)."""

    delivery: Delivery
    lease: Lease | None
    context: ExecutionContext | None
    # When no lease: why ("unknown", "terminal", "stale", "cancelled").
    skipped: str = ""


@dataclass(frozen=True, slots=True)
class Renewal:
    ok: bool
    cancel_requested: bool
    # Why, as the caller of cancel gave it (None when no cancel was asked for).
    cancel_error: EventError | None = None


DEFAULT_CANCEL_REASON = "cancelled by request"
MAX_CANCEL_REASON = 1000


def cancel_error(reason: str) -> EventError:
    """The error an execution cancelled for ``reason`` ends with (its CANCELLED event's)."""
    return EventError(reason or DEFAULT_CANCEL_REASON, "cancelled", False)


def cancel_reason(error: EventError | None) -> str:
    """What a run is stopped with, from the cancel's error where one was kept."""
    return error.message if error is not None else DEFAULT_CANCEL_REASON


class Transition(NamedTuple):
    """How a fenced commit ends the attempt.

    ``status`` RETRY_SCHEDULED puts the next attempt on the delayed set at
    ``retry_at_ms``; a terminal status cuts TTLs to EXECUTION_COMPLETION_TTL,
    except FAILED with ``dead_letter_reason`` which parks the job in the failed
    queue (its state keeps EXECUTION_STATE_TTL so it can be retried).
    """

    status: ExecutionStatus
    retry_at_ms: int = 0
    dead_letter_reason: str = ""
    failed_node: str = ""


_NO_OUTPUTS: Mapping[str, str] = MappingProxyType({})


class Commit(NamedTuple):
    """One atomic, fenced write: node outputs, events, and optionally the end of the attempt."""

    lease: Lease
    outputs: Mapping[str, str] = _NO_OUTPUTS
    events: tuple[EventDraft, ...] = ()
    transition: Transition | None = None
    # 1, 2, ... per lease: a commit resent after a lost reply is applied once.
    # 0 skips the check.
    number: int = 0


class CommitResult(NamedTuple):
    """``ok`` False: the fence refused the write (another worker owns the execution)."""

    ok: bool
    # Sequence of the first event written; the others follow without gaps.
    first_sequence: int = 0
    # True when the commit number had been applied before (nothing written now).
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    execution_id: str
    tenant_id: str
    status: ExecutionStatus
    attempt: int
    cancel_requested: bool
    # The cancel's error (its reason), when one was asked for.
    cancel_error: EventError | None = None


@dataclass(frozen=True, slots=True)
class FailedJob:
    execution_id: str
    tenant_id: str
    workflow_id: str
    attempts: int
    reason: str
    node_id: str
    fail_time_ms: int


@dataclass(frozen=True, slots=True)
class LaneStats:
    priority: int
    waiting: int
    oldest_waiting_age_ms: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int
    oldest_waiting_age_ms: int
    lanes: tuple[LaneStats, ...]
    partitions: int


@dataclass(frozen=True, slots=True)
class ReclaimReport:
    requeued: int = 0
    dead_lettered: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class TailEntry:
    partition: int
    entry_id: str
    record: EventRecord
