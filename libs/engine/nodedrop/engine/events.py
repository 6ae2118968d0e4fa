"""Events the engine reports while it runs a workflow."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from nodedrop.engine.errors import ErrorInfo


class EventType(enum.StrEnum):
    EXECUTION_QUEUED = "EXECUTION_QUEUED"
    EXECUTION_STARTED = "EXECUTION_STARTED"
    NODE_STARTED = "NODE_STARTED"
    NODE_COMPLETED = "NODE_COMPLETED"
    NODE_FAILED = "NODE_FAILED"
    NODE_SKIPPED = "NODE_SKIPPED"
    EXECUTION_RETRYING = "EXECUTION_RETRYING"
    EXECUTION_COMPLETED = "EXECUTION_COMPLETED"
    EXECUTION_FAILED = "EXECUTION_FAILED"
    EXECUTION_CANCELLED = "EXECUTION_CANCELLED"
    EXECUTION_TIMED_OUT = "EXECUTION_TIMED_OUT"


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One event. ``time`` is Unix epoch seconds; ``data`` is JSON-ready (for
    NODE_COMPLETED the node's outputs per port, or their summary when they are
    over max_event_bytes; for execution ends the result outputs).

    For NODE_COMPLETED the engine encodes once: ``data_json`` is ``data`` as
    JSON and ``checkpoint_json`` the whole outputs, for the checkpoint.
    """

    type: EventType
    node_id: str | None
    time: float
    data: Any = None
    error: ErrorInfo | None = None
    data_json: str = ""
    checkpoint_json: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "node_id": self.node_id,
            "time": self.time,
            "data": self.data,
            "error": self.error.to_dict() if self.error else None,
        }
