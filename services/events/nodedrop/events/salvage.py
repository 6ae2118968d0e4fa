"""Reading past partition-stream entries that cannot be decoded.

The store's `tail` decodes a whole XREAD reply at once, so one malformed entry
(a hand-written XADD, a writer of another version) makes every read at that
cursor fail and would stall the live feed for good. When that happens the feed
re-reads the same range here, entry by entry: good entries are published,
bad ones are logged with their id and skipped, and the cursor moves past both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis

from nodedrop.store import EventRecord, Keys, TailCursor, TailEntry
from nodedrop.store.redis_store import RedisStore

log = structlog.get_logger(__name__)

# What decoding a malformed entry raises: a missing field (KeyError), a bad
# number, enum or JSON (ValueError, orjson's error included), a wrong shape
# (TypeError, AttributeError).
DECODE_ERRORS: tuple[type[Exception], ...] = (KeyError, ValueError, TypeError, AttributeError)


class EntrySalvage(Protocol):
    async def read_after(
        self, cursor: TailCursor, count: int
    ) -> tuple[list[TailEntry], TailCursor]:
        """Entries after `cursor` (non-blocking), each decoded on its own; bad ones skipped."""
        ...


class RedisSalvage:
    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self._streams = [keys.events(p) for p in range(keys.partitions)]

    async def read_after(
        self, cursor: TailCursor, count: int
    ) -> tuple[list[TailEntry], TailCursor]:
        pipe = self._r.pipeline(transaction=False)
        for name, last in zip(self._streams, cursor, strict=True):
            # "(" makes the range exclusive of the entry the cursor stands on.
            pipe.xrange(name, min=f"({last}", max="+", count=count)
        replies: Sequence[Sequence[tuple[Any, Mapping[Any, Any]]]] = await pipe.execute()
        position = list(cursor)
        out: list[TailEntry] = []
        for partition, entries in enumerate(replies):
            for raw_id, fields in entries:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                position[partition] = entry_id
                record = decode_entry(partition, entry_id, fields)
                if record is not None:
                    out.append(TailEntry(partition, entry_id, record))
        return out, tuple(position)


def decode_entry(partition: int, entry_id: str, fields: Mapping[Any, Any]) -> EventRecord | None:
    """The entry's event, or None (logged with the entry id) when it cannot be decoded."""
    try:
        return EventRecord.from_fields(fields)
    except DECODE_ERRORS as exc:
        log.error(
            "undecodable event entry skipped",
            partition=partition,
            entry_id=entry_id,
            error=f"{type(exc).__name__}: {exc}",
        )
        return None


def salvage_for(source: object) -> EntrySalvage | None:
    """The salvage reader matching an event source; None for sources that hold no raw entries."""
    if isinstance(source, RedisStore):
        return RedisSalvage(source.client, source.config.keys)
    return None
