"""The event record: one event of one execution, and its Redis stream encoding.

A stream entry (both ``exec:<id>:ev`` and the partition's ``events``) holds one
field, ``v``, a JSON array: the execution's head once, then five items per
event, for the events one script call wrote (a worker's commit writes all the
events of the commit as one entry)::

    [first sequence, execution id, workflow id, tenant id, attempt,
     type name (EventType), time (ms since the epoch), node id ("" if none),
     data (JSON text, "" if none), error (JSON {"message","code","retryable"}, "" if none),
     type, time, node, data, error,   <- the event with sequence first + 1
     ...]

The events of an entry have consecutive sequences from the first; the
execution stream's entry id is ``<last sequence>-0``.  An entry of one event is
the older one-event layout, unchanged.  One field instead of ten, and one entry
per commit instead of one per event: every event is written to two streams,
and Redis's cost grows with entries and fields, not with their length.  Numbers
may come as JSON numbers or decimal strings (the Lua scripts write strings).
Entries of the older ten-field layout (``x``, ``s``, ``t``, ``ts``, ``w``,
``tn``, ``n``, ``a``, ``d``, ``e``) are still decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import orjson

# What decoding a malformed entry raises: a missing field (KeyError), a bad
# number, enum or JSON (ValueError, orjson's error included), a wrong shape
# (TypeError, AttributeError).
DECODE_ERRORS: tuple[type[Exception], ...] = (KeyError, ValueError, TypeError, AttributeError)

EVENT_FIELD = "v"


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


class EventDraft(NamedTuple):
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
        value = orjson.dumps(
            [
                self.sequence,
                self.execution_id,
                self.workflow_id,
                self.tenant_id,
                self.attempt,
                self.type.value,
                self.time_ms,
                self.node_id,
                self.data_json,
                self.error.to_json() if self.error else "",
            ]
        )
        return {EVENT_FIELD: value.decode()}


# Items of an entry's head (sequence, execution, workflow, tenant, attempt)
# and of each event after it (type, time, node, data, error).
_HEAD = 5
_PER_EVENT = 5


def decode_value(value: bytes | str) -> list[EventRecord]:
    """The events of one ``v`` field; ValueError or TypeError when it holds none."""
    items = orjson.loads(value)
    if not isinstance(items, list):
        raise TypeError("event entry is not a JSON array")
    n, rest = divmod(len(items) - _HEAD, _PER_EVENT)
    if n < 1 or rest:
        raise ValueError(f"event entry of {len(items)} items")
    seq, x, w, tn, a = items[:_HEAD]
    first, attempt = int(seq), int(a)
    for text in (x, w, tn):
        if not isinstance(text, str):
            raise TypeError(f"event field {text!r} is not a string")
    out: list[EventRecord] = []
    for j in range(n):
        t, ts, node, d, e = items[_HEAD + _PER_EVENT * j : _HEAD + _PER_EVENT * (j + 1)]
        for text in (node, d, e):
            if not isinstance(text, str):
                raise TypeError(f"event field {text!r} is not a string")
        out.append(
            EventRecord(
                execution_id=x,
                sequence=first + j,
                type=EventType(t),
                time_ms=int(ts),
                workflow_id=w,
                tenant_id=tn,
                node_id=node,
                attempt=attempt,
                data_json=d,
                error=EventError.from_json(e) if e else None,
            )
        )
    return out


def decode_entry(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> list[EventRecord]:
    """The events of one stream entry, in sequence order (see the module's doc)."""
    if len(fields) == 1:
        ((key, value),) = fields.items()
        if _s(key) == EVENT_FIELD:
            return decode_value(value)
    f = {_s(k): _s(v) for k, v in fields.items()}
    err = f.get("e", "")
    return [
        EventRecord(
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
    ]


def event_tail(draft: EventDraft, time_ms: int) -> bytes:
    """One event's five items of an entry's ``v``, without brackets, encoded once by
    the writer: the commit script joins the tails of a commit after the head."""
    return orjson.dumps(
        (
            draft.type.value,
            time_ms,
            draft.node_id,
            draft.data_json,
            draft.error.to_json() if draft.error else "",
        )
    )[1:-1]


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
