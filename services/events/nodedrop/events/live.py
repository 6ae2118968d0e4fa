"""The in-memory form of one event as it travels from the Redis reader to subscribers.

The reader decodes and serializes each event exactly once; every subscriber then
shares the same immutable value, so a thousand subscribers cost one decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from nodedrop.event.v1 import event_pb2
from nodedrop.store import EventRecord, EventType

TERMINAL_TYPES: frozenset[int] = frozenset(
    {
        event_pb2.EVENT_TYPE_EXECUTION_COMPLETED,
        event_pb2.EVENT_TYPE_EXECUTION_FAILED,
        event_pb2.EVENT_TYPE_EXECUTION_CANCELLED,
        event_pb2.EVENT_TYPE_EXECUTION_TIMED_OUT,
    }
)


_TYPE_VALUES: dict[EventType, int] = {
    t: event_pb2.EventType.Value(f"EVENT_TYPE_{t.value}") for t in EventType
}


def record_to_proto(record: EventRecord) -> event_pb2.ExecutionEvent:
    event = event_pb2.ExecutionEvent(
        execution_id=record.execution_id,
        sequence=record.sequence,
        type=_TYPE_VALUES[record.type],  # type: ignore[arg-type]
        workflow_id=record.workflow_id,
        node_id=record.node_id,
        attempt=record.attempt,
        data_json=record.data_json,
    )
    # Direct fields: FromMilliseconds costs more per call than the arithmetic.
    event.time.seconds, millis = divmod(record.time_ms, 1000)
    event.time.nanos = millis * 1_000_000
    if record.error is not None:
        event.error.message = record.error.message
        event.error.code = record.error.code
        event.error.retryable = record.error.retryable
    return event


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def frame_response(event_bytes: bytes) -> bytes:
    """Wire bytes of a response message holding just this event.

    StreamExecutionEventsResponse and StreamEventsResponse both hold their
    events as repeated field 1, so one framing serves both RPCs, and frames
    concatenate into a response of several events (see batching.pack); the
    servicer never re-serializes per subscriber.
    """
    return b"\x0a" + _varint(len(event_bytes)) + event_bytes


@dataclass(frozen=True, slots=True)
class LiveEvent:
    tenant_id: str
    execution_id: str
    workflow_id: str
    sequence: int
    type: int
    # One element of a response's `events` field, serialized (tag, length, event).
    frame: bytes

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    @classmethod
    def from_proto(cls, tenant_id: str, event: event_pb2.ExecutionEvent) -> LiveEvent:
        return cls(
            tenant_id=tenant_id,
            execution_id=event.execution_id,
            workflow_id=event.workflow_id,
            sequence=event.sequence,
            type=event.type,
            frame=frame_response(event.SerializeToString()),
        )

    @classmethod
    def from_record(cls, record: EventRecord) -> LiveEvent:
        return cls.from_proto(record.tenant_id, record_to_proto(record))

    def to_proto(self) -> event_pb2.ExecutionEvent:
        # The frame is "\x0a <varint len> <event>"; skip the tag and length.
        pos = 1
        while self.frame[pos] & 0x80:
            pos += 1
        event = event_pb2.ExecutionEvent()
        event.ParseFromString(self.frame[pos + 1 :])
        return event


_sequence = attrgetter("sequence")
_type = attrgetter("type")
_frame = attrgetter("frame")


class EventRun(list[LiveEvent]):
    """Events of one key (an execution, or a tenant) published together.

    The hub hands this same list to every subscriber of the key and nobody
    mutates it after the publish, so what each subscriber would otherwise
    work out per event (are the sequences contiguous, is there a terminal
    event, the response body) is computed once, by the first that asks.
    """

    __slots__ = ("_body", "_first", "_terminal_at")

    def __init__(self) -> None:
        super().__init__()
        self._body: bytes | None = None
        self._first: int | None = None
        self._terminal_at: int | None = None

    def follows(self, last: int) -> bool:
        """Whether this holds exactly the sequences last+1, last+2, ... in order."""
        if self._first is None:
            sequences = list(map(_sequence, self))
            first = sequences[0] if sequences else -1
            contiguous = sequences == list(range(first, first + len(sequences)))
            self._first = first if sequences and contiguous else -1
        return self._first >= 0 and self._first == last + 1

    @property
    def terminal_at(self) -> int:
        """Index of the first terminal event, or -1."""
        if self._terminal_at is None:
            self._terminal_at = -1
            if not TERMINAL_TYPES.isdisjoint(map(_type, self)):
                self._terminal_at = next(i for i, e in enumerate(self) if e.terminal)
        return self._terminal_at

    @property
    def body(self) -> bytes:
        """The concatenated frames: one response holding all these events."""
        if self._body is None:
            self._body = b"".join(map(_frame, self))
        return self._body
