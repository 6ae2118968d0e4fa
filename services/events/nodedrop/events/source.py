"""Where events come from: the part of the store's EventLog port this service reads.

Any `nodedrop.store.EventLog` adapter fits: the Redis store in production, the
shared in-memory store under `nodedrop dev`.
"""

from __future__ import annotations

from typing import Protocol

from nodedrop.store import EventRecord, TailCursor, TailEntry


class EventSource(Protocol):
    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]: ...

    async def tail_position(self) -> TailCursor: ...

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]: ...
