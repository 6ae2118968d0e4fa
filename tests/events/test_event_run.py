"""A published run is shared by every subscriber and answers for all of them at once."""

from __future__ import annotations

from nodedrop.event.v1 import event_pb2, event_service_pb2
from nodedrop.events.batching import pack
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import EventRun, LiveEvent


def _event(seq: int, kind: int = event_pb2.EVENT_TYPE_NODE_COMPLETED) -> LiveEvent:
    return LiveEvent.from_proto(
        "t",
        event_pb2.ExecutionEvent(execution_id="e", sequence=seq, type=kind),  # type: ignore[arg-type]
    )


def _run(*events: LiveEvent) -> EventRun:
    run = EventRun()
    run.extend(events)
    return run


def test_follows_only_exactly_the_next_sequences() -> None:
    assert _run(_event(4), _event(5), _event(6)).follows(3)
    assert not _run(_event(4), _event(5), _event(6)).follows(2)
    assert not _run(_event(4), _event(6)).follows(3)
    assert not _run(_event(4), _event(4), _event(5)).follows(3)
    assert not _run(_event(5), _event(4), _event(6)).follows(3)
    assert not EventRun().follows(0)


def test_terminal_position_and_body() -> None:
    run = _run(_event(1), _event(2, event_pb2.EVENT_TYPE_EXECUTION_COMPLETED), _event(3))
    assert run.terminal_at == 1
    assert _run(_event(1), _event(2)).terminal_at == -1
    parsed = event_service_pb2.StreamExecutionEventsResponse.FromString(run.body)
    assert [e.sequence for e in parsed.events] == [1, 2, 3]
    assert list(pack(run)) == [run.body]


async def test_subscribers_share_the_published_run_until_another_joins_it() -> None:
    hub = FanoutHub(100)
    with hub.execution("e") as first, hub.execution("e") as second:
        hub.publish([_event(1), _event(2)])
        one, two = await first.take(), await second.take()
        assert one is two
        assert isinstance(one, EventRun)
        hub.publish([_event(3)])
        hub.publish([_event(4)])
        both = await first.take()
        assert not isinstance(both, EventRun)
        assert [e.sequence for e in both] == [3, 4]
        # The other mailbox still gets them, in order.
        assert [e.sequence for e in await second.take()] == [3, 4]
