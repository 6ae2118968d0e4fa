"""The live feed publishes a commit that Redis answered in two reads as one batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from nodedrop.events.feed import LiveFeed
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import LiveEvent
from nodedrop.store import EventRecord, EventType, TailCursor, TailEntry, Unavailable

_Reply = tuple[list[TailEntry], TailCursor] | Exception


class ScriptedSource:
    """Answers `tail` from a script, then blocks for good once the script is spent."""

    def __init__(self, replies: Iterable[_Reply]) -> None:
        self._replies = list(replies)
        self.calls: list[tuple[TailCursor, int]] = []
        self.spent = asyncio.Event()

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        return []

    async def tail_position(self) -> TailCursor:
        return ("0-0",)

    async def tail(
        self, cursor: TailCursor, count: int, block_ms: int
    ) -> tuple[list[TailEntry], TailCursor]:
        self.calls.append((cursor, block_ms))
        if not self._replies:
            self.spent.set()
            await asyncio.Event().wait()
        reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


class RecordingHub(FanoutHub):
    def __init__(self) -> None:
        super().__init__(16)
        self.batches: list[list[int]] = []

    def publish(self, events: Iterable[LiveEvent]) -> None:
        self.batches.append([e.sequence for e in events])


def _entries(*sequences: int) -> list[TailEntry]:
    return [
        TailEntry(
            0, f"{s}-0", EventRecord("ex-1", s, EventType.NODE_COMPLETED, 1_000, "wf", "tenant-a")
        )
        for s in sequences
    ]


async def _run_until_spent(feed: LiveFeed, source: ScriptedSource) -> None:
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(source.spent.wait(), 5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_rest_of_a_commit_joins_the_first_read() -> None:
    source = ScriptedSource([(_entries(1), ("1-0",)), (_entries(2, 3), ("3-0",))])
    hub = RecordingHub()
    await _run_until_spent(LiveFeed(source, hub, block_ms=1000, batch=10), source)
    assert hub.batches == [[1, 2, 3]]
    # The second read does not block, starts after the first, and the next
    # blocking read after both.
    assert source.calls == [(("0-0",), 1000), (("1-0",), 0), (("3-0",), 1000)]


async def test_a_failed_second_read_still_publishes_the_first() -> None:
    source = ScriptedSource(
        [
            (_entries(1), ("1-0",)),
            Unavailable("gone"),
            (_entries(2), ("2-0",)),
            ([], ("2-0",)),
        ]
    )
    hub = RecordingHub()
    await _run_until_spent(LiveFeed(source, hub, block_ms=1000, batch=10), source)
    assert hub.batches == [[1], [2]]
    assert [cursor for cursor, _ in source.calls[:3]] == [("0-0",), ("1-0",), ("1-0",)]


async def test_a_full_read_is_published_without_a_second_one() -> None:
    source = ScriptedSource([(_entries(1, 2), ("2-0",)), (_entries(3), ("3-0",))])
    hub = RecordingHub()
    await _run_until_spent(LiveFeed(source, hub, block_ms=1000, batch=2), source)
    assert hub.batches[0] == [1, 2]
    assert source.calls[1] == (("2-0",), 1000)


async def test_a_store_outage_is_waited_out_with_the_cursor_kept() -> None:
    source = ScriptedSource(
        [
            Unavailable("down"),
            Unavailable("still down"),
            (_entries(1), ("1-0",)),
            ([], ("1-0",)),
        ]
    )
    hub = RecordingHub()
    await _run_until_spent(LiveFeed(source, hub, block_ms=1000, batch=10), source)
    assert hub.batches == [[1]]
    assert [cursor for cursor, _ in source.calls[:3]] == [("0-0",), ("0-0",), ("0-0",)]
