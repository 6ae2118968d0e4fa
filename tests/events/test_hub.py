from __future__ import annotations

import asyncio

import pytest

from nodedrop.event.v1 import event_pb2
from nodedrop.events.hub import FanoutHub
from nodedrop.events.live import LiveEvent
from nodedrop.events.mailbox import Mailbox, MailboxOverflow
from nodedrop.events.subscription import TenantFilter


def _event(execution_id: str, seq: int, tenant: str = "t", workflow: str = "w") -> LiveEvent:
    return LiveEvent.from_proto(
        tenant,
        event_pb2.ExecutionEvent(
            execution_id=execution_id,
            sequence=seq,
            workflow_id=workflow,
            type=event_pb2.EVENT_TYPE_NODE_STARTED,
        ),
    )


def test_frame_round_trips_the_event() -> None:
    event = _event("e1", 300)
    assert event.to_proto().sequence == 300
    assert event.to_proto().execution_id == "e1"


async def test_mailbox_delivers_batches_in_order() -> None:
    box = Mailbox(10)
    for seq in (1, 2, 3):
        box.offer(_event("e", seq))
    assert [e.sequence for e in await box.take()] == [1, 2, 3]


async def test_mailbox_wakes_a_waiting_taker() -> None:
    box = Mailbox(10)
    taker = asyncio.create_task(box.take())
    await asyncio.sleep(0)
    box.offer(_event("e", 1))
    assert [e.sequence for e in await asyncio.wait_for(taker, 1)] == [1]


async def test_full_mailbox_overflows_and_stays_closed() -> None:
    box = Mailbox(2)
    for seq in (1, 2, 3):
        box.offer(_event("e", seq))
    with pytest.raises(MailboxOverflow):
        await box.take()
    box.offer(_event("e", 4))
    with pytest.raises(MailboxOverflow):
        await box.take()


def test_hub_routes_by_execution_and_tenant_and_unregisters() -> None:
    hub = FanoutHub(100)
    with (
        hub.execution("e1") as one,
        hub.tenant("t", TenantFilter(workflow_id="w2")) as dash,
        hub.tenant("other") as stranger,
    ):
        hub.publish([_event("e1", 1), _event("e2", 1, workflow="w2")])
        assert [e.execution_id for e in one._items] == ["e1"]
        assert [e.execution_id for e in dash._items] == ["e2"]
        assert len(stranger) == 0
        assert hub.subscriber_count == 3
    assert hub.subscriber_count == 0


def test_overflow_of_one_subscriber_leaves_others_untouched() -> None:
    hub = FanoutHub(5)
    with hub.execution("e") as slow, hub.execution("e") as fast:
        for seq in range(1, 7):
            hub.publish([_event("e", seq)])
            if seq % 2 == 0:
                fast._items.clear()
        assert slow.overflowed
        assert not fast.overflowed
    assert hub.overflows == 1


def test_hub_records_metrics() -> None:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from nodedrop.common.metrics import create_metrics  # noqa: PLC0415

    registry = CollectorRegistry()
    hub = FanoutHub(1, create_metrics(registry))
    labels = {"transport": "grpc"}
    with hub.execution("e"), hub.execution("e"):
        assert registry.get_sample_value("nodedrop_event_subscribers", labels) == 2
        hub.publish([_event("e", 1)])
        hub.publish([_event("e", 2)])
    assert registry.get_sample_value("nodedrop_event_subscribers", labels) == 0
    assert registry.get_sample_value("nodedrop_events_delivered_total", labels) == 4
    assert registry.get_sample_value("nodedrop_slow_subscriber_cutoffs_total", labels) == 2
