"""The event record: one event of one execution, and its Redis stream encoding.

A stream entry (both ``exec:<id>:ev`` and the partition's ``events``) holds::

    x   execution id          s   sequence (decimal, from 1, gap-free)
    t   type name (EventType) ts  time, ms since the epoch
    w   workflow id           tn  tenant id
    n   node id ("" if none)  a   attempt (decimal, from 1)
    d   data, JSON text ("" if none)
    e   error, JSON {"message","code","retryable"} ("" if none)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson


class EventType(StrEnum):
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

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_EVENT_TYPES


# After one of these no further event of the execution is written: the events
# service ends a subscription once it has delivered one.
TERMINAL_EVENT_TYPES = frozenset(
    {
        EventType.EXECUTION_COMPLETED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_TIMED_OUT,
    }
)


@dataclass(frozen=True, slots=True)
class EventError:
    message: str
    code: str = ""
    retryable: bool = False

    def to_json(self) -> str:
        return orjson.dumps(
            {"message": self.message, "code": self.code, "retryable": self.retryable}
        ).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> EventError:
        raw = orjson.loads(text)
        return cls(str(raw["message"]), str(raw.get("code", "")), bool(raw.get("retryable")))


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event before the store stamps it with sequence, time, workflow, tenant, attempt."""

    type: EventType
    node_id: str = ""
    data_json: str = ""
    error: EventError | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    execution_id: str
    sequence: int
    type: EventType
    time_ms: int
    workflow_id: str
    tenant_id: str
    node_id: str = ""
    attempt: int = 1
    data_json: str = ""
    error: EventError | None = None

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENT_TYPES

    def to_fields(self) -> dict[str, str]:
        return {
            "x": self.execution_id,
            "s": str(self.sequence),
            "t": self.type.value,
            "ts": str(self.time_ms),
            "w": self.workflow_id,
            "tn": self.tenant_id,
            "n": self.node_id,
            "a": str(self.attempt),
            "d": self.data_json,
            "e": self.error.to_json() if self.error else "",
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> EventRecord:
        f = {_s(k): _s(v) for k, v in fields.items()}
        err = f.get("e", "")
        return cls(
            execution_id=f["x"],
            sequence=int(f["s"]),
            type=EventType(f["t"]),
            time_ms=int(f["ts"]),
            workflow_id=f.get("w", ""),
            tenant_id=f.get("tn", ""),
            node_id=f.get("n", ""),
            attempt=int(f.get("a", "1")),
            data_json=f.get("d", ""),
            error=EventError.from_json(err) if err else None,
        )


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
