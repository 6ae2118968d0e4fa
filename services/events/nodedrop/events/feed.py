"""The process's one blocking reader over every partition's event stream.

It pins the current end of every stream once (history is replayed from the
per-execution streams, not from here), then publishes each batch to the hub
and keeps its cursor across Redis failures, so a restart loses no live event.
An entry that cannot be decoded is logged and skipped (see salvage.py), never
allowed to stall the feed.
"""

from __future__ import annotations

import asyncio

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import LiveEvent
from nodedrop.events.salvage import DECODE_ERRORS, EntrySalvage, salvage_for
from nodedrop.events.source import EventSource
from nodedrop.store import TailCursor, TailEntry

log = structlog.get_logger(__name__)

_RETRY_DELAYS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


class LiveFeed:
    def __init__(
        self,
        source: EventSource,
        hub: FanoutHub,
        *,
        block_ms: int = 1000,
        batch: int = 1000,
        salvage: EntrySalvage | None = None,
    ) -> None:
        self._source = source
        self._salvage = salvage if salvage is not None else salvage_for(source)
        self._hub = hub
        self._block_ms = block_ms
        self._batch = batch
        self._cursor: TailCursor | None = None
        # Subscriptions wait for this: before the cursor is pinned, an event
        # committed after a replay could be missed by both replay and tail.
        self.ready = asyncio.Event()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if self._cursor is None:
                    self._cursor = await self._source.tail_position()
                    self.ready.set()
                try:
                    entries, self._cursor = await self._source.tail(
                        self._cursor, self._batch, self._block_ms
                    )
                except DECODE_ERRORS:
                    if self._salvage is None:
                        raise
                    entries, self._cursor = await self._salvage.read_after(
                        self._cursor, self._batch
                    )
                failures = 0
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                delay = _RETRY_DELAYS_S[min(failures, len(_RETRY_DELAYS_S) - 1)]
                failures += 1
                log.warning("event feed read failed; retrying", error=str(exc), delay_s=delay)
                await asyncio.sleep(delay)
                continue
            if entries:
                self._hub.publish(_live_events(entries))


def _live_events(entries: list[TailEntry]) -> list[LiveEvent]:
    out: list[LiveEvent] = []
    for entry in entries:
        try:
            out.append(LiveEvent.from_record(entry.record))
        except DECODE_ERRORS as exc:
            # Decoded but not representable (an out-of-range number, say).
            log.error(
                "undecodable event entry skipped",
                partition=entry.partition,
                entry_id=entry.entry_id,
                error=f"{type(exc).__name__}: {exc}",
            )
    return out
