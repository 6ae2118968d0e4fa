"""One suite, both adapters: the worker and scheduler cannot tell them apart."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest

from nodedrop.store import (
    DEFAULT_CANCEL_REASON,
    Acquired,
    Commit,
    Delivery,
    EventDraft,
    EventError,
    EventLog,
    EventType,
    ExecutionStatus,
    InvalidJob,
    JobQueue,
    JobSpec,
    NotFound,
    PermissionDenied,
    StateStore,
    Transition,
)
from nodedrop.store.memory import MemoryStore
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

Store = RedisStore | MemoryStore
S = ExecutionStatus
LEASE = 30_000


def now() -> int:
    return int(time.time() * 1000)


def spec(**kw: object) -> JobSpec:
    base: dict[str, object] = {
        "execution_id": f"ex-{uuid.uuid4().hex[:12]}",
        "tenant_id": "t1",
        "workflow_id": "wf1",
        "workflow_json": '{"nodes": []}',
        "trigger_json": '{"n": 1}',
    }
    base = {**DEFAULT_JOB_SETTINGS, **base, **kw}
    return JobSpec(**base)  # type: ignore[arg-type]


async def take_one(store: Store) -> tuple:  # type: ignore[type-arg]
    ds = await store.read_jobs("w1", 100, 0)
    assert len(ds) == 1, ds
    (acq,) = await store.acquire(ds, LEASE, now())
    return ds[0], acq


def test_adapters_satisfy_ports(store: Store) -> None:
    assert isinstance(store, JobQueue)
    assert isinstance(store, StateStore)
    assert isinstance(store, EventLog)


async def test_enqueue_is_idempotent_and_queues_one_job(store: Store) -> None:
    s = spec()
    first = await store.enqueue(s, now())
    again = await store.enqueue(s, now())
    assert (first.created, first.status) == (True, S.QUEUED)
    assert (again.created, again.status) == (False, S.QUEUED)
    events = await store.read(s.execution_id, 0, 100)
    assert [(e.sequence, e.type) for e in events] == [(1, EventType.EXECUTION_QUEUED)]
    assert events[0].tenant_id == "t1" and events[0].workflow_id == "wf1"
    ds = await store.read_jobs("w1", 100, 0)
    assert [d.execution_id for d in ds] == [s.execution_id]


async def test_invalid_spec_is_refused_with_its_field(store: Store) -> None:
    with pytest.raises(InvalidJob) as e:
        await store.enqueue(spec(execution_id="bad id with spaces"), now())
    assert e.value.field == "execution_id"
    with pytest.raises(InvalidJob) as e:
        await store.enqueue(spec(max_attempts=0), now())
    assert e.value.field == "max_attempts"


async def test_full_run_commits_fenced_and_finishes(store: Store) -> None:
    s = spec(completed_outputs={"a": '{"main": [{"x": 1}]}'})
    await store.enqueue(s, now())
    _, acq = await take_one(store)
    assert acq.lease is not None and acq.context is not None
    assert acq.context.outputs == {"a": '{"main": [{"x": 1}]}'}
    assert acq.context.trigger_json == '{"n": 1}'
    assert acq.context.attempts_left == 2 and acq.context.round_attempt == 1
    assert await store.pending() == 1
    out = orjson.dumps({"main": [{"y": 2}]}).decode()
    (r1,) = await store.commit(
        [
            Commit(
                acq.lease,
                outputs={"b": out},
                events=(
                    EventDraft(EventType.NODE_STARTED, "b"),
                    EventDraft(EventType.NODE_COMPLETED, "b", out),
                ),
            )
        ],
        now(),
    )
    assert r1.ok and r1.first_sequence == 3
    assert await store.outputs(s.execution_id) == {"a": '{"main": [{"x": 1}]}', "b": out}
    (r2,) = await store.commit(
        [
            Commit(
                acq.lease,
                events=(EventDraft(EventType.EXECUTION_COMPLETED, data_json="{}"),),
                transition=Transition(S.COMPLETED),
            )
        ],
        now(),
    )
    assert r2.ok
    events = await store.read(s.execution_id, 0, 100)
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert [e.type for e in events] == [
        EventType.EXECUTION_QUEUED,
        EventType.EXECUTION_STARTED,
        EventType.NODE_STARTED,
        EventType.NODE_COMPLETED,
        EventType.EXECUTION_COMPLETED,
    ]
    assert events[-1].terminal and events[3].data_json == out
    assert [e.sequence for e in await store.read(s.execution_id, 3, 1)] == [4]
    assert await store.pending() == 0
    (st,) = await store.states([s.execution_id])
    assert st is not None and st.status is S.COMPLETED
    assert (await store.stats(now())).completed == 1
    # A terminal execution refuses any later write.
    (late,) = await store.commit([Commit(acq.lease, outputs={"c": "{}"})], now())
    assert not late.ok
    # A heartbeat that crossed the last commit is not a fence refusal.
    (beat,) = await store.renew([acq.lease], LEASE, now(), "w1")
    assert beat.ok and not beat.cancel_requested
    # Nothing resumes a terminal execution: its checkpoints are gone.
    assert await store.outputs(s.execution_id) == {}


async def test_stale_owner_is_fenced_out_after_reclaim(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    _, old = await take_one(store)
    report = await store.reclaim(min_idle_ms=0, max_reclaims=3, limit=100)
    assert report.requeued == 1
    ds = await store.read_jobs("w2", 100, 0)
    (new,) = await store.acquire(ds, LEASE, now())
    assert old.lease and new.lease and new.lease.fence > old.lease.fence
    (refused,) = await store.commit([Commit(old.lease, outputs={"n": "{}"})], now())
    assert not refused.ok
    (renewal,) = await store.renew(([old.lease]), LEASE, now(), "w1")
    assert not renewal.ok
    (ok,) = await store.commit([Commit(new.lease, transition=Transition(S.COMPLETED))], now())
    assert ok.ok and await store.pending() == 0
    # The restarted attempt does not announce a second start.
    types = [e.type for e in await store.read(s.execution_id, 0, 100)]
    assert types.count(EventType.EXECUTION_STARTED) == 1


async def test_reclaim_past_the_limit_dead_letters_with_reason(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    for _ in range(2):
        await take_one(store)
        await store.reclaim(min_idle_ms=0, max_reclaims=1, limit=100)
    jobs, token = await store.list_failed(10, "")
    assert [j.execution_id for j in jobs] == [s.execution_id] and token == ""
    assert "stalled" in jobs[0].reason
    events = await store.read(s.execution_id, 0, 100)
    assert events[-1].type is EventType.EXECUTION_FAILED and events[-1].error is not None
    assert await store.pending() == 0


async def test_renewal_keeps_a_live_job_from_reclaim(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    _, acq = await take_one(store)
    assert acq.lease
    await asyncio.sleep(0.05)
    (r,) = await store.renew([acq.lease], LEASE, now(), "w1")
    assert r.ok and not r.cancel_requested
    assert (await store.reclaim(min_idle_ms=40, max_reclaims=3, limit=10)).requeued == 0


async def test_retry_is_delayed_then_resumes_with_outputs(store: Store) -> None:
    s = spec(max_attempts=3)
    await store.enqueue(s, now())
    _, acq = await take_one(store)
    assert acq.lease
    t0 = now()
    (r,) = await store.commit(
        [
            Commit(
                acq.lease,
                outputs={"a": "{}"},
                events=(
                    EventDraft(EventType.NODE_FAILED, "b", error=EventError("boom", "E", True)),
                    EventDraft(EventType.EXECUTION_RETRYING, data_json='{"delay_s": 2}'),
                ),
                transition=Transition(S.RETRY_SCHEDULED, retry_at_ms=t0 + 200),
            )
        ],
        t0,
    )
    assert r.ok
    (st,) = await store.states([s.execution_id])
    assert st and st.status is S.RETRY_SCHEDULED and st.attempt == 2
    assert (await store.stats(now())).delayed == 1
    assert await store.move_due(t0 + 100, 100) == 0
    assert await store.move_due(t0 + 200, 100) == 1
    ds = await store.read_jobs("w1", 100, 0)
    assert ds[0].attempt == 2
    (acq2,) = await store.acquire(ds, LEASE, now())
    assert acq2.context and acq2.context.attempt == 2 and acq2.context.outputs == {"a": "{}"}
    assert acq2.context.attempts_left == 1 and acq2.context.round_attempt == 2
    events = await store.read(s.execution_id, 0, 100)
    assert events[2].error == EventError("boom", "E", True)
    assert [e.attempt for e in events] == [1, 1, 1, 1, 2]


async def test_failed_queue_list_retry_purge(store: Store) -> None:
    ids = []
    for _ in range(3):
        s = spec()
        ids.append(s.execution_id)
        await store.enqueue(s, now())
    ds = await store.read_jobs("w1", 100, 0)
    acqs = await store.acquire(ds, LEASE, now())
    await store.commit(
        [
            Commit(
                a.lease,
                events=(EventDraft(EventType.EXECUTION_FAILED, error=EventError("nope")),),
                transition=Transition(S.FAILED, dead_letter_reason="nope", failed_node="n1"),
            )
            for a in acqs
            if a.lease
        ],
        now(),
    )
    page1, tok = await store.list_failed(2, "")
    page2, tok2 = await store.list_failed(2, tok)
    assert len(page1) == 2 and len(page2) == 1 and tok and not tok2
    assert {j.execution_id for j in page1 + page2} == set(ids)
    assert page1[0].reason == "nope" and page1[0].node_id == "n1" and page1[0].attempts == 1
    assert (await store.stats(now())).failed == 3
    with pytest.raises(InvalidJob):
        await store.list_failed(2, "garbage")
    assert await store.retry_failed([ids[0], "ex-unknown"], False, now()) == 1
    ds = await store.read_jobs("w1", 100, 0)
    assert [(d.execution_id, d.attempt) for d in ds] == [(ids[0], 2)]
    (acq,) = await store.acquire(ds, LEASE, now())
    assert acq.context and acq.context.attempts_left == 2 and acq.context.round_attempt == 1
    assert await store.purge_failed([ids[1]], False) == 1
    assert await store.purge_failed([], True) == 1
    assert (await store.list_failed(10, ""))[0] == []


async def test_failed_queue_pages_through_failures_of_one_millisecond(store: Store) -> None:
    # One commit round dead-letters many jobs at the same millisecond: pages of
    # any size list each exactly once, however the page boundaries fall.
    ids = set()
    for _ in range(24):
        s = spec()
        ids.add(s.execution_id)
        await store.enqueue(s, now())
    acqs = await store.acquire(await store.read_jobs("w1", 100, 0), LEASE, now())
    failed = Transition(S.FAILED, dead_letter_reason="nope")
    await store.commit([Commit(a.lease, transition=failed) for a in acqs if a.lease], now())
    for size in (1, 2, 5):
        listed: list[str] = []
        token = ""
        for _ in range(len(ids) + 1):
            page, token = await store.list_failed(size, token)
            listed += [j.execution_id for j in page]
            if not token:
                break
        assert sorted(listed) == sorted(ids), size


async def test_cancel_queued_running_unknown_and_foreign(store: Store) -> None:
    queued, running = spec(), spec()
    await store.enqueue(queued, now())
    assert await store.cancel(queued.execution_id, "t1", now()) is S.CANCELLED
    # Its stream entry is acked unstarted.
    ds = await store.read_jobs("w1", 100, 0)
    (skip,) = await store.acquire(ds, LEASE, now())
    assert skip.lease is None and skip.skipped == "terminal"
    await store.enqueue(running, now())
    _, acq = await take_one(store)
    assert acq.lease
    with pytest.raises(PermissionDenied):
        await store.cancel(running.execution_id, "other", now())
    with pytest.raises(NotFound):
        await store.cancel("ex-nope", "t1", now())
    assert await store.cancel(running.execution_id, "", now(), "too slow") is S.RUNNING
    (r,) = await store.renew([acq.lease], LEASE, now(), "w1")
    assert r.ok and r.cancel_requested
    assert r.cancel_error == EventError("too slow", "cancelled", False)
    await store.commit(
        [
            Commit(
                acq.lease,
                events=(EventDraft(EventType.EXECUTION_CANCELLED),),
                transition=Transition(S.CANCELLED),
            )
        ],
        now(),
    )
    assert await store.cancel(running.execution_id, "t1", now()) is S.CANCELLED
    assert await store.pending() == 0
    events = await store.read(queued.execution_id, 0, 10)
    assert [e.type for e in events] == [EventType.EXECUTION_QUEUED, EventType.EXECUTION_CANCELLED]
    # No reason given: the default one.
    assert events[-1].error == EventError(DEFAULT_CANCEL_REASON, "cancelled", False)


async def test_a_cancel_reason_reaches_the_event_or_the_running_worker(store: Store) -> None:
    x = spec()
    await store.enqueue(x, now())
    assert await store.cancel(x.execution_id, "t1", now(), "duplicate order") is S.CANCELLED
    (event,) = await store.read(x.execution_id, 1, 10)
    assert event.type is EventType.EXECUTION_CANCELLED
    assert event.error == EventError("duplicate order", "cancelled", False)
    # Running: the worker learns the reason from its heartbeat.
    y = spec()
    await store.enqueue(y, now())
    acquired = await store.acquire(await store.read_jobs("w1", 100, 0), LEASE, now())
    # x's entry is acked unstarted; y's is leased.
    by_id = {a.delivery.execution_id: a for a in acquired}
    assert by_id[x.execution_id].skipped == "terminal"
    acq = by_id[y.execution_id]
    assert acq.lease
    assert await store.cancel(y.execution_id, "t1", now(), "stop it") is S.RUNNING
    (r,) = await store.renew([acq.lease], LEASE, now(), "w1")
    assert r.cancel_error == EventError("stop it", "cancelled", False)
    # And so does anyone reading the state (a direct run on another API replica).
    (st,) = await store.states([y.execution_id])
    assert st is not None and st.cancel_requested
    assert st.cancel_error == EventError("stop it", "cancelled", False)


async def test_a_lease_without_stream_entry_ends_the_hold(store: Store) -> None:
    """Direct mode holds the execution on the delayed set, then leases it itself."""
    held = spec(run_at_ms=now() + 60_000)
    await store.enqueue(held, now())
    assert (await store.stats(now())).delayed == 1
    p = store.config.keys.partition(held.execution_id)
    own = Delivery(p, 0, "", held.execution_id, 1, "", now())
    (acq,) = await store.acquire([own], LEASE, now())
    assert acq.lease is not None
    st = await store.stats(now())
    assert (st.delayed, st.waiting) == (0, 0)
    assert await store.move_due(now() + 120_000, 10) == 0


async def test_delayed_run_and_priority_lanes(store: Store) -> None:
    later = spec(run_at_ms=now() + 60_000)
    low, high = spec(priority=0), spec(priority=50)
    await store.enqueue(later, now())
    await store.enqueue(low, now())
    await store.enqueue(high, now())
    await asyncio.sleep(0.05)
    st = await store.stats(now())
    assert (st.waiting, st.delayed) == (2, 1)
    assert 40 <= st.oldest_waiting_age_ms < 10_000
    assert {(lane.priority, lane.waiting) for lane in st.lanes} == {(10, 1), (0, 1)}
    ds = await store.read_jobs("w1", 100, 0)
    assert [d.execution_id for d in ds] == [high.execution_id, low.execution_id]
    assert (await store.stats(now())).active == 2


async def test_release_hands_the_attempt_back(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    _, acq = await take_one(store)
    assert acq.lease
    assert await store.release([acq.lease]) == [True]
    (late,) = await store.commit([Commit(acq.lease, outputs={"x": "{}"})], now())
    assert not late.ok
    (st,) = await store.states([s.execution_id])
    assert st is not None and st.status is S.QUEUED
    ds = await store.read_jobs("w2", 100, 0)
    assert [(d.execution_id, d.attempt) for d in ds] == [(s.execution_id, 1)]


async def test_tail_and_consumer_group(store: Store) -> None:
    start = await store.tail_position()
    a, b = spec(), spec()
    await store.enqueue(a, now())
    await store.enqueue(b, now())
    recs = await store.append(a.execution_id, [EventDraft(EventType.NODE_SKIPPED, "n")], now())
    assert [r.sequence for r in recs] == [2]
    entries, cursor = await store.tail(start, 100, 100)
    got = sorted((e.record.execution_id, e.record.sequence) for e in entries)
    assert got == sorted([(a.execution_id, 1), (a.execution_id, 2), (b.execution_id, 1)])
    more, _ = await store.tail(cursor, 100, 10)
    assert more == []
    grp = await store.group_read("rec", "c1", 100, 10)
    assert len(grp) == 3
    await store.group_ack("rec", grp)
    assert await store.group_read("rec", "c1", 100, 10) == []
    with pytest.raises(NotFound):
        await store.append("ex-unknown", [EventDraft(EventType.NODE_SKIPPED)], now())


async def test_a_resent_commit_is_applied_once(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    _, acq = await take_one(store)
    assert acq.lease
    c = Commit(acq.lease, outputs={"a": "{}"}, events=(EventDraft(EventType.NODE_SKIPPED, "a"),))
    first = await store.commit([Commit(c.lease, c.outputs, c.events, number=1)], now())
    again = await store.commit([Commit(c.lease, c.outputs, c.events, number=1)], now())
    assert first[0].ok and not first[0].duplicate
    assert again[0].ok and again[0].duplicate
    assert len(await store.read(s.execution_id, 0, 100)) == 3


async def test_requeue_gives_back_unstarted_entries(store: Store) -> None:
    a, b = spec(), spec()
    await store.enqueue(a, now())
    await store.enqueue(b, now())
    ds = await store.read_jobs("w1", 100, 0)
    assert len(ds) == 2 and await store.pending() == 2
    assert await store.requeue(ds) == 2
    assert await store.pending() == 0
    again = await store.read_jobs("w2", 100, 0)
    assert sorted(d.execution_id for d in again) == sorted([a.execution_id, b.execution_id])


async def test_touch_keeps_unstarted_entries_from_reclaim(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    ds = await store.read_jobs("w1", 100, 0)
    await asyncio.sleep(0.05)
    await store.touch(ds, "w1")
    assert (await store.reclaim(min_idle_ms=40, max_reclaims=3, limit=10)).requeued == 0
    await asyncio.sleep(0.05)
    assert (await store.reclaim(min_idle_ms=40, max_reclaims=3, limit=10)).requeued == 1


async def test_trim_keeps_pending_and_waiting_entries(store: Store) -> None:
    ids = [spec() for _ in range(3)]
    for s in ids:
        await store.enqueue(s, now())
    ds = await store.read_jobs("w1", 100, 0)
    acqs = await store.acquire(ds, LEASE, now())
    done = [a for a in acqs if a.lease][:2]
    await store.commit(
        [Commit(a.lease, transition=Transition(S.COMPLETED)) for a in done if a.lease], now()
    )
    later = spec()
    await store.enqueue(later, now())
    await store.trim()
    st = await store.stats(now())
    assert (st.waiting, st.active, st.completed) == (1, 1, 2)
    assert await store.pending() == 1
    # The pending entry survives the trim: it can still be reclaimed.
    assert (await store.reclaim(min_idle_ms=0, max_reclaims=3, limit=10)).requeued == 1
    got = sorted(d.execution_id for d in await store.read_jobs("w2", 100, 0))
    left = next(a.delivery.execution_id for a in acqs if a not in done)
    assert got == sorted([later.execution_id, left])


async def test_take_reads_and_leases_at_most_count_without_waiting(store: Store) -> None:
    assert await asyncio.wait_for(store.take("w1", 10, LEASE, now()), 0.5) == []
    cancelled = spec()
    await store.enqueue(cancelled, now())
    await store.cancel(cancelled.execution_id, "t1", now())
    specs = [spec() for _ in range(5)]
    high = spec(priority=50)
    for s in [*specs, high]:
        await store.enqueue(s, now())
    got: list[Acquired] = []
    for _ in range(20):
        part = await store.take("w1", 3, LEASE, now())
        assert len(part) <= 3
        got += part
        if len(got) == 7:
            break
    leased = [a for a in got if a.lease is not None]
    skipped = [a for a in got if a.lease is None]
    # The cancelled one's entry is acked unstarted, as acquire does.
    assert [a.delivery.execution_id for a in skipped] == [cancelled.execution_id]
    assert skipped[0].skipped == "terminal"
    for a in leased:
        assert a.context is not None and a.context.trigger_json == '{"n": 1}'
        assert a.lease is not None and a.lease.fence >= 1
        events = await store.read(a.delivery.execution_id, 0, 10)
        assert [e.type for e in events][-1] is EventType.EXECUTION_STARTED
    # Every entry exactly once, then nothing.
    ids = [a.delivery.execution_id for a in got]
    assert sorted(ids) == sorted(s.execution_id for s in [cancelled, *specs, high])
    assert await store.take("w1", 100, LEASE, now()) == []
    # Leased entries stay pending until their end; the skipped one was acked.
    assert await store.pending() == 6


async def test_take_serves_the_higher_lane_first(store: Store) -> None:
    low, high = spec(priority=0), spec(priority=50)
    await store.enqueue(low, now())
    await store.enqueue(high, now())
    got = await store.take("w1", 100, LEASE, now())
    assert [a.delivery.execution_id for a in got] == [high.execution_id, low.execution_id]


async def test_acquire_refuses_an_entry_reclaimed_while_it_waited(store: Store) -> None:
    s = spec()
    await store.enqueue(s, now())
    held = await store.read_jobs("w1", 100, 0)
    # The reader's reply was held up past the lease: the reclaimer requeued it.
    await asyncio.sleep(0.02)
    assert (await store.reclaim(0, 3, 100)).requeued == 1
    (late,) = await store.acquire(held, LEASE, now(), "w1")
    assert late.lease is None and late.skipped == "reclaimed"
    fresh = await store.read_jobs("w2", 100, 0)
    (acq,) = await store.acquire(fresh, LEASE, now(), "w2")
    assert acq.lease is not None and acq.context is not None


async def test_acquire_restarts_the_entry_idle_time(store: Store) -> None:
    await store.enqueue(spec(), now())
    ds = await store.read_jobs("w1", 100, 0)
    await asyncio.sleep(0.15)
    (acq,) = await store.acquire(ds, LEASE, now(), "w1")
    assert acq.lease is not None
    # Idle 150 ms since the read, but just claimed by the acquire: not stalled.
    assert (await store.reclaim(100, 3, 100)).requeued == 0


async def test_enqueue_at_a_recorded_attempt(store: Store) -> None:
    s = spec(attempt=2, max_attempts=3)
    await store.enqueue(s, now())
    (d,) = await store.read_jobs("w1", 100, 0)
    assert d.attempt == 2
    (acq,) = await store.acquire([d], LEASE, now(), "w1")
    assert acq.context is not None
    assert acq.context.attempt == 2 and acq.context.attempts_left == 1
    events = await store.read(s.execution_id, 0, 10)
    assert [e.attempt for e in events] == [2, 2]
