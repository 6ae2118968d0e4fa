"""Queue-mode submissions whose INSERT flush hands each created row's job on to
the store enqueue: rows committed first, one job per created row, duplicates
enqueue nothing, and a failed enqueue still acknowledges the committed row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest

from nodedrop.api.batching import InsertBatcher
from nodedrop.api.executions import ExecutionManager, Submission
from nodedrop.api.model import NewExecution, Status
from nodedrop.api.repository import ExecutionRepository, InsertOutcome
from nodedrop.api.store_queue import StoreQueue
from nodedrop.common import telemetry
from nodedrop.contract import from_json
from nodedrop.store import Keys
from nodedrop.store.config import StoreConfig
from nodedrop.store.redis_store import RedisStore
from tests.api.test_rpc import FakeQueue
from tests.helpers.ports import free_port

DOC = {
    "name": "w",
    "nodes": [{"id": "start", "type": "manual_trigger"}, {"id": "n", "type": "noop"}],
    "connections": [{"from": "start", "to": "n"}],
}


def _submission(idempotency_key: str | None = None) -> Submission:
    return Submission(
        tenant_id="tenant-a",
        definition=from_json(orjson.dumps(DOC).decode()),
        workflow_id=None,
        workflow_version=0,
        trigger_data_json='{"a": 1}',
        mode="queue",
        trigger_kind="manual",
        priority=0,
        delay_s=0.0,
        idempotency_key=idempotency_key,
    )


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    # No per-tenant cap: these tests read back every job they submit, and fair
    # admission parks a tenant's jobs past its share of a partition.
    s = RedisStore.from_url(redis_url, StoreConfig(keys=Keys(redis_prefix, 4), tenant_max_active=0))
    try:
        await s.ensure_groups()
        yield s
    finally:
        await s.delete_all()
        await s.close()


async def _manager(
    repo: ExecutionRepository, store: RedisStore
) -> tuple[ExecutionManager, InsertBatcher, StoreQueue]:
    await repo.ensure_tenant("tenant-a", "a")
    queue = StoreQueue(store, FakeQueue())
    batcher = InsertBatcher(repo, handoff=queue)
    queue.start()
    batcher.start()
    return ExecutionManager(repo, batcher, queue, None), batcher, queue


async def test_the_insert_flush_enqueues_each_created_rows_job(
    repo: ExecutionRepository, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)
    manager, batcher, queue = await _manager(repo, store)
    try:
        got = await asyncio.gather(*(manager.submit(_submission()) for _ in range(40)))
        again = await asyncio.gather(
            manager.submit(_submission("k1")), manager.submit(_submission("k1"))
        )
    finally:
        await batcher.stop()
        await queue.stop()
    assert {(s.status, s.deduplicated) for s in got} == {(Status.QUEUED, False)}
    assert sorted(s.deduplicated for s in again) == [False, True]
    assert again[0].execution_id == again[1].execution_id
    ids = [s.execution_id for s in got] + [again[0].execution_id]
    states = await store.states(ids)
    assert all(st is not None and st.tenant_id == "tenant-a" for st in states)
    jobs = await store.read_jobs("w", 100, 100)
    assert sorted(d.execution_id for d in jobs) == sorted(ids)
    for execution_id in ids:
        assert await repo.get_execution("tenant-a", execution_id) is not None


async def test_a_failed_enqueue_still_acknowledges_the_committed_row(
    repo: ExecutionRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)
    dead = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", StoreConfig())
    manager, batcher, queue = await _manager(repo, dead)
    try:
        got = await manager.submit(_submission())
    finally:
        await batcher.stop()
        await queue.stop()
        await dead.close()
    assert (got.status, got.deduplicated) == (Status.QUEUED, False)
    record = await repo.get_execution("tenant-a", got.execution_id)
    assert record is not None and record.status is Status.QUEUED


class GatedInserts:
    """The repository, with each INSERT held until the test lets it go."""

    def __init__(self, repo: ExecutionRepository) -> None:
        self._repo = repo
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    async def insert_executions(self, batch: Sequence[NewExecution]) -> list[InsertOutcome]:
        self.entered.set()
        await self.gate.wait()
        return await self._repo.insert_executions(batch)


async def test_a_stopped_store_queue_fails_the_handed_on_job_not_the_call(
    repo: ExecutionRepository, store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry, "_exporting", False)
    gated = GatedInserts(repo)
    manager, batcher, queue = await _manager(gated, store)
    try:
        submitting = asyncio.create_task(manager.submit(_submission()))
        await gated.entered.wait()
        # The job was built while the queue ran and is handed on after it
        # stopped: the row is committed and acknowledged, orphan recovery
        # enqueues it later.
        await queue.stop()
        gated.gate.set()
        got = await submitting
    finally:
        gated.gate.set()
        await batcher.stop()
    assert (got.status, got.deduplicated) == (Status.QUEUED, False)
    assert await repo.get_execution("tenant-a", got.execution_id) is not None
    assert await store.states([got.execution_id]) == [None]
