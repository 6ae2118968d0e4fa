"""The history recorder over the store's in-memory EventLog and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nodedrop.api.model import NewExecution, Status
from nodedrop.api.recorder import HistoryRecorder
from nodedrop.api.repository_pg import PostgresRepository
from nodedrop.store import EventDraft, EventError, EventType, JobSpec
from nodedrop.store.memory import MemoryStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS


async def test_recorder_writes_state_and_ignores_replays(pg_repo: PostgresRepository) -> None:
    await pg_repo.ensure_tenant("t", "t")
    eid = str(uuid.uuid4())
    await pg_repo.insert_executions(
        [NewExecution(eid, "t", None, 0, "{}", "queue", "manual", "", 3, 0, datetime.now(UTC))]
    )
    store = MemoryStore()
    await store.enqueue(JobSpec(eid, "t", "", "{}", **DEFAULT_JOB_SETTINGS), 1_700_000_000_000)
    drafts = [
        EventDraft(EventType.EXECUTION_STARTED),
        EventDraft(EventType.NODE_STARTED, node_id="a"),
        EventDraft(EventType.NODE_COMPLETED, node_id="a", data_json='{"main":[{"n":1}]}'),
        EventDraft(EventType.NODE_STARTED, node_id="b"),
        EventDraft(EventType.NODE_FAILED, node_id="b", error=EventError("boom", "node_failed")),
        EventDraft(EventType.EXECUTION_FAILED, error=EventError("boom", "node_failed")),
    ]
    records = await store.append(eid, drafts, 1_700_000_000_000)
    recorder = HistoryRecorder(store, pg_repo, consumer="test", block_ms=10)
    for _ in range(5):
        if await recorder.step() == 0:
            break
    # The enqueue's EXECUTION_QUEUED event is recorded too.
    assert recorder.recorded == len(records) + 1
    got = await pg_repo.get_execution("t", eid, with_node_runs=True)
    assert got is not None and got.status is Status.FAILED
    assert {r.node_id: r.status for r in got.node_runs} == {"a": "completed", "b": "failed"}
    # The same events again (a replay after a crash before the ack) change nothing.
    from nodedrop.api.recorder import to_recorded  # noqa: PLC0415

    assert await pg_repo.record_events([to_recorded(r) for r in records]) == 0
    again = await pg_repo.get_execution("t", eid, with_node_runs=True)
    assert again == got
