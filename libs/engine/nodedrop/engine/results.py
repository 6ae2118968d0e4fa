"""What one execution is, and how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from nodedrop.engine.errors import ErrorInfo
from nodedrop.engine.model import Items


class ExecutionStatus(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    id: str
    attempt: int = 1
    workflow_id: str = ""
    # Whose execution this is: an opaque key by which a code sandbox shares
    # its runners between tenants. Never shown to the workflow.
    tenant: str = ""

    def as_variable(self, workflow_name: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "attempt": self.attempt,
            "workflow": self.workflow_id or workflow_name,
        }


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    status: ExecutionStatus
    # Terminal node id -> its main output items.
    outputs: dict[str, Items] = field(default_factory=dict)
    error: ErrorInfo | None = None
    # Nodes skipped in this run (for tests and displays).
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is ExecutionStatus.COMPLETED

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "outputs": self.outputs,
            "error": self.error.to_dict() if self.error else None,
        }
