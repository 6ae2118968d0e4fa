"""The checkpoints hash in Redis: its TTL set once, dropped at a terminal end,
kept for a retry and for the failed queue (those resume from it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import pytest

from nodedrop.store import (
    Commit,
    EventDraft,
    EventType,
    ExecutionStatus,
    JobSpec,
    Lease,
    Transition,
)
from nodedrop.store.redis_store import RedisStore
from tests.helpers.jobs import DEFAULT_JOB_SETTINGS

S = ExecutionStatus
LEASE = 30_000
OUT = '{"main": [{"x": 1}]}'


def _now() -> int:
    return int(time.time() * 1000)


async def _leased(store: RedisStore) -> Lease:
    x = f"ex-{uuid.uuid4().hex[:12]}"
    await store.enqueue(JobSpec(x, "t1", "wf", '{"nodes": []}', "", **DEFAULT_JOB_SETTINGS), _now())
    (d,) = await store.read_jobs("w1", 10, 0)
    (acq,) = await store.acquire([d], LEASE, _now())
    assert acq.lease is not None
    return acq.lease


async def test_a_completed_execution_keeps_no_checkpoints(redis_store: RedisStore) -> None:
    s = redis_store
    lease = await _leased(s)
    x = lease.execution_id
    keys = s.config.keys
    (r,) = await s.commit(
        [
            Commit(
                lease,
                outputs={"n1": OUT},
                events=(
                    EventDraft(EventType.NODE_STARTED, "n1"),
                    EventDraft(EventType.NODE_COMPLETED, "n1", OUT),
                    EventDraft(EventType.EXECUTION_COMPLETED, data_json="{}"),
                ),
                transition=Transition(S.COMPLETED),
            )
        ],
        _now(),
    )
    assert r.ok
    assert await s.client.exists(keys.outputs(x)) == 0
    assert await s.outputs(x) == {}
    # The state and the events stay, with the completion TTL (60 s in these tests).
    assert 0 < await s.client.ttl(keys.exec(x)) <= s.config.completion_ttl_s
    assert 0 < await s.client.ttl(keys.exec_events(x)) <= s.config.completion_ttl_s
    # Its outputs are in its events.
    (done,) = [e for e in await s.read(x, 0, 10) if e.type is EventType.NODE_COMPLETED]
    assert done.data_json == OUT


async def test_checkpoints_get_their_ttl_once_and_go_at_the_end(redis_store: RedisStore) -> None:
    s = redis_store
    lease = await _leased(s)
    x = lease.execution_id
    out_key = s.config.keys.outputs(x)
    (r,) = await s.commit([Commit(lease, outputs={"a": OUT}, number=1)], _now())
    assert r.ok
    assert s.config.completion_ttl_s < await s.client.ttl(out_key) <= s.config.state_ttl_s
    # A later checkpoint leaves the TTL alone: marked here, it must survive.
    await s.client.expire(out_key, 5000)
    (r,) = await s.commit([Commit(lease, outputs={"b": OUT}, number=2)], _now())
    assert r.ok
    assert await s.client.ttl(out_key) > 4000
    assert await s.outputs(x) == {"a": OUT, "b": OUT}
    (r,) = await s.commit(
        [Commit(lease, outputs={"c": OUT}, transition=Transition(S.COMPLETED), number=3)], _now()
    )
    assert r.ok
    assert await s.client.exists(out_key) == 0


async def test_a_retry_and_the_failed_queue_keep_the_checkpoints(redis_store: RedisStore) -> None:
    s = redis_store
    lease = await _leased(s)
    x = lease.execution_id
    retry = Transition(S.RETRY_SCHEDULED, retry_at_ms=_now())
    (r,) = await s.commit([Commit(lease, outputs={"a": OUT}, transition=retry)], _now())
    assert r.ok
    assert await s.outputs(x) == {"a": OUT}
    assert await s.move_due(_now() + 1000, 10) == 1
    (d,) = await s.read_jobs("w1", 10, 0)
    (acq,) = await s.acquire([d], LEASE, _now())
    assert acq.lease is not None and acq.context is not None
    assert acq.context.outputs == {"a": OUT}
    dead = Transition(S.FAILED, dead_letter_reason="nope", failed_node="b")
    (r,) = await s.commit([Commit(acq.lease, outputs={"b": OUT}, transition=dead)], _now())
    assert r.ok
    assert await s.outputs(x) == {"a": OUT, "b": OUT}
    assert await s.retry_failed([x], False, _now()) == 1
    (d,) = await s.read_jobs("w1", 10, 0)
    (acq,) = await s.acquire([d], LEASE, _now())
    assert acq.context is not None and acq.context.outputs == {"a": OUT, "b": OUT}


async def test_a_terminal_commit_does_not_send_its_checkpoints(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = redis_store
    sent: list[list[object]] = []
    real = s._eval

    async def spy(calls: Sequence[tuple[object, str, list[object]]]) -> list[object]:
        sent.extend(args for _, _, args in calls)
        return await real(calls)  # type: ignore[arg-type]

    monkeypatch.setattr(s, "_eval", spy)
    big = '{"main": [{"x": "' + "y" * 10_000 + '"}]}'
    ended = await _leased(s)
    kept = await _leased(s)
    dead = Transition(S.FAILED, dead_letter_reason="nope", failed_node="n1")
    sent.clear()
    results = await s.commit(
        [
            Commit(ended, outputs={"n1": big}, transition=Transition(S.COMPLETED)),
            Commit(kept, outputs={"n1": big}, transition=dead),
        ],
        _now(),
    )
    assert all(r.ok for r in results)
    ended_args, kept_args = sent
    # Argument 10 is the number of checkpoints the call carries.
    assert ended_args[9] == 0 and big not in ended_args
    assert kept_args[9] == 1 and big in kept_args
    assert await s.outputs(kept.execution_id) == {"n1": big}
