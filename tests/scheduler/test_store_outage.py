"""A store outage reaches the scheduler's callers as UNAVAILABLE (retry later),
never INTERNAL, and its maintenance loops wait it out and go on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nodedrop.common.errors import Unavailable
from nodedrop.engine import NodeRegistry
from nodedrop.queue.v1 import scheduler_service_pb2 as pb
from nodedrop.scheduler.maintenance import Maintenance
from nodedrop.scheduler.schedules import StoredSchedules
from nodedrop.scheduler.servicer import SchedulerServicer
from nodedrop.store import Unavailable as StoreUnavailable
from nodedrop.store.config import StoreConfig
from nodedrop.store.keys import Keys
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.ports import free_port
from tests.helpers.queue_fixtures import firing_without_api

CALLS: list[tuple[str, Any]] = [
    ("GetExecutionStates", pb.GetExecutionStatesRequest(execution_ids=["x"])),
    ("GetQueueStats", pb.GetQueueStatsRequest()),
    ("CancelExecution", pb.CancelExecutionRequest(execution_id="x", tenant_id="t1")),
    ("ListFailedJobs", pb.ListFailedJobsRequest()),
    ("RetryFailedJobs", pb.RetryFailedJobsRequest(all=True)),
    ("PurgeFailedJobs", pb.PurgeFailedJobsRequest(execution_ids=["x"])),
    ("ListSchedules", pb.ListSchedulesRequest()),
    ("PauseSchedule", pb.PauseScheduleRequest(schedule_id="sch_x")),
    ("GetSchedule", pb.GetScheduleRequest(schedule_id="sch_x")),
    ("TriggerSchedule", pb.TriggerScheduleRequest(schedule_id="sch_x")),
]


@pytest.mark.parametrize(("method", "request_"), CALLS, ids=[c[0] for c in CALLS])
async def test_rpcs_answer_unavailable_while_the_store_is_down(method: str, request_: Any) -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", StoreConfig(Keys("ndt", 2)))
    servicer = SchedulerServicer(
        store, store, StoredSchedules(store), NodeRegistry(), firing_without_api(store)
    )
    try:
        with pytest.raises(Unavailable):
            await getattr(servicer, method)(request_, None)
    finally:
        await store.close()


class FlakyQueue(MemoryStore):
    """Down for its first ``down`` calls of move_due, then up."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down
        self.calls = 0
        self.recovered = asyncio.Event()

    async def move_due(self, now_ms: int, limit: int) -> int:
        self.calls += 1
        if self.calls <= self.down:
            raise StoreUnavailable("down")
        self.recovered.set()
        return await super().move_due(now_ms, limit)


async def test_a_maintenance_loop_waits_out_an_outage() -> None:
    queue = FlakyQueue(down=4)
    m = Maintenance(
        queue,
        firing_without_api(queue),
        lease_s=30,
        max_reclaims=3,
        mover_interval_s=0.01,
        reclaim_interval_s=60,
        cron_interval_s=60,
    )
    m.start()
    try:
        await asyncio.wait_for(queue.recovered.wait(), 10)
    finally:
        await m.stop()
    assert queue.calls >= 5
