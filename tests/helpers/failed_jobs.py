"""Jobs put in the failed queue straight through the store, as a worker's
last failed attempt would leave them."""

from __future__ import annotations

import time

from nodedrop.store import Commit, EventDraft, EventType, ExecutionStatus, JobSpec, Transition
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

__all__ = ["WAIT_WF", "fail_jobs"]

# A workflow that waits: a job of it stays queued or running long enough to
# be cancelled (or not).
WAIT_WF = (
    '{"name": "slow", "nodes": [{"id": "start", "type": "manual_trigger"},'
    ' {"id": "pause", "type": "wait", "parameters": {"seconds": 60}}],'
    ' "connections": [{"from": "start", "to": "pause"}]}'
)


async def fail_jobs(store: RedisStore, jobs: dict[str, str]) -> None:
    """Puts each execution id (-> tenant) in the failed queue, as a worker's
    last failed attempt would. No worker may consume meanwhile."""
    now = int(time.time() * 1000)
    for execution_id, tenant in jobs.items():
        await store.enqueue(
            JobSpec(execution_id, tenant, "wf", WAIT_WF, **DEFAULT_JOB_SETTINGS), now
        )
    deliveries = [d for d in await store.read_jobs("test", 100, 0) if d.execution_id in jobs]
    acquired = await store.acquire(deliveries, 30_000, now)
    await store.commit(
        [
            Commit(
                a.lease,
                events=(EventDraft(EventType.EXECUTION_FAILED),),
                transition=Transition(ExecutionStatus.FAILED, dead_letter_reason="boom"),
            )
            for a in acquired
            if a.lease
        ],
        now,
    )
    failed, _ = await store.list_failed(100, "")
    assert {j.execution_id for j in failed} >= set(jobs)
