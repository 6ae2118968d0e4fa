"""WorkflowCache: stored workflows as ExecuteWorkflow reads them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson

from nodedrop.api.model import WorkflowRecord
from nodedrop.api.workflow_cache import WorkflowCache

DOC = {
    "name": "w",
    "nodes": [{"id": "start", "type": "manual_trigger"}],
    "connections": [],
}


class SlowRepo:
    """get_workflow waits until released; counts the reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.version = 1
        self.release = asyncio.Event()

    async def get_workflow(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> WorkflowRecord:
        self.reads += 1
        current = self.version
        await self.release.wait()
        now = datetime.now(UTC)
        return WorkflowRecord(
            workflow_id, tenant_id, version or current, "w", orjson.dumps(DOC).decode(), now, now
        )


def cache_of(repo: SlowRepo) -> WorkflowCache:
    return WorkflowCache(repo)  # type: ignore[arg-type]


async def test_concurrent_misses_share_one_read_and_survive_a_cancelled_caller() -> None:
    repo = SlowRepo()
    cache = cache_of(repo)
    first = asyncio.create_task(cache.get("t", "wf", None))
    others = [asyncio.create_task(cache.get("t", "wf", None)) for _ in range(20)]
    await asyncio.sleep(0.01)
    first.cancel()
    repo.release.set()
    results: list[Any] = await asyncio.gather(*others)
    assert repo.reads == 1
    assert {r.record.version for r in results} == {1}
    # Cached now: no further read.
    assert (await cache.get("t", "wf", None)) is results[0]
    assert repo.reads == 1


async def test_a_change_on_this_replica_is_not_answered_by_an_earlier_read() -> None:
    repo = SlowRepo()
    cache = cache_of(repo)
    before = asyncio.create_task(cache.get("t", "wf", None))
    await asyncio.sleep(0.01)
    repo.version = 2
    cache.invalidate("t", "wf")
    after = asyncio.create_task(cache.get("t", "wf", None))
    await asyncio.sleep(0.01)
    repo.release.set()
    assert repo.reads == 2
    fresh = await after
    assert fresh is not None and fresh.record.version == 2
    assert (await before) is not None
