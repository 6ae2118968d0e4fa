"""Live batches that repeat, skip or run past the end are still sent exactly once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from nodedrop.common.auth import Principal
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import LiveEvent
from nodedrop.events.subscription import Subscriptions
from nodedrop.store import EventRecord, EventType
from tests.events.replay_only import ReplayOnly, record


def _record(seq: int, kind: EventType = EventType.NODE_COMPLETED) -> EventRecord:
    return record("ex-1", seq, kind)


class Log(ReplayOnly):
    """The execution's stored events; `late` ones show from the `reveal_at`-th read on.

    The subscription reads twice before it tails (the replay, then an empty
    page), so what a test publishes after the replay reaches the subscriber
    live unless it is also in the log by then.
    """

    def __init__(
        self, records: list[EventRecord], late: Sequence[EventRecord] = (), reveal_at: int = 3
    ) -> None:
        self.records = records
        self._late = list(late)
        self._reveal_at = reveal_at
        self._reads = 0

    async def read(self, execution_id: str, after_seq: int, limit: int) -> list[EventRecord]:
        self._reads += 1
        visible = self.records + (self._late if self._reads >= self._reveal_at else [])
        return [r for r in visible if r.sequence > after_seq][:limit]


async def _follow(log: Log, hub: FanoutHub, after_replay: Callable[[], None]) -> list[list[int]]:
    """Responses (as sequences) of a subscription from 0; `after_replay` runs after the first."""
    ready = asyncio.Event()
    ready.set()
    subscriptions = Subscriptions(hub, log, ready)
    principal = Principal("tenant-a", frozenset({"read"}), "k")
    responses: list[list[int]] = []
    async for batch in subscriptions.execution(principal, "cred", "ex-1", 0):
        responses.append([e.sequence for e in batch])
        if len(responses) == 1:
            after_replay()
    return responses


def _publish(hub: FanoutHub, *batches: list[EventRecord]) -> Callable[[], None]:
    def publish() -> None:
        for batch in batches:
            hub.publish([LiveEvent.from_record(r) for r in batch])

    return publish


async def test_repeated_and_already_replayed_events_are_dropped() -> None:
    hub = FanoutHub(64)
    log = Log([_record(1), _record(2)])
    three = _record(3)
    live = [_record(2), three, three, _record(4, EventType.EXECUTION_COMPLETED)]
    responses = await asyncio.wait_for(_follow(log, hub, _publish(hub, live)), 5)
    assert responses == [[1, 2], [3, 4]]


async def test_a_hole_is_filled_from_the_log_and_nothing_follows_the_terminal() -> None:
    hub = FanoutHub(64)
    live = [_record(4), _record(5, EventType.EXECUTION_COMPLETED), _record(6)]
    # 2 and 3 reach the subscriber only through the log; the live batch also
    # carries an event after the terminal one, which is never sent.
    log = Log([_record(1)], late=[_record(2), _record(3), *live])
    responses = await asyncio.wait_for(_follow(log, hub, _publish(hub, live)), 5)
    assert responses == [[1], [2, 3, 4, 5]]


async def test_contiguous_live_batches_go_out_as_they_came() -> None:
    hub = FanoutHub(64)
    log = Log([_record(1)])
    first, second = [_record(2), _record(3)], [_record(4, EventType.EXECUTION_COMPLETED)]
    responses = await asyncio.wait_for(_follow(log, hub, _publish(hub, first, second)), 5)
    assert responses == [[1], [2, 3, 4]]
