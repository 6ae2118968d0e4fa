"""Where events come from: the part of the store's EventLog port this service reads.

Any `nodedrop.store.EventLog` adapter fits (Redis in production, in-memory
under `nodedrop dev`); `RedisEventSource` is this service's own reader of the
documented layout, used while no store adapter is wired in.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from redis.asyncio import Redis

from nodedrop.store import EventRecord, Keys, TailCursor, TailEntry

log = structlog.get_logger(__name__)


class EventSource(Protocol):
    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]: ...

    async def tail_position(self) -> TailCursor: ...

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]: ...


class RedisEventSource:
    """Reads `<prefix>:{pNN}:exec:<id>:ev` (entry id = "<seq>-0") and every `{pNN}:events`."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._tails = [keys.events(p) for p in range(keys.partitions)]

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        entries: Any = await self._redis.xrange(
            self._keys.exec_events(execution_id), f"({after_seq}-0", "+", count=limit
        )
        return [EventRecord.from_fields(fields) for _, fields in entries]

    async def tail_position(self) -> TailCursor:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._tails:
                pipe.xrevrange(key, "+", "-", count=1)
            ends = await pipe.execute()
        return tuple(_text(end[0][0]) if end else "0-0" for end in ends)

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        reply: Any = await self._redis.xread(
            dict(zip(self._tails, cursor, strict=True)), count=count, block=block_ms
        )
        if not reply:
            return [], cursor
        position = {key: i for i, key in enumerate(self._tails)}
        moved = list(cursor)
        out: list[TailEntry] = []
        pairs = reply.items() if isinstance(reply, dict) else reply
        for raw_key, entries in pairs:
            partition = position[_text(raw_key)]
            # RESP3 wraps each stream's entries in one more list.
            rows = entries[0] if isinstance(reply, dict) else entries
            for raw_id, fields in rows:
                entry_id = _text(raw_id)
                moved[partition] = entry_id
                try:
                    record = EventRecord.from_fields(fields)
                except (KeyError, ValueError) as exc:
                    # One bad entry must not stop the feed for every subscriber.
                    log.warning("skipping malformed event entry", id=entry_id, error=str(exc))
                    continue
                out.append(TailEntry(partition, entry_id, record))
        return out, tuple(moved)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
