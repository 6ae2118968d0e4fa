"""Domain values of the API: what the repository stores and returns.

Workflow definitions, trigger data, results and errors stay JSON text here:
the API never needs their structure beyond validation, and text keeps
integers integers on every hop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "AdoptedExecution",
    "ApiKeyRecord",
    "ExecutionFilter",
    "ExecutionRecord",
    "NewExecution",
    "NodeRunRecord",
    "NodeStatsRow",
    "RecordedEvent",
    "Scope",
    "StatsRow",
    "Status",
    "WorkflowRecord",
]


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRY_SCHEDULED = "retry_scheduled"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


TERMINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT})
UNFINISHED_STATUSES = frozenset({Status.QUEUED, Status.RUNNING, Status.RETRY_SCHEDULED})


class Scope(enum.StrEnum):
    READ = "read"
    EXECUTE = "execute"
    ADMIN = "admin"
    # Queue administration of every tenant (nodedrop.common.auth.SCOPE_OPERATOR).
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    tenant_id: str
    name: str
    key_hash: bytes
    scopes: tuple[Scope, ...]
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: str
    tenant_id: str
    version: int
    name: str
    definition_json: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewExecution:
    """An execution about to be stored; the id is chosen by the caller."""

    id: str
    tenant_id: str
    workflow_id: str | None
    workflow_version: int
    definition_json: str
    mode: str
    trigger_kind: str
    trigger_data_json: str
    max_attempts: int
    priority: int
    run_at: datetime
    idempotency_key: str | None = None
    retry_of: str | None = None
    trace_id: str = ""
    # True when `definition_json` is exactly the stored version (workflow_id,
    # workflow_version): an adapter may then keep the reference, not a copy.
    definition_is_version: bool = False


@dataclass(frozen=True, slots=True)
class NodeRunRecord:
    node_id: str
    attempt: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error_json: str | None
    output_item_count: int
    outputs_json: str | None


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    id: str
    tenant_id: str
    workflow_id: str | None
    workflow_version: int
    definition_json: str
    status: Status
    mode: str
    trigger_kind: str
    trigger_data_json: str
    attempt: int
    max_attempts: int
    priority: int
    idempotency_key: str | None
    retry_of: str | None
    trace_id: str
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error_json: str | None
    result_json: str | None
    last_sequence: int
    node_runs: tuple[NodeRunRecord, ...] = field(default=())

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    workflow_id: str | None = None
    statuses: tuple[Status, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    # Trigger kinds as stored ("manual", "webhook", ...); empty means any.
    trigger_kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One execution event as the history recorder stores it."""

    execution_id: str
    sequence: int
    type: str
    time: datetime
    node_id: str = ""
    attempt: int = 0
    data_json: str = ""
    error_json: str | None = None


@dataclass(frozen=True, slots=True)
class AdoptedExecution:
    """An execution the history recorder met in the events that PostgreSQL does
    not know (one the scheduler started from a cron schedule)."""

    id: str
    tenant_id: str
    workflow_id: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class NodeStatsRow:
    node_id: str
    runs: int
    failures: int
    p50_s: float | None
    p95_s: float | None


@dataclass(frozen=True, slots=True)
class StatsRow:
    workflow_id: str
    status_counts: tuple[tuple[Status, int], ...]
    total: int
    p50_s: float | None
    p95_s: float | None
    nodes: tuple[NodeStatsRow, ...]


@dataclass(frozen=True, slots=True)
class WebhookRoute:
    """A webhook path of an active workflow: /webhook/<tenant_id>/<path>."""

    tenant_id: str
    path: str
    workflow_id: str
    version: int
    node_id: str


@dataclass(frozen=True, slots=True)
class Activation:
    """The version of a workflow whose triggers are registered."""

    tenant_id: str
    workflow_id: str
    version: int
    schedule_id: str | None
    routes: tuple[WebhookRoute, ...] = ()
