"""The process's one blocking reader over every partition's event stream.

It pins the current end of every stream once (history is replayed from the
per-execution streams, not from here), then publishes each batch to the hub
and keeps its cursor across store outages, so a restart loses no live event.
An entry that cannot be decoded is logged and skipped (by the store's `tail`,
or here when it decodes but cannot be represented), never allowed to stall
the feed.

Any other failure does not end the feed: it is logged, the feed reports
itself unhealthy (the service's readiness) and starts again from its cursor
after a pause, healthy again once it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from nodedrop.common.retry import Backoff
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import LiveEvent
from nodedrop.events.source import EventSource
from nodedrop.store import TailCursor, TailEntry, Unavailable
from nodedrop.store.records import DECODE_ERRORS

log = structlog.get_logger(__name__)

# Told whether the feed reads: True once its start is pinned and after each
# read that follows a failure, False when a failure stops it.
HealthReport = Callable[[bool], Awaitable[None]]


class LiveFeed:
    def __init__(
        self,
        source: EventSource,
        hub: FanoutHub,
        *,
        block_ms: int = 1000,
        batch: int = 1000,
        health: HealthReport | None = None,
    ) -> None:
        self._source = source
        self._hub = hub
        self._block_ms = block_ms
        self._batch = batch
        self._cursor: TailCursor | None = None
        self._health = health
        self._healthy: bool | None = None
        # Subscriptions wait for this: before the cursor is pinned, an event
        # committed after a replay could be missed by both replay and tail.
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Reads until cancelled."""
        backoff = Backoff(0.05, 2.0)
        while True:
            try:
                await self._step()
                backoff.reset()
            except Unavailable as exc:
                delay = backoff.next_delay()
                log.warning("event feed read failed; retrying", error=str(exc), delay_s=delay)
                await backoff.wait(delay)
            except Exception as exc:
                delay = backoff.next_delay()
                log.error(
                    "event feed failed; restarting",
                    error=f"{type(exc).__name__}: {exc}",
                    delay_s=delay,
                    exc_info=True,
                )
                await self._report(False)
                await backoff.wait(delay)

    async def _step(self) -> None:
        if self._cursor is None:
            self._cursor = await self._source.tail_position()
            self.ready.set()
            await self._report(True)
        entries, self._cursor = await self._source.tail(self._cursor, self._batch, self._block_ms)
        await self._report(True)
        if 0 < len(entries) < self._batch:
            # Redis answers a blocked XREAD after the first XADD of a
            # commit, so the rest of that commit is usually stored by now:
            # one non-blocking read takes it into the same publish, and each
            # subscriber gets one response per commit instead of two (a
            # response costs a stream far more than an event in it does).
            # A failure here is retried by the next blocking read; what was
            # already read is published either way.
            with contextlib.suppress(Unavailable):
                more, self._cursor = await self._source.tail(self._cursor, self._batch, 0)
                entries += more
        if entries:
            self._hub.publish(_live_events(entries))

    async def _report(self, healthy: bool) -> None:
        if healthy is not self._healthy and self._health is not None:
            await self._health(healthy)
        self._healthy = healthy


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
