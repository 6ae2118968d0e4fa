"""A subscriber's bounded buffer between the fan-out hub and its stream.

The hub never waits on a subscriber: `offer` either queues the event or, when
the buffer is full, marks the subscriber overflowed so its stream ends with
RESOURCE_EXHAUSTED while every other subscriber goes on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from nodedrop.events.live import EventRun, LiveEvent


class MailboxOverflow(Exception):
    """The subscriber fell more than `capacity` events behind."""

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"subscriber fell more than {capacity} events behind; resume from the last sequence"
        )
        self.capacity = capacity


class Mailbox:
    __slots__ = ("_capacity", "_items", "_matches", "_overflowed", "_run", "_waiter")

    def __init__(self, capacity: int, matches: Callable[[LiveEvent], bool] | None = None) -> None:
        if capacity < 1:
            raise ValueError("mailbox capacity must be at least 1")
        self._capacity = capacity
        self._items: deque[LiveEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._overflowed = False
        self._matches = matches
        # The one run that is all the buffer holds, if so: take() then returns
        # it as is, with its shared precomputed response (see EventRun).
        self._run: EventRun | None = None

    @property
    def overflowed(self) -> bool:
        return self._overflowed

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, event: LiveEvent) -> None:
        self.offer_many((event,))

    def offer_many(self, events: Sequence[LiveEvent]) -> None:
        """Queue `events` (in order), or overflow if they do not all fit."""
        if self._overflowed:
            return
        if self._matches is not None:
            events = list(filter(self._matches, events))
        if not events:
            return
        if len(self._items) + len(events) > self._capacity:
            # Drop what is buffered: the stream ends and the client resumes from
            # the last sequence it received, so keeping them would only hold memory.
            self._overflowed = True
            self._items.clear()
            self._run = None
        else:
            self._run = events if not self._items and isinstance(events, EventRun) else None
            self._items.extend(events)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def take(self) -> list[LiveEvent]:
        """Every buffered event, waiting for at least one."""
        while not self._items:
            if self._overflowed:
                raise MailboxOverflow(self._capacity)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._overflowed:
            raise MailboxOverflow(self._capacity)
        run, self._run = self._run, None
        batch = run if run is not None and len(run) == len(self._items) else list(self._items)
        self._items.clear()
        return batch
