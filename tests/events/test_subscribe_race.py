"""A subscription from the start that races the execution's first commit."""

from __future__ import annotations

import asyncio

from nodedrop.common.auth import Principal
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import LiveEvent
from nodedrop.events.subscription import Subscriptions
from nodedrop.store import EventRecord, EventType
from tests.events.replay_only import ReplayOnly, record


def _record(seq: int, kind: EventType) -> EventRecord:
    return record("ex-race", seq, kind)


class CommitDuringFirstRead(ReplayOnly):
    """The first read finds nothing; the execution commits its first events right after."""

    def __init__(self, hub: FanoutHub) -> None:
        self._hub = hub
        self._records: list[EventRecord] = []

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        # Redis rejects a negative stream id ("(-1-0"), so must this double.
        if after_seq < 0:
            raise ValueError(f"invalid stream id for after_seq {after_seq}")
        found = [r for r in self._records if r.sequence > after_seq][:limit]
        if not self._records:
            self._records = [
                _record(1, EventType.EXECUTION_QUEUED),
                _record(2, EventType.EXECUTION_COMPLETED),
            ]
            self._hub.publish([LiveEvent.from_record(r) for r in self._records])
        return found


async def test_events_committed_between_the_reads_are_tailed() -> None:
    hub = FanoutHub(64)
    ready = asyncio.Event()
    ready.set()
    subscriptions = Subscriptions(hub, CommitDuringFirstRead(hub), ready)
    principal = Principal("tenant-a", frozenset({"read"}), "k")

    async def collect() -> list[int]:
        return [
            e.sequence
            async for batch in subscriptions.execution(principal, "cred", "ex-race", 0)
            for e in batch
        ]

    assert await asyncio.wait_for(collect(), 5) == [1, 2]
