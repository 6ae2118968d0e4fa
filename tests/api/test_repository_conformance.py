"""One conformance suite over both ExecutionRepository adapters."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from nodedrop.api.errors import NotFoundError, VersionConflictError
from nodedrop.api.model import ExecutionFilter, NewExecution, RecordedEvent, Scope, Status
from nodedrop.api.repository import ExecutionRepository

T1, T2 = "tenant-a", "tenant-b"


def new_execution(tenant: str = T1, key: str | None = None, **kw: object) -> NewExecution:
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant,
        "workflow_id": None,
        "workflow_version": 0,
        "definition_json": '{"name":"w","nodes":[]}',
        "mode": "queue",
        "trigger_kind": "manual",
        "trigger_data_json": '{"n":1}',
        "max_attempts": 3,
        "priority": 0,
        "run_at": datetime.now(UTC),
        "idempotency_key": key,
    }
    fields.update(kw)
    return NewExecution(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def tenants(repo: ExecutionRepository) -> ExecutionRepository:
    await repo.ensure_tenant(T1, "A")
    await repo.ensure_tenant(T2, "B")
    await repo.ensure_tenant(T1, "A again")
    return repo


async def test_api_keys_roundtrip_and_revoke(tenants: ExecutionRepository) -> None:
    repo = tenants
    rec = await repo.insert_api_key(
        "abc123abc123", T1, name="ci", key_hash=b"h" * 32, scopes=[Scope.READ], prefix="ndk_abc"
    )
    assert rec.scopes == (Scope.READ,) and rec.revoked_at is None
    got = await repo.get_api_key("abc123abc123")
    assert got is not None and got.key_hash == b"h" * 32 and got.tenant_id == T1
    assert [k.id for k in await repo.list_api_keys(T1)] == ["abc123abc123"]
    assert await repo.list_api_keys(T2) == []
    assert await repo.revoke_api_key("abc123abc123", T2) is None
    revoked = await repo.revoke_api_key("abc123abc123", T1)
    assert revoked is not None and revoked.revoked_at is not None
    assert await repo.get_api_key("nope") is None


async def test_workflow_versions(tenants: ExecutionRepository) -> None:
    repo = tenants
    wf = await repo.create_workflow(T1, "wf1", "orders", '{"v":1}')
    assert wf.version == 1
    v2 = await repo.update_workflow(T1, "wf1", "orders2", '{"v":2}', expected_version=1)
    assert v2.version == 2
    with pytest.raises(VersionConflictError):
        await repo.update_workflow(T1, "wf1", "x", "{}", expected_version=1)
    with pytest.raises(NotFoundError):
        await repo.update_workflow(T2, "wf1", "x", "{}", expected_version=None)
    latest = await repo.get_workflow(T1, "wf1", None)
    assert latest is not None and latest.version == 2 and latest.definition_json == '{"v":2}'
    old = await repo.get_workflow(T1, "wf1", 1)
    assert old is not None and old.definition_json == '{"v":1}' and old.name == "orders"
    assert await repo.get_workflow(T2, "wf1", None) is None
    versions = await repo.list_workflow_versions(T1, "wf1", None, 10)
    assert versions is not None and [v.version for v in versions] == [2, 1]
    page = await repo.list_workflow_versions(T1, "wf1", 2, 10)
    assert page is not None and [v.version for v in page] == [1]
    assert await repo.list_workflow_versions(T2, "wf1", None, 10) is None
    assert not await repo.delete_workflow(T2, "wf1")
    assert await repo.delete_workflow(T1, "wf1")
    assert await repo.get_workflow(T1, "wf1", None) is None
    assert not await repo.delete_workflow(T1, "wf1")


async def test_list_workflows_prefix_and_cursor(tenants: ExecutionRepository) -> None:
    repo = tenants
    for i, name in enumerate(["b-two", "a-one", "b-one", "c"]):
        await repo.create_workflow(T1, f"w{i}", name, "{}")
    await repo.create_workflow(T2, "other", "b-zzz", "{}")
    page1 = await repo.list_workflows(T1, "b-", None, 1)
    assert [w.name for w in page1] == ["b-one"]
    page2 = await repo.list_workflows(T1, "b-", (page1[0].name, page1[0].id), 5)
    assert [w.name for w in page2] == ["b-two"]
    assert len(await repo.list_workflows(T1, "", None, 10)) == 4


async def test_idempotent_insert_concurrent(tenants: ExecutionRepository) -> None:
    repo = tenants
    batch = [new_execution(key="same") for _ in range(50)]
    results = await asyncio.gather(*(repo.insert_executions([e]) for e in batch))
    outcomes = [r[0] for r in results]
    assert sum(o.created for o in outcomes) == 1
    assert len({o.execution_id for o in outcomes}) == 1
    # The same key in another tenant is another execution.
    other = await repo.insert_executions([new_execution(T2, key="same")])
    assert other[0].created and other[0].execution_id != outcomes[0].execution_id
    # Duplicates inside one batch collapse too, in the batch's order.
    dup = await repo.insert_executions([new_execution(key="k2"), new_execution(key="k2")])
    assert [o.created for o in dup] == [True, False]
    assert dup[0].execution_id == dup[1].execution_id


async def test_get_and_list_executions_scoped_and_paged(tenants: ExecutionRepository) -> None:
    repo = tenants
    ids = []
    for i in range(7):
        out = await repo.insert_executions([new_execution(workflow_id="wf" if i % 2 else None)])
        ids.append(out[0].execution_id)
    await repo.insert_executions([new_execution(T2)])
    got = await repo.get_execution(T1, ids[0])
    assert got is not None and got.status is Status.QUEUED and got.trigger_data_json == '{"n":1}'
    assert await repo.get_execution(T2, ids[0]) is None
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = await repo.list_executions(T1, ExecutionFilter(), after, 3)
        seen += [e.id for e in page]
        if len(page) < 3:
            break
        after = (page[-1].created_at, page[-1].id)
    assert sorted(seen) == sorted(ids) and len(seen) == 7
    only_wf = await repo.list_executions(T1, ExecutionFilter(workflow_id="wf"), None, 50)
    assert len(only_wf) == 3
    await repo.set_status(ids[0], Status.CANCELLED, None)
    cancelled = await repo.list_executions(
        T1, ExecutionFilter(statuses=(Status.CANCELLED,)), None, 50
    )
    assert [e.id for e in cancelled] == [ids[0]]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await repo.list_executions(T1, ExecutionFilter(created_after=future), None, 50) == []
    # A finished execution is not moved again.
    assert not await repo.set_status(ids[0], Status.FAILED, '{"message":"x"}')


async def test_list_executions_by_several_statuses_pages_newest_first(
    tenants: ExecutionRepository,
) -> None:
    repo = tenants
    ids = []
    for i in range(12):
        out = await repo.insert_executions([new_execution(workflow_id="wf" if i % 3 else None)])
        ids.append(out[0].execution_id)
    await repo.insert_executions([new_execution(T2)])
    outcome = {ids[i]: Status.FAILED for i in (1, 4, 6, 11)}
    outcome |= {ids[i]: Status.CANCELLED for i in (2, 7, 9)}
    outcome |= {ids[i]: Status.COMPLETED for i in (0, 3)}
    for eid, status in outcome.items():
        await repo.set_status(eid, status, None)
    everything = await repo.list_executions(T1, ExecutionFilter(), None, 50)
    order = [e.id for e in everything]
    wanted = (Status.FAILED, Status.CANCELLED)
    expected = [eid for eid in order if outcome.get(eid) in wanted]
    for size in (1, 2, 3, 50):
        seen: list[str] = []
        after = None
        for _ in range(20):
            page = await repo.list_executions(T1, ExecutionFilter(statuses=wanted), after, size)
            seen += [e.id for e in page]
            if len(page) < size:
                break
            after = (page[-1].created_at, page[-1].id)
        assert seen == expected, size
    in_wf = await repo.list_executions(
        T1, ExecutionFilter(workflow_id="wf", statuses=wanted), None, 50
    )
    assert [e.id for e in in_wf] == [eid for eid in expected if ids.index(eid) % 3]
    # Unfinished statuses filter the same way.
    queued = await repo.list_executions(
        T1, ExecutionFilter(statuses=(Status.QUEUED, Status.COMPLETED)), None, 50
    )
    assert [e.id for e in queued] == [
        eid for eid in order if outcome.get(eid, Status.QUEUED) in (Status.QUEUED, Status.COMPLETED)
    ]


async def test_list_executions_by_trigger_kind_with_every_other_filter(
    tenants: ExecutionRepository,
) -> None:
    repo = tenants
    kinds = ["manual", "webhook", "schedule", "webhook", "retry", "webhook", "manual"]
    ids = []
    for i, kind in enumerate(kinds):
        out = await repo.insert_executions(
            [new_execution(workflow_id="wf" if i % 2 else None, trigger_kind=kind)]
        )
        ids.append(out[0].execution_id)
    await repo.insert_executions([new_execution(T2, trigger_kind="webhook")])
    await repo.set_status(ids[3], Status.FAILED, None)
    order = [e.id for e in await repo.list_executions(T1, ExecutionFilter(), None, 50)]

    def expect(*picked: int) -> list[str]:
        return [eid for eid in order if ids.index(eid) in picked]

    async def listed(**kw: object) -> list[str]:
        page = await repo.list_executions(T1, ExecutionFilter(**kw), None, 50)  # type: ignore[arg-type]
        return [e.id for e in page]

    assert await listed(trigger_kinds=("webhook",)) == expect(1, 3, 5)
    assert await listed(trigger_kinds=("webhook", "schedule")) == expect(1, 2, 3, 5)
    assert await listed(trigger_kinds=("webhook",), statuses=(Status.QUEUED,)) == expect(1, 5)
    assert await listed(trigger_kinds=("webhook",), workflow_id="wf") == expect(1, 3, 5)
    assert await listed(trigger_kinds=("manual",), workflow_id="wf") == []
    assert await listed(trigger_kinds=("sub_workflow",)) == []
    # Cursor pages of one kind: each page full, none skipped.
    page = await repo.list_executions(T1, ExecutionFilter(trigger_kinds=("webhook",)), None, 2)
    rest = await repo.list_executions(
        T1, ExecutionFilter(trigger_kinds=("webhook",)), (page[-1].created_at, page[-1].id), 2
    )
    assert [e.id for e in page + rest] == expect(1, 3, 5)


def ev(
    eid: str, seq: int, type_: str, node: str = "", data: str = "", **kw: object
) -> RecordedEvent:
    base = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)
    return RecordedEvent(eid, seq, type_, base, node, 1, data, **kw)  # type: ignore[arg-type]


async def test_record_events_idempotent(tenants: ExecutionRepository) -> None:
    repo = tenants
    eid = (await repo.insert_executions([new_execution(workflow_id="wf")]))[0].execution_id
    events = [
        ev(eid, 1, "execution_queued"),
        ev(eid, 2, "execution_started"),
        ev(eid, 3, "node_started", "a"),
        ev(eid, 4, "node_completed", "a", '{"main":[{"x":1},{"x":2}]}'),
        ev(eid, 5, "node_started", "b"),
        ev(eid, 6, "node_failed", "b", error_json='{"message":"boom"}'),
        ev(eid, 7, "execution_failed", error_json='{"message":"boom","node_id":"b"}'),
    ]
    assert await repo.record_events(events[:4]) == 4
    assert await repo.record_events(events) == 3
    first = await repo.get_execution(T1, eid, with_node_runs=True)
    assert await repo.record_events(events) == 0
    # A stray non-terminal event after the end cannot reopen the execution.
    assert await repo.record_events([ev(eid, 8, "execution_started")]) == 1
    again = await repo.get_execution(T1, eid, with_node_runs=True)
    assert first is not None and again is not None
    assert again.status is Status.FAILED and again.error_json == first.error_json
    assert again.node_runs == first.node_runs
    runs = {r.node_id: r for r in again.node_runs}
    assert runs["a"].status == "completed" and runs["a"].output_item_count == 2
    assert runs["b"].status == "failed" and runs["b"].error_json == '{"message":"boom"}'
    assert again.started_at is not None and again.finished_at is not None
    # Events of unknown executions are ignored, not stored.
    assert await repo.record_events([ev("unknown", 1, "execution_started")]) == 0
    listed = await repo.list_events(eid, 5, 2)
    assert [e.sequence for e in listed] == [6, 7]


def at(eid: str, seq: int, type_: str, attempt: int, **kw: object) -> RecordedEvent:
    base = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seq)
    return RecordedEvent(eid, seq, type_, base, "", attempt, **kw)  # type: ignore[arg-type]


async def test_a_failed_queue_retry_opens_a_new_round(tenants: ExecutionRepository) -> None:
    repo = tenants
    ended = [
        at("", 1, "execution_queued", 1),
        at("", 2, "execution_started", 1),
        at("", 3, "execution_failed", 1, error_json='{"message":"boom"}'),
    ]
    # The retry's events carry the next attempt, in a later batch ...
    eid = (await repo.insert_executions([new_execution()]))[0].execution_id
    await repo.record_events([dataclasses.replace(e, execution_id=eid) for e in ended])
    await repo.record_events([at(eid, 4, "execution_queued", 2)])
    reopened = await repo.get_execution(T1, eid)
    assert reopened is not None
    assert (reopened.status, reopened.attempt) == (Status.QUEUED, 2)
    assert reopened.finished_at is None and reopened.error_json is None
    await repo.record_events(
        [
            at(eid, 5, "execution_started", 2),
            at(eid, 6, "execution_completed", 2, data_json='{"ok": true}'),
        ]
    )
    done = await repo.get_execution(T1, eid)
    assert done is not None
    assert (done.status, done.attempt, done.error_json) == (Status.COMPLETED, 2, None)
    assert done.finished_at is not None and done.result_json is not None
    # ... or in the batch that ends the first round.
    other = (await repo.insert_executions([new_execution()]))[0].execution_id
    await repo.record_events(
        [dataclasses.replace(e, execution_id=other) for e in ended]
        + [at(other, 4, "execution_queued", 2), at(other, 5, "execution_started", 2)]
    )
    running = await repo.get_execution(T1, other)
    assert running is not None
    assert (running.status, running.attempt) == (Status.RUNNING, 2)
    assert running.finished_at is None and running.error_json is None


async def test_stats(tenants: ExecutionRepository) -> None:
    repo = tenants
    start = datetime.now(UTC) - timedelta(minutes=1)
    for i, final in enumerate(["execution_completed"] * 3 + ["execution_failed"]):
        eid = (await repo.insert_executions([new_execution(workflow_id="wf")]))[0].execution_id
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        await repo.record_events(
            [
                RecordedEvent(eid, 1, "execution_started", t0, "", 1),
                RecordedEvent(eid, 2, "node_started", t0, "n", 1),
                RecordedEvent(
                    eid,
                    3,
                    "node_failed" if "failed" in final else "node_completed",
                    t0 + timedelta(seconds=i + 1),
                    "n",
                    1,
                    "",
                ),
                RecordedEvent(eid, 4, final, t0 + timedelta(seconds=i + 1), "", 1),
            ]
        )
    rows = await repo.stats(T1, None, start, datetime.now(UTC) + timedelta(minutes=1))
    assert len(rows) == 1
    row = rows[0]
    assert row.workflow_id == "wf" and row.total == 4
    assert dict(row.status_counts) == {Status.COMPLETED: 3, Status.FAILED: 1}
    assert row.p50_s == pytest.approx(2.5) and row.p95_s == pytest.approx(3.85)
    assert row.nodes[0].runs == 4 and row.nodes[0].failures == 1
    assert await repo.stats(T2, None, start, datetime.now(UTC)) == []


async def test_stats_buckets(tenants: ExecutionRepository) -> None:
    repo = tenants
    ids = []
    for workflow_id in ["wf", "wf", None]:
        out = await repo.insert_executions([new_execution(workflow_id=workflow_id)])
        ids.append(out[0].execution_id)
        await asyncio.sleep(0.3)
    await repo.set_status(ids[1], Status.FAILED, None)
    await repo.insert_executions([new_execution(T2)])
    listed = await repo.list_executions(T1, ExecutionFilter(), None, 50)
    created = {e.id: e.created_at for e in listed}
    start = min(created.values()) - timedelta(seconds=1.1)
    end = max(created.values()) + timedelta(seconds=5)
    width = timedelta(seconds=1.5)

    def expected(picked: list[str]) -> list[tuple[int, Status, int]]:
        counts: dict[tuple[int, Status], int] = {}
        for e in listed:
            if e.id in picked:
                key = (int((created[e.id] - start) / width), e.status)
                counts[key] = counts.get(key, 0) + 1
        return sorted((i, status, n) for (i, status), n in counts.items())

    got = await repo.stats_buckets(T1, None, start, end, width)
    assert got == expected(ids)
    assert {i for i, _, _ in got} <= {0, 1}  # 1.1 s to 1.7 s after start
    assert sum(n for _, _, n in got) == 3
    assert await repo.stats_buckets(T1, "wf", start, end, width) == expected(ids[:2])
    assert await repo.stats_buckets(T2, "wf", start, end, width) == []


async def test_list_unfinished(tenants: ExecutionRepository) -> None:
    repo = tenants
    ids = [(await repo.insert_executions([new_execution()]))[0].execution_id for _ in range(3)]
    await repo.insert_executions([new_execution(mode="direct")])
    await repo.set_status(ids[1], Status.COMPLETED, None)
    later = datetime.now(UTC) + timedelta(seconds=1)
    found = await repo.list_unfinished(later, None, 1)
    assert len(found) == 1
    rest = await repo.list_unfinished(later, (found[0].created_at, found[0].id), 10)
    assert {e.id for e in found + rest} == {ids[0], ids[2]}


async def test_count_unfinished_by_tenant(tenants: ExecutionRepository) -> None:
    repo = tenants
    ids = [(await repo.insert_executions([new_execution()]))[0].execution_id for _ in range(4)]
    await repo.insert_executions([new_execution(T2)])
    await repo.set_status(ids[0], Status.RUNNING, None)
    await repo.set_status(ids[1], Status.RETRY_SCHEDULED, None)
    await repo.set_status(ids[2], Status.FAILED, None)
    assert await repo.count_unfinished(T1) == {
        Status.QUEUED: 1,
        Status.RUNNING: 1,
        Status.RETRY_SCHEDULED: 1,
    }
    assert await repo.count_unfinished(T2) == {Status.QUEUED: 1}
    assert await repo.count_unfinished("nobody") == {}


async def test_adopt_unknown_executions(tenants: ExecutionRepository) -> None:
    from nodedrop.api.model import AdoptedExecution  # noqa: PLC0415

    repo = tenants
    wf = await repo.create_workflow(T1, str(uuid.uuid4()), "nightly", '{"name":"nightly"}')
    known = new_execution()
    await repo.insert_executions([known])
    seen = datetime.now(UTC)
    cron = AdoptedExecution(str(uuid.uuid4()), T1, wf.id, seen)
    stranger = AdoptedExecution(str(uuid.uuid4()), "tenant-new", "", seen)
    batch = [AdoptedExecution(known.id, T1, "", seen), cron, stranger]
    assert await repo.adopt_executions(batch) == 2
    assert await repo.adopt_executions(batch) == 0  # a replay adopts nothing
    got = await repo.get_execution(T1, cron.id)
    assert got is not None and got.trigger_kind == "schedule" and got.mode == "queue"
    assert got.workflow_id == wf.id and got.workflow_version == 1
    assert got.definition_json == '{"name":"nightly"}' and got.status is Status.QUEUED
    other = await repo.get_execution("tenant-new", stranger.id)
    assert other is not None and other.workflow_id is None and other.definition_json == "{}"
    # Recorded events now apply to the adopted execution.
    await repo.record_events([ev(cron.id, 1, "execution_started")])
    started = await repo.get_execution(T1, cron.id)
    assert started is not None and started.status is Status.RUNNING


async def test_execution_of_a_stored_version_reads_that_version(
    tenants: ExecutionRepository,
) -> None:
    # The adapter may keep a reference instead of a copy (PostgreSQL does):
    # every read path still returns the version's definition, also after the
    # workflow moved on to a new version and was deleted.
    repo = tenants
    await repo.create_workflow(T1, "wf-ref", "ref", '{"v":1}')
    await repo.update_workflow(T1, "wf-ref", "ref", '{"v":2}', expected_version=1)
    by_ref = new_execution(
        workflow_id="wf-ref",
        workflow_version=1,
        definition_json='{"v":1}',
        definition_is_version=True,
    )
    inline = new_execution()
    await repo.insert_executions([by_ref, inline])
    assert await repo.delete_workflow(T1, "wf-ref")
    got = await repo.get_execution(T1, by_ref.id)
    assert got is not None and got.definition_json == '{"v":1}'
    anyone = await repo.get_execution(None, by_ref.id)
    assert anyone is not None and anyone.definition_json == '{"v":1}'
    listed = {
        r.id: r.definition_json
        for r in await repo.list_executions(T1, ExecutionFilter(None, (), None, None), None, 10)
    }
    assert listed[by_ref.id] == '{"v":1}'
    assert listed[inline.id] == inline.definition_json
    unfinished = {
        r.id: r.definition_json
        for r in await repo.list_unfinished(datetime.now(UTC) + timedelta(minutes=1), None, 100)
    }
    assert unfinished[by_ref.id] == '{"v":1}'
