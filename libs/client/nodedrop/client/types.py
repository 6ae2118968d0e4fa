"""The client's domain types: what a caller reads, without protobuf.

Statuses are spelled as the proto's enum names, lower-case, without their
prefix (``EXECUTION_STATUS_COMPLETED`` is ``completed``): the same words the
CLI prints and its ``--status`` filter takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "ApiKey",
    "CreatedApiKey",
    "ErrorInfo",
    "Event",
    "Execution",
    "ExecutionStatus",
    "FailedJob",
    "LaneStats",
    "NodeRun",
    "NodeRunStatus",
    "Problem",
    "QueueStats",
    "Schedule",
    "ScheduleRun",
    "Submission",
    "Workflow",
]


class ExecutionStatus(StrEnum):
    UNSPECIFIED = "unspecified"
    QUEUED = "queued"
    RUNNING = "running"
    RETRY_SCHEDULED = "retry_scheduled"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
        ExecutionStatus.TIMED_OUT,
    }
)


class NodeRunStatus(StrEnum):
    UNSPECIFIED = "unspecified"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    # Not in the proto: a node still running when its execution was cancelled
    # or timed out never reports an end of its own; the client names what
    # stopped it rather than leaving it "running".
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    message: str
    code: str
    node_id: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class NodeRun:
    node_id: str
    status: NodeRunStatus
    attempt: int
    started: datetime | None
    ended: datetime | None
    error: ErrorInfo | None
    # Items per output port (``main`` for most nodes, ``true``/``false`` for an
    # if node, one per case for a switch).
    items: dict[str, int]

    @property
    def duration(self) -> timedelta | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    status: ExecutionStatus
    workflow_id: str | None
    workflow_version: int
    mode: str
    trigger_kind: str
    attempt: int
    max_attempts: int
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    retry_of: str | None
    idempotency_key: str | None
    # In the order the nodes ran (the API orders them by their first event).
    node_runs: tuple[NodeRun, ...]
    # The execution's result: node id -> port -> items of the nodes that end
    # its branches; empty unless asked for (``include_outputs``). Any node's
    # items, whole: ``AsyncClient.output``.
    outputs: dict[str, dict[str, list[Any]]]
    error: ErrorInfo | None
    trace_id: str | None
    # A cron run: its schedule and the tick it ran for.
    schedule_id: str | None = None
    scheduled: datetime | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is ExecutionStatus.COMPLETED

    def output(self, node_id: str, port: str = "main") -> list[Any]:
        """A node's items in the result, for one port (empty when it has none there)."""
        return self.outputs.get(node_id, {}).get(port, [])


@dataclass(frozen=True, slots=True)
class Submission:
    execution_id: str
    status: ExecutionStatus
    # The idempotency key the submission carried (the client makes one when
    # the caller gives none, so that its own retries cannot run it twice).
    idempotency_key: str
    # True when the API had this key already and returned the first execution.
    deduplicated: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    execution_id: str
    sequence: int
    # The proto's event type, lower-case: ``node_completed``, ``execution_failed``...
    type: str
    time: datetime
    workflow_id: str | None
    node_id: str | None
    attempt: int
    data: Any
    error: ErrorInfo | None

    @property
    def terminal(self) -> bool:
        return self.type in _TERMINAL_EVENTS


_TERMINAL_EVENTS = frozenset(
    {"execution_completed", "execution_failed", "execution_cancelled", "execution_timed_out"}
)


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    version: int
    name: str
    # The workflow document (docs/workflows.md): nodes, connections, settings.
    definition: dict[str, Any]
    created: datetime | None = None
    updated: datetime | None = None
    # The version whose triggers (webhooks, schedule) are registered, if any.
    active_version: int | None = None


@dataclass(frozen=True, slots=True)
class Activation:
    """What activating a workflow version registered (docs/webhooks.md)."""

    workflow: Workflow
    # Gateway URL paths: /webhook/<tenant id>/<path>.
    webhook_paths: tuple[str, ...]
    # The schedule of its schedule_trigger, if it has one.
    schedule_id: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """The last run a schedule started."""

    execution_id: str
    # The tick it ran for (the trigger time for a run triggered by hand).
    scheduled: datetime | None
    started: datetime | None
    # None once the queue no longer keeps the execution's state.
    status: ExecutionStatus | None


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    tenant_id: str
    workflow_id: str | None
    cron: str
    timezone: str
    paused: bool
    # The next tick, before its jitter.
    next_fire: datetime | None
    # The policies (docs/workflows.md, "Schedules"): skip, allow or buffer_one.
    overlap: str = "skip"
    # skip or run_last.
    catch_up: str = "skip"
    catch_up_window_s: float = 0.0
    jitter_s: float = 0.0
    last_run: ScheduleRun | None = None
    # The tick waiting for the running run to end (overlap buffer_one).
    buffered: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    prefix: str
    created: datetime | None
    revoked: datetime | None = field(default=None)


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    # Shown once: the API keeps only its hash.
    secret: str
    key: ApiKey


@dataclass(frozen=True, slots=True)
class LaneStats:
    priority: int
    waiting: int
    oldest_waiting_s: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    # None: the whole queue (an operator key); otherwise the key's tenant.
    tenant_id: str | None
    waiting: int
    active: int
    delayed: int
    failed: int
    # The whole queue's figures only (None for one tenant's).
    completed: int | None
    oldest_waiting_s: float | None
    partitions: int | None
    lanes: tuple[LaneStats, ...]


@dataclass(frozen=True, slots=True)
class FailedJob:
    execution_id: str
    tenant_id: str
    workflow_id: str | None
    attempts: int
    reason: str
    node_id: str | None
    failed: datetime | None
