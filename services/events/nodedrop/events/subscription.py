"""Replay-then-tail for one execution, and the tenant-wide live feed.

Exactly once and in order across the seam: the subscriber joins the hub
*before* reading the stored events, so anything committed after the read
reaches its mailbox; live events at or below the last replayed sequence are
dropped, and a hole in the live sequence (a feed restart, a trimmed
partition stream) is filled from the per-execution log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from nodedrop.common.auth import Principal
from nodedrop.common.errors import NotFound, OutOfRange, ResourceExhausted, Unavailable
from nodedrop.events.history import History
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import TERMINAL_TYPES, EventRun, LiveEvent
from nodedrop.events.mailbox import Mailbox, MailboxOverflow
from nodedrop.events.source import EventSource
from nodedrop.store import EventRecord
from nodedrop.store import Unavailable as StoreUnavailable


@dataclass(frozen=True, slots=True)
class TenantFilter:
    workflow_id: str = ""
    event_types: frozenset[int] = frozenset()

    def __call__(self, event: LiveEvent) -> bool:
        if self.workflow_id and event.workflow_id != self.workflow_id:
            return False
        return not self.event_types or event.type in self.event_types


class Subscriptions:
    def __init__(
        self,
        hub: FanoutHub,
        source: EventSource,
        feed_ready: asyncio.Event,
        *,
        history: History | None = None,
        page: int = 1000,
        ready_timeout_s: float = 5.0,
        max_concurrent_reads: int = 32,
    ) -> None:
        self._hub = hub
        self._source = source
        self._ready = feed_ready
        self._history = history
        self._page = page
        self._ready_timeout_s = ready_timeout_s
        # A burst of reconnecting subscribers must queue here rather than
        # exhaust the Redis connection pool.
        self._reads = asyncio.Semaphore(max_concurrent_reads)

    async def _wait_ready(self) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), self._ready_timeout_s)
        except TimeoutError:
            raise Unavailable("the live event feed is not connected to Redis yet") from None

    async def execution(
        self, principal: Principal, credential: str, execution_id: str, after_seq: int
    ) -> AsyncIterator[Sequence[LiveEvent]]:
        await self._wait_ready()
        with self._hub.execution(execution_id) as mailbox:
            page = await self._read(execution_id, after_seq)
            if page:
                if page[0].tenant_id != principal.tenant_id:
                    raise NotFound(f"execution {execution_id!r} not found")
            else:
                done = await self._check_resume_point(
                    principal, credential, execution_id, after_seq, mailbox
                )
                if done is not None:
                    async for batch in done:
                        yield batch
                    return
            last = after_seq
            while page:
                cut = _through_terminal(page)
                yield cut
                last = cut[-1].sequence
                if cut[-1].terminal:
                    return
                page = await self._read(execution_id, last)
            async for batch in self._tail(mailbox, execution_id, last):
                yield batch

    async def _read(self, execution_id: str, after_seq: int) -> list[LiveEvent]:
        records = await self._read_records(execution_id, after_seq, self._page)
        return [LiveEvent.from_record(r) for r in records]

    async def _read_records(
        self, execution_id: str, after_seq: int, limit: int
    ) -> list[EventRecord]:
        try:
            async with self._reads:
                return await self._source.read(execution_id, after_seq, limit)
        except StoreUnavailable:
            # Retryable by the client, which resumes from its last sequence.
            raise Unavailable("the event store is unreachable; retry") from None

    async def _check_resume_point(
        self,
        principal: Principal,
        credential: str,
        execution_id: str,
        after_seq: int,
        mailbox: Mailbox,
    ) -> AsyncIterator[Sequence[LiveEvent]] | None:
        """Nothing stored after `after_seq`: decide between tail, end, history or an error.

        Returns an iterator that serves the whole subscription, or None when
        the caller should go on to tail live events.
        """
        records = await self._read_records(execution_id, 0, 1)
        if not records:
            # Nothing in Redis: past retention, or never existed; the API knows which.
            return self._from_history(principal, credential, execution_id, after_seq, mailbox)
        if records[0].tenant_id != principal.tenant_id:
            raise NotFound(f"execution {execution_id!r} not found")
        if after_seq == 0:
            # The first events were committed between the two reads: they
            # reached the mailbox, registered before either read; tail them.
            return None
        at = await self._read_records(execution_id, after_seq - 1, 1)
        if not at or at[0].sequence != after_seq:
            raise OutOfRange(
                f"after_sequence {after_seq} is beyond the last event of execution {execution_id!r}"
            )
        if at[0].terminal:
            return _empty()
        return None

    async def _from_history(
        self,
        principal: Principal,
        credential: str,
        execution_id: str,
        after_seq: int,
        mailbox: Mailbox,
    ) -> AsyncIterator[Sequence[LiveEvent]]:
        if self._history is None:
            raise NotFound(
                f"execution {execution_id!r} not found (no events in Redis and no history "
                "service configured)"
            )
        last = after_seq
        while True:
            events, more = await self._history.read(credential, execution_id, last, self._page)
            batch = [LiveEvent.from_proto(principal.tenant_id, e) for e in events]
            batch = [e for e in batch if e.sequence > last]
            if batch:
                cut = _through_terminal(batch)
                yield cut
                last = cut[-1].sequence
                if cut[-1].terminal:
                    return
            if not more:
                break
        # Recorded but unfinished (Redis lost its copy, or nothing emitted yet):
        # keep following live events, on the mailbox registered before the reads.
        async for live in self._tail(mailbox, execution_id, last):
            yield live

    async def _tail(
        self, mailbox: Mailbox, execution_id: str, last: int
    ) -> AsyncIterator[Sequence[LiveEvent]]:
        while True:
            try:
                batch = await mailbox.take()
            except MailboxOverflow as exc:
                raise ResourceExhausted(str(exc)) from None
            if _follows(batch, last):
                # The usual case, checked without a Python step per event.
                out = batch
                last = batch[-1].sequence
            else:
                out, last = await self._order(batch, execution_id, last)
            if out:
                cut = _through_terminal(out)
                yield cut
                if cut[-1].terminal:
                    return

    async def _order(
        self, batch: list[LiveEvent], execution_id: str, last: int
    ) -> tuple[list[LiveEvent], int]:
        """The events of `batch` after `last`, exactly once and in order, holes filled."""
        out: list[LiveEvent] = []
        for event in batch:
            if event.sequence <= last:
                continue
            if event.sequence > last + 1:
                # A hole the live feed cannot explain: take it from the log.
                filled = await self._read(execution_id, last)
                while filled:
                    out.extend(filled)
                    last = filled[-1].sequence
                    if filled[-1].terminal or event.sequence <= last:
                        break
                    filled = await self._read(execution_id, last)
                if event.sequence <= last:
                    continue
            out.append(event)
            last = event.sequence
        return out, last

    async def tenant(
        self, principal: Principal, matches: TenantFilter
    ) -> AsyncIterator[Sequence[LiveEvent]]:
        await self._wait_ready()
        with self._hub.tenant(principal.tenant_id, matches) as mailbox:
            while True:
                try:
                    yield await mailbox.take()
                except MailboxOverflow as exc:
                    raise ResourceExhausted(str(exc)) from None


_sequence = attrgetter("sequence")
_type = attrgetter("type")


def _follows(batch: list[LiveEvent], last: int) -> bool:
    """Whether `batch` holds exactly the sequences last+1, last+2, ... in order."""
    if isinstance(batch, EventRun):
        return batch.follows(last)
    return list(map(_sequence, batch)) == list(range(last + 1, last + 1 + len(batch)))


def _through_terminal(events: list[LiveEvent]) -> list[LiveEvent]:
    if isinstance(events, EventRun):
        at = events.terminal_at
        return events if at < 0 else events[: at + 1]
    if TERMINAL_TYPES.isdisjoint(map(_type, events)):
        return events
    for i, event in enumerate(events):
        if event.terminal:
            return events[: i + 1]
    return events


async def _empty() -> AsyncIterator[Sequence[LiveEvent]]:
    nothing: tuple[Sequence[LiveEvent], ...] = ()
    for events in nothing:
        yield events
