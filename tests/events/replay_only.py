"""Pieces of the EventLog doubles that subscription tests build: records, and a
log that only replays (the tail belongs to the hub in these tests)."""

from __future__ import annotations

from nodedrop.store import EventRecord, EventType, TailCursor, TailEntry


def record(execution_id: str, seq: int, kind: EventType = EventType.NODE_COMPLETED) -> EventRecord:
    return EventRecord(execution_id, seq, kind, 1_700_000_000_000 + seq, "wf", "tenant-a")


class ReplayOnly:
    """An EventLog double whose subscribers must never tail Redis themselves."""

    async def tail_position(self) -> TailCursor:
        raise AssertionError("not used")

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        raise AssertionError("not used")
